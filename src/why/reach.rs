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

/// The objects of `targets` that `stack_values` reach.
pub fn reached(heap: &Heap, mem: &dyn Memory, targets: &Targets, stack_values: &[u64]) -> Vec<u64> {
    let mut found: Vec<u64> = Vec::new();
    if targets.is_empty() {
        return found;
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let mut frontier: Vec<u64> = Vec::new();
    for v in stack_values {
        if let Some(obj) = heap.object_of(*v) {
            if seen.insert(obj.base) {
                frontier.push(obj.base);
            }
        }
    }
    let mut slots: Vec<u64> = Vec::new();
    let mut word = [0u8; 8];
    for depth in 0..=MAX_DEPTH {
        let mut next: Vec<u64> = Vec::new();
        for base in frontier.drain(..) {
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
            heap.pointer_slots(mem, &obj, &mut slots);
            for slot in &slots {
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
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}
