//! The graph's roots, named as a person looks for them: each package
//! variable (`main.cache`, from the symbol its root words fall in), each
//! goroutine frame's variables (`goroutine 7 frame 2 main.work.buf`, where
//! DWARF places a variable over the live slot, else the frame's function),
//! a goroutine's defer and panic records, and the runtime's finalizer,
//! cleanup and weak-handle records. Also the typed starting points of the
//! type walk: every package variable and every stack variable that holds
//! a live pointer slot, with its DWARF type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::binary::dwarf_vars::VarIndex;
use crate::goruntime::stackroots::stack_pointer_slots;
use crate::goruntime::{GoProgram, Goroutine};
use crate::heapwalk::{self, Heap};
use crate::process::{Memory, MemoryExt};
use crate::values::{limits, Place, Scope};

/// Variables read per frame, at most (a frame has a few dozen).
const MAX_FRAME_VARS: usize = 4096;

/// What kind of thing a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootKind {
    /// A package variable (or an unnamed word of data or bss).
    Global,
    /// Live slots of a goroutine's frame, or its defer/panic records.
    Stack,
    /// Finalizers: queued, or set on an object (what it references).
    Finalizer,
    /// Cleanups and weak handles (Go 1.24+).
    Cleanup,
}

/// One named root and the pointer values it holds.
pub(super) struct NamedRoot {
    pub name: String,
    pub kind: RootKind,
    pub values: Vec<u64>,
}

/// A typed value to start the type walk from: at `addr`, of DWARF `ty`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TypedRoot {
    pub addr: u64,
    pub ty: usize,
}

#[derive(Default)]
pub(super) struct RootSet {
    pub roots: Vec<NamedRoot>,
    pub typed: Vec<TypedRoot>,
    /// Roots that could not be read, said once each.
    pub unreadable: Vec<String>,
    /// Goroutines whose stack scan was not precise to the end.
    pub imprecise_stacks: u64,
}

/// Every root of the snapshot; see the module docs.
pub(super) fn collect(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    heap: &Heap,
    goroutines: &[Goroutine],
    vars: Option<&VarIndex>,
) -> Result<RootSet, heapwalk::HeapError> {
    let mut set = RootSet::default();
    globals(prog, mem, bias, heap, vars, &mut set)?;
    let types = prog.binary().pclntab().ok().and_then(|t| t.types());
    let mut slots = Vec::new();
    let mut scratch = crate::goruntime::stackroots::Scratch::default();
    for g in goroutines {
        slots.clear();
        let scan = stack_pointer_slots(prog, mem, bias, g, &mut slots, &mut scratch);
        if scan.incomplete.is_some() || scan.conservative_frames > 0 {
            set.imprecise_stacks += 1;
        }
        let frames = match vars {
            Some(index) => frame_vars(mem, index, bias, types, g),
            None => Vec::new(),
        };
        let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut live_vars = vec![false; frames.len()];
        for &slot in &slots {
            let Ok(value) = mem.read_u64(slot) else {
                continue;
            };
            if value == 0 {
                continue;
            }
            let var = frames
                .iter()
                .position(|v| v.addr <= slot && slot < v.addr.saturating_add(v.size));
            let name = match var {
                Some(i) => {
                    live_vars[i] = true;
                    let v = &frames[i];
                    format!(
                        "goroutine {} frame {} {}.{}",
                        g.id, v.frame, v.function, v.name
                    )
                }
                None => slot_frame_name(g, slot),
            };
            by_name.entry(name).or_default().push(value);
        }
        for (v, live) in frames.iter().zip(live_vars) {
            if live {
                set.typed.push(TypedRoot {
                    addr: v.addr,
                    ty: v.ty,
                });
            }
        }
        set.roots
            .extend(by_name.into_iter().map(|(name, values)| NamedRoot {
                name,
                kind: RootKind::Stack,
                values,
            }));
    }
    Ok(set)
}

/// The frame whose stack range holds `slot`, or the goroutine's records.
fn slot_frame_name(g: &Goroutine, slot: u64) -> String {
    let frame = g
        .frames
        .iter()
        .enumerate()
        .find(|(_, f)| !f.inlined && f.sp <= slot && slot < f.fp);
    match frame {
        Some((k, f)) => format!("goroutine {} frame {} {}", g.id, k, f.function),
        None if g
            .frames
            .iter()
            .any(|f| f.sp <= slot && slot < f.fp.max(f.sp)) =>
        {
            format!("goroutine {} stack", g.id)
        }
        None => format!("goroutine {} (defer/panic records)", g.id),
    }
}

fn globals(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    heap: &Heap,
    vars: Option<&VarIndex>,
    set: &mut RootSet,
) -> Result<(), heapwalk::HeapError> {
    let g = heapwalk::global_roots(prog, mem, bias, heap)?;
    let mut by_name: BTreeMap<(RootKind, String), Vec<u64>> = BTreeMap::new();
    for slot in &g.slots {
        if slot.value == 0 {
            continue;
        }
        use heapwalk::RootKind as K;
        let (kind, name) = match (slot.kind, g.name(slot)) {
            (K::Data | K::Bss, Some(n)) => (RootKind::Global, n.to_string()),
            (K::Data, None) => (RootKind::Global, "data section (unnamed)".to_string()),
            (K::Bss, None) => (RootKind::Global, "bss section (unnamed)".to_string()),
            (K::FinalizerQueue, _) => (RootKind::Finalizer, "finalizer queue".to_string()),
            (K::Finalizer, _) => (RootKind::Finalizer, "finalizers".to_string()),
            (K::FinalizerObject, _) => (
                RootKind::Finalizer,
                "objects with finalizers (what they reference)".to_string(),
            ),
            (K::WeakHandle, _) => (RootKind::Cleanup, "weak handles".to_string()),
            (K::Cleanup, _) => (RootKind::Cleanup, "cleanups".to_string()),
        };
        by_name.entry((kind, name)).or_default().push(slot.value);
    }
    set.roots
        .extend(
            by_name
                .into_iter()
                .map(|((kind, name), values)| NamedRoot { name, kind, values }),
        );
    set.unreadable.extend(g.unreadable);
    if let Some(index) = vars {
        for (_, global) in index.globals() {
            if let Some(ty) = global.ty {
                set.typed.push(TypedRoot {
                    addr: global.addr.wrapping_add(bias),
                    ty,
                });
            }
        }
    }
    Ok(())
}

/// A frame's variable that DWARF places in memory.
struct FrameVar {
    frame: usize,
    function: String,
    name: String,
    addr: u64,
    size: u64,
    ty: usize,
}

/// Every variable of `g`'s frames that lives in memory, per frame (an
/// inlined call's own, by its depth in the physical frame).
fn frame_vars(
    mem: &dyn Memory,
    index: &VarIndex,
    bias: u64,
    types: Option<(u64, u64)>,
    g: &Goroutine,
) -> Vec<FrameVar> {
    let mut out = Vec::new();
    for (k, selected) in g.frames.iter().enumerate() {
        let Some(physical) = (k..g.frames.len()).find(|&i| !g.frames[i].inlined) else {
            continue;
        };
        let f = &g.frames[physical];
        let top = g.frames[..physical].iter().all(|x| x.inlined);
        let link = f.pc.wrapping_sub(bias);
        let scope = Scope {
            mem,
            index,
            bias,
            pc: if top { link } else { link.wrapping_sub(1) },
            cfa: f.fp,
            types,
            inline_depth: physical - k,
            ret_pc: (!top).then_some(link),
            function: Some(selected.function.to_string()),
            line: Some(u64::from(selected.line)),
            regs: None,
            curg: Some(g.gp),
            limits: limits::Limits::DEFAULT,
            budget: limits::Budget::new(),
        };
        let mut vars = scope.variables(true).unwrap_or_default();
        vars.extend(scope.variables(false).unwrap_or_default());
        for (name, v) in vars.into_iter().take(MAX_FRAME_VARS) {
            let Place::Mem(addr) = v.place else { continue };
            let size = scope.size(v.ty);
            if size == 0 {
                continue;
            }
            out.push(FrameVar {
                frame: k,
                function: selected.function.to_string(),
                name,
                addr,
                size,
                ty: v.ty,
            });
        }
    }
    out
}
