//! The GC roots that are not goroutine stacks (mgcmark.go, `markroot`):
//! every module's data and bss, scanned with the pointer masks the runtime
//! built for them (`moduledata.gcdatamask`/`gcbssmask`); the finalizer
//! queue (`allfin`: every queued finalizer's function, argument and types);
//! and span specials (`markrootSpans`): a finalizer's function and types,
//! and the words of its object (the runtime scans the object, so what it
//! references stays alive, but does not mark the object itself), a weak
//! handle, a cleanup's function (Go 1.24+).

use std::collections::HashMap;

use crate::goruntime::GoProgram;
use crate::process::{Memory, MemoryExt};

use super::{Heap, HeapError, Object, PAGE_SIZE};

/// Most modules followed through `moduledata.next` (plugins are rare).
const MAX_MODULES: usize = 64;
/// Largest data or bss section scanned: a mask over more is corrupt.
const MAX_SECTION: u64 = 1 << 30;
/// Bytes of a section read at once.
const READ_CHUNK: u64 = 1 << 20;
/// Most special records followed, over the whole heap, and finalizer
/// blocks.
const MAX_SPECIALS: usize = 1 << 22;
const MAX_FINBLOCKS: usize = 1 << 20;

/// What a root slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A word of a module's data or bss section the GC scans.
    Data,
    Bss,
    /// A queued finalizer's fn, arg or types (`allfin`).
    FinalizerQueue,
    /// A word of an object that has a finalizer: what it references is
    /// kept alive, not the object itself.
    FinalizerObject,
    /// A finalizer special's fn and types.
    Finalizer,
    WeakHandle,
    Cleanup,
}

/// One word the GC treats as a root, and the value it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootSlot {
    pub addr: u64,
    pub value: u64,
    pub kind: RootKind,
    /// Index into [`Roots::symbols`]: the package variable the slot is in.
    pub symbol: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Roots {
    pub slots: Vec<RootSlot>,
    /// Names of the variables slots fall in (`main.jobs`).
    pub symbols: Vec<String>,
    /// What could not be read, said once each (a module's mask, a span's
    /// specials): those roots are missing.
    pub unreadable: Vec<String>,
    /// The finalizer queue's head (`runtime.allfin`) is not known: a
    /// stripped binary names it nowhere. The queue's entries are then
    /// missing from `slots`; it is empty whenever the finalizer goroutine
    /// is parked in "finalizer wait" or was never started.
    pub finalizer_queue_unknown: bool,
}

impl Roots {
    /// The name of the package variable `slot` is in, if known.
    pub fn name(&self, slot: &RootSlot) -> Option<&str> {
        self.symbols.get(slot.symbol? as usize).map(String::as_str)
    }

    /// Every slot's value (what marking starts from).
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().map(|s| s.value)
    }
}

/// Roots that are not goroutine stacks; see the module docs.
pub fn global_roots(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    heap: &Heap,
) -> Result<Roots, HeapError> {
    let mut roots = Roots::default();
    let mut names = Names::new(prog, bias);
    modules(mem, heap, bias, &mut names, &mut roots)?;
    roots.symbols = names.names;
    finalizer_queue(mem, heap, bias, &mut roots);
    specials(mem, heap, &mut roots);
    Ok(roots)
}

/// The package variables root slots fall in, each named once
/// (`Binary::symbol_at` finds it; only the variables that hold a root
/// get a name in `Roots::symbols`).
struct Names<'a> {
    bin: &'a crate::binary::Binary,
    bias: u64,
    /// Each variable named so far: its index into `names`.
    index: HashMap<String, u32>,
    names: Vec<String>,
}

impl<'a> Names<'a> {
    fn new(prog: &'a GoProgram, bias: u64) -> Names<'a> {
        Names {
            bin: prog.binary(),
            bias,
            index: HashMap::new(),
            names: Vec::new(),
        }
    }

    fn of(&mut self, addr: u64) -> Option<u32> {
        let (name, _, _) = self.bin.symbol_at(addr.checked_sub(self.bias)?)?;
        if let Some(i) = self.index.get(name) {
            return Some(*i);
        }
        let i = u32::try_from(self.names.len()).ok()?;
        self.index.insert(name.to_string(), i);
        self.names.push(name.to_string());
        Some(i)
    }
}

fn modules(
    mem: &dyn Memory,
    heap: &Heap,
    bias: u64,
    names: &mut Names<'_>,
    roots: &mut Roots,
) -> Result<(), HeapError> {
    let m = &heap.layout.module;
    let mut at = heap.layout.firstmoduledata.wrapping_add(bias);
    for _ in 0..MAX_MODULES {
        if at == 0 {
            break;
        }
        let md = mem
            .read_vec(at, m.size as usize)
            .map_err(|fault| HeapError::Unreadable {
                what: "runtime.firstmoduledata",
                fault,
            })?;
        let word = |off: u64| -> u64 {
            let o = off as usize;
            md.get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let sections = [
            (
                RootKind::Data,
                word(m.data),
                word(m.edata),
                m.gcdata_n.get(&md),
                word(m.gcdata_bytes),
            ),
            (
                RootKind::Bss,
                word(m.bss),
                word(m.ebss),
                m.gcbss_n.get(&md),
                word(m.gcbss_bytes),
            ),
        ];
        for (kind, lo, hi, n, mask) in sections {
            if let Err(why) = section(mem, kind, lo, hi, n.unwrap_or(0), mask, names, roots) {
                roots.unreadable.push(why);
            }
        }
        at = word(m.next);
    }
    Ok(())
}

/// The words of `[lo, hi)` whose bit is set in the mask at `mask` (`n`
/// bits, one a word).
#[allow(clippy::too_many_arguments)]
fn section(
    mem: &dyn Memory,
    kind: RootKind,
    lo: u64,
    hi: u64,
    n: u64,
    mask: u64,
    names: &mut Names<'_>,
    roots: &mut Roots,
) -> Result<(), String> {
    let what = if kind == RootKind::Data {
        "data"
    } else {
        "bss"
    };
    if hi < lo || hi - lo > MAX_SECTION {
        return Err(format!(
            "the {what} section [{lo:#x}, {hi:#x}) is not a section"
        ));
    }
    let words = ((hi - lo) / 8).min(n);
    if words == 0 {
        return Ok(());
    }
    let bits = mem
        .read_vec(mask, words.div_ceil(8) as usize)
        .map_err(|e| format!("the {what} section's pointer mask: {e}"))?;
    let mut chunk_start = lo;
    while chunk_start < lo + words * 8 {
        let chunk_end = (chunk_start + READ_CHUNK).min(lo + words * 8);
        let copy = mem.read_vec(chunk_start, (chunk_end - chunk_start) as usize);
        let mut w = (chunk_start - lo) / 8;
        while lo + w * 8 < chunk_end {
            let set = bits
                .get((w / 8) as usize)
                .is_some_and(|b| b >> (w % 8) & 1 != 0);
            if set {
                let addr = lo + w * 8;
                let value = match &copy {
                    Ok(c) => {
                        let at = (addr - chunk_start) as usize;
                        c.get(at..at + 8)
                            .and_then(|b| b.try_into().ok())
                            .map(u64::from_le_bytes)
                    }
                    Err(_) => None,
                };
                if let Some(value) = value {
                    roots.slots.push(RootSlot {
                        addr,
                        value,
                        kind,
                        symbol: names.of(addr),
                    });
                }
            }
            w += 1;
        }
        if let Err(e) = copy {
            roots.unreadable.push(format!("the {what} section: {e}"));
        }
        chunk_start = chunk_end;
    }
    Ok(())
}

fn push(mem: &dyn Memory, roots: &mut Roots, addr: u64, kind: RootKind) {
    if let Ok(value) = mem.read_u64(addr) {
        roots.slots.push(RootSlot {
            addr,
            value,
            kind,
            symbol: None,
        });
    }
}

fn finalizer_queue(mem: &dyn Memory, heap: &Heap, bias: u64, roots: &mut Roots) {
    let Some(q) = &heap.layout.finq else {
        roots.finalizer_queue_unknown = true;
        return;
    };
    let Ok(mut block) = mem.read_u64(q.allfin.wrapping_add(bias)) else {
        roots.unreadable.push("runtime.allfin".into());
        return;
    };
    let capacity = q.block_size.saturating_sub(q.fin) / q.entry_size.max(1);
    // Garbage can link the blocks in a cycle: each is read once.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_FINBLOCKS {
        if block == 0 || !seen.insert(block) {
            return;
        }
        let Ok(head) = mem.read_vec(block, q.fin as usize) else {
            roots
                .unreadable
                .push(format!("a finalizer block at {block:#x}"));
            return;
        };
        let cnt = q.cnt.get(&head).unwrap_or(0).min(capacity);
        for i in 0..cnt {
            let entry = block + q.fin + i * q.entry_size;
            for &off in &q.entry_slots {
                push(mem, roots, entry + off, RootKind::FinalizerQueue);
            }
        }
        let link = q.alllink as usize;
        block = head
            .get(link..link + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
    }
}

fn specials(mem: &dyn Memory, heap: &Heap, roots: &mut Roots) {
    let sp = &heap.layout.special;
    let mut followed = 0usize;
    let mut slots = Vec::new();
    for (index, span) in heap.spans().iter().enumerate() {
        let mut at = span.specials;
        // The runtime keeps a span's specials sorted by offset and kind
        // (`addspecial`): a list that goes back is corrupt there, which
        // also ends a cycle.
        let mut last: Option<(u64, u64)> = None;
        while at != 0 {
            if followed >= MAX_SPECIALS {
                roots
                    .unreadable
                    .push("specials: more than any heap holds".into());
                return;
            }
            followed += 1;
            let Ok(head) = mem.read_vec(at, sp.header_size as usize) else {
                roots.unreadable.push(format!(
                    "a special record at {at:#x} (span {:#x})",
                    span.base
                ));
                break;
            };
            let key = (
                sp.offset.get(&head).unwrap_or(u64::MAX),
                sp.kind.get(&head).unwrap_or(0),
            );
            if last.is_some_and(|l| key <= l) || key.0 >= span.npages.saturating_mul(PAGE_SIZE) {
                roots.unreadable.push(format!(
                    "the specials of the span at {:#x} are out of order",
                    span.base
                ));
                break;
            }
            last = Some(key);
            let kind = key.1 as u8;
            if kind == sp.kinds.finalizer {
                for &off in &sp.finalizer_slots {
                    push(mem, roots, at.wrapping_add(off), RootKind::Finalizer);
                }
                let offset = sp.offset.get(&head).unwrap_or(u64::MAX);
                let index_in_span = offset / span.elemsize;
                if index_in_span < u64::from(span.nelems) {
                    let obj = Object {
                        base: span.base + index_in_span * span.elemsize,
                        size: span.elemsize,
                        noscan: span.noscan,
                        span: index as u32,
                        index: index_in_span as u32,
                    };
                    slots.clear();
                    heap.pointer_slots(mem, &obj, &mut slots);
                    for &s in &slots {
                        push(mem, roots, s, RootKind::FinalizerObject);
                    }
                }
            } else if Some(kind) == sp.kinds.weak_handle {
                for &off in &sp.weak_handle_slots {
                    push(mem, roots, at.wrapping_add(off), RootKind::WeakHandle);
                }
            } else if Some(kind) == sp.kinds.cleanup {
                for &off in &sp.cleanup_slots {
                    push(mem, roots, at.wrapping_add(off), RootKind::Cleanup);
                }
            }
            at = sp.next.get(&head).unwrap_or(0);
        }
    }
}
