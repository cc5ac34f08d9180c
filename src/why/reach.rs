//! Which goroutines hold a reference to an object a goroutine waits on:
//! from the live pointer slots of their stacks, through at most a few heap
//! objects (a closure's context, the struct holding a channel field). This
//! is "may release": a goroutine that can reach a channel may send on it,
//! one that can reach the struct containing a mutex may hold it.
//!
//! Bounded per goroutine (depth and objects visited), so a million
//! goroutines cost a bounded number of reads each; a reference found
//! farther away is missed, which can only make a releaser unnamed, never
//! name a wrong one.

use std::collections::{HashMap, HashSet};

use crate::heapwalk::Heap;
use crate::process::Memory;

/// How many pointer hops from a stack slot are followed.
const MAX_DEPTH: u32 = 3;

/// Heap objects looked into per goroutine, at most.
const MAX_OBJECTS: usize = 256;

/// The objects of interest (channels, objects holding sync values), by the
/// base of the heap object that holds each.
pub struct Targets {
    by_base: HashMap<u64, Vec<u64>>,
}

impl Targets {
    /// `objects`: addresses goroutines wait on (a channel, a sync value);
    /// those outside the heap are left out (a package variable's are
    /// found from code instead, see `code_refs.rs`).
    pub fn new(heap: &Heap, objects: impl IntoIterator<Item = u64>) -> Targets {
        let mut by_base: HashMap<u64, Vec<u64>> = HashMap::new();
        for o in objects {
            if let Some(obj) = heap.object_of(o) {
                let v = by_base.entry(obj.base).or_default();
                if !v.contains(&o) {
                    v.push(o);
                }
            }
        }
        Targets { by_base }
    }

    pub fn is_empty(&self) -> bool {
        self.by_base.is_empty()
    }
}

/// What [`reached`] needs per goroutine, kept between calls so that
/// 100k goroutines cost no allocation each.
#[derive(Default)]
pub struct Scratch {
    found: Vec<u64>,
    seen: HashSet<u64>,
    frontier: Vec<u64>,
    next: Vec<u64>,
    slots: Vec<u64>,
}

/// The objects of `targets` that `stack_values` reach (sorted, each once),
/// in `scratch`'s buffer.
pub fn reached<'s>(
    heap: &Heap,
    mem: &dyn Memory,
    targets: &Targets,
    stack_values: &[u64],
    scratch: &'s mut Scratch,
) -> &'s [u64] {
    let Scratch {
        found,
        seen,
        frontier,
        next,
        slots,
    } = scratch;
    found.clear();
    if targets.is_empty() {
        return found;
    }
    seen.clear();
    frontier.clear();
    for v in stack_values {
        if let Some(obj) = heap.object_of(*v) {
            if seen.insert(obj.base) {
                frontier.push(obj.base);
            }
        }
    }
    let mut word = [0u8; 8];
    for depth in 0..=MAX_DEPTH {
        next.clear();
        for &base in frontier.iter() {
            if let Some(hits) = targets.by_base.get(&base) {
                found.extend_from_slice(hits);
            }
            if depth == MAX_DEPTH {
                continue;
            }
            let Some(obj) = heap.object_of(base) else {
                continue;
            };
            slots.clear();
            heap.pointer_slots(mem, &obj, slots);
            for slot in slots.iter() {
                if seen.len() >= MAX_OBJECTS {
                    break;
                }
                if mem.read(*slot, &mut word).is_err() {
                    continue;
                }
                let v = u64::from_le_bytes(word);
                if let Some(o) = heap.object_of(v) {
                    if seen.insert(o.base) {
                        next.push(o.base);
                    }
                }
            }
        }
        std::mem::swap(frontier, next);
        if frontier.is_empty() {
            break;
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}
