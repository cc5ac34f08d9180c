//! The graph's roots, named as a person looks for them: each package
//! variable (`main.cache`, from the symbol its root words fall in), the
//! runtime's finalizer, cleanup and weak-handle records, and the stacks'
//! roots (`stack_roots.rs`: `goroutine 7 frame 2 main.work.buf`). Also
//! the typed starting points of the type walk: every package variable,
//! with its DWARF type (a stack's are `stack_roots.rs`').

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::binary::dwarf_vars::VarIndex;
use crate::goruntime::GoProgram;
use crate::heapwalk::{self, Heap};
use crate::process::Memory;

use super::lists::Lists;
use super::stack_roots::{Labels, StackRoot, StackRoots};

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
    /// Package variables and the runtime's records.
    pub globals: Vec<NamedRoot>,
    /// Package variables with their DWARF types.
    pub typed: Vec<TypedRoot>,
    /// Roots that could not be read, said once each.
    pub unreadable: Vec<String>,
}

/// The roots of the snapshot other than stacks; see the module docs.
pub(super) fn collect(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    heap: &Heap,
    vars: Option<&VarIndex>,
) -> Result<RootSet, heapwalk::HeapError> {
    let mut set = RootSet::default();
    globals(prog, mem, bias, heap, vars, &mut set)?;
    Ok(set)
}

/// The graph's roots by number: the other roots, then the stacks'.
/// Only roots that hold an object are kept: one that holds none retains
/// nothing and leads nowhere, and a million goroutines have millions.
pub(super) struct RootTable {
    globals: Vec<(String, RootKind)>,
    stacks: Vec<StackRoot>,
    labels: Labels,
}

impl RootTable {
    /// The roots of `globals` and `stacks` that hold an object
    /// (`held(values)` gives the object numbers of a root's values),
    /// with the objects each holds.
    pub(super) fn of(
        globals: Vec<NamedRoot>,
        stacks: StackRoots,
        mut held: impl FnMut(&[u64], &mut Vec<u32>),
    ) -> (RootTable, Held) {
        let mut out = Held::default();
        let mut kept = Vec::new();
        for r in globals {
            if out.add_nonempty(|list| held(&r.values, list)) {
                kept.push((r.name, r.kind));
            }
        }
        let mut kept_stacks = Vec::new();
        for (k, r) in stacks.roots.iter().enumerate() {
            if out.add_nonempty(|list| held(stacks.values_of(k), list)) {
                kept_stacks.push(*r);
            }
        }
        let table = RootTable {
            globals: kept,
            stacks: kept_stacks,
            labels: stacks.labels,
        };
        (table, out)
    }

    pub(super) fn len(&self) -> usize {
        self.globals.len() + self.stacks.len()
    }

    /// Root `k`'s name (0 first).
    pub(super) fn name(&self, k: usize) -> String {
        match self.globals.get(k) {
            Some((name, _)) => name.clone(),
            None => self
                .stacks
                .get(k - self.globals.len())
                .map_or_else(|| "?".to_string(), |r| r.name(&self.labels)),
        }
    }

    pub(super) fn kind(&self, k: usize) -> RootKind {
        self.globals
            .get(k)
            .map_or(RootKind::Stack, |(_, kind)| *kind)
    }
}

/// The objects each kept root holds, root after root.
pub(super) type Held = Lists<u32>;

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
    set.globals
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
