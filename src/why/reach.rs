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

use std::collections::HashMap;

use crate::goruntime::PcHasher;
use crate::heapwalk::Heap;
use crate::process::Memory;

/// How many pointer hops from a stack slot are followed.
const MAX_DEPTH: u32 = 3;

/// Heap objects looked into per goroutine, at most.
const MAX_OBJECTS: usize = 256;

/// The objects of interest (channels, objects holding sync values), by the
/// base of the heap object that holds each.
pub struct Targets {
    by_base: HashMap<u64, Vec<u64>, PcHasher>,
    /// The same objects by slot number: asked of every object a look
    /// meets, where a hash lookup was most of the asking.
    slots: SlotSet,
}

impl Targets {
    /// `objects`: addresses goroutines wait on (a channel, a sync value);
    /// those outside the heap are left out (a package variable's are
    /// found from code instead, see `code_refs.rs`).
    pub fn new(heap: &Heap, objects: impl IntoIterator<Item = u64>) -> Targets {
        let mut by_base: HashMap<u64, Vec<u64>, PcHasher> = HashMap::default();
        let mut slots = SlotSet::default();
        slots.clear(heap.slot_count());
        for o in objects {
            if let Some(obj) = heap.object_of(o) {
                let v = by_base.entry(obj.base).or_default();
                if !v.contains(&o) {
                    v.push(o);
                }
                if let Some(n) = heap.slot_number(&obj) {
                    slots.insert(n);
                }
            }
        }
        Targets { by_base, slots }
    }

    /// The objects of interest held by the object at `base` (slot `slot`).
    fn held_by(&self, base: u64, slot: usize) -> Option<&Vec<u64>> {
        self.slots
            .contains(slot)
            .then(|| self.by_base.get(&base))
            .flatten()
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
    /// Looked up for every object a goroutine's look meets.
    seen: SlotSet,
    /// Objects as their base and slot number.
    frontier: Vec<(u64, usize)>,
    next: Vec<(u64, usize)>,
    slots: Vec<u64>,
    bytes: Vec<u8>,
    children: Children,
}

/// Objects by slot number (see `Heap::slot_number`): a bit each, where a
/// hash set of addresses cost a tenth of the look in hashing. Cleared by
/// the words it set, so that a goroutine's look costs what it met.
#[derive(Default)]
struct SlotSet {
    bits: Vec<u64>,
    set: Vec<usize>,
}

impl SlotSet {
    /// Empty, over `count` slot numbers.
    fn clear(&mut self, count: usize) {
        let words = count.div_ceil(64);
        if self.bits.len() != words {
            self.bits = vec![0; words];
        } else {
            for &w in &self.set {
                if let Some(b) = self.bits.get_mut(w / 64) {
                    *b = 0;
                }
            }
        }
        self.set.clear();
    }

    /// Adds `slot`; whether it was not in yet. A slot past the count is
    /// never in (and never added).
    fn insert(&mut self, slot: usize) -> bool {
        let Some(word) = self.bits.get_mut(slot / 64) else {
            return false;
        };
        let bit = 1u64 << (slot % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.set.push(slot);
        true
    }

    fn contains(&self, slot: usize) -> bool {
        self.bits
            .get(slot / 64)
            .is_some_and(|w| w >> (slot % 64) & 1 != 0)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// Each object's children (the heap objects its pointer slots hold, each
/// once, in slot order), remembered between goroutines: the 600,000
/// goroutines that reach one channel all look into it and the sudogs and
/// goroutines queued on it, and each look was a read per slot. The
/// children of all objects lie in one vector (an allocation each, freed
/// all at once when the memory started again, was a tenth of the look).
#[derive(Default)]
struct Children {
    /// Where each object's children lie in `all`.
    of: HashMap<u64, (usize, usize), PcHasher>,
    /// Each child's base and slot number.
    all: Vec<(u64, usize)>,
}

/// Children remembered per thread, in words (8 MiB with the table's
/// own), past which the memory starts again empty.
const MAX_REMEMBERED: usize = 1 << 20;

/// Objects this large are read slot by slot, not whole.
const MAX_WHOLE_READ: u64 = 64 << 10;

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
        bytes,
        children,
    } = scratch;
    found.clear();
    if targets.is_empty() {
        return found;
    }
    seen.clear(heap.slot_count());
    frontier.clear();
    for v in stack_values {
        let Some(obj) = heap.object_of(*v) else {
            continue;
        };
        if let Some(slot) = heap.slot_number(&obj).filter(|&n| seen.insert(n)) {
            frontier.push((obj.base, slot));
        }
    }
    for depth in 0..=MAX_DEPTH {
        next.clear();
        for &(base, slot) in frontier.iter() {
            if let Some(hits) = targets.held_by(base, slot) {
                found.extend_from_slice(hits);
            }
            if depth == MAX_DEPTH {
                continue;
            }
            let kids = children.of(heap, mem, base, slots, bytes);
            for &(o, slot) in kids {
                if seen.len() >= MAX_OBJECTS {
                    break;
                }
                if seen.insert(slot) {
                    next.push((o, slot));
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

impl Children {
    /// The children of the object at `base` (none if it is not one).
    /// Only the first [`MAX_OBJECTS`] are kept: a goroutine's look stops
    /// at that many objects in all, so it never needs more of one.
    fn of(
        &mut self,
        heap: &Heap,
        mem: &dyn Memory,
        base: u64,
        slots: &mut Vec<u64>,
        bytes: &mut Vec<u8>,
    ) -> &[(u64, usize)] {
        let (start, end) = match self.of.get(&base) {
            Some(&at) => at,
            None => {
                // A child is two words; each entry counts its own three
                // words too. Past the bound all is forgotten; the capacity
                // kept is bounded.
                let words = self.of.len().saturating_add(1).saturating_mul(3);
                let kept = self.all.len().saturating_mul(2);
                if kept.saturating_add(words) >= MAX_REMEMBERED {
                    self.of.clear();
                    self.all.clear();
                }
                let start = self.all.len();
                children_into(heap, mem, base, slots, bytes, &mut self.all);
                let at = (start, self.all.len());
                self.of.insert(base, at);
                at
            }
        };
        self.all.get(start..end).unwrap_or(&[])
    }
}

/// Appends the children of the object at `base` to `out`, each once, in
/// slot order, at most [`MAX_OBJECTS`] of them.
fn children_into(
    heap: &Heap,
    mem: &dyn Memory,
    base: u64,
    slots: &mut Vec<u64>,
    bytes: &mut Vec<u8>,
    out: &mut Vec<(u64, usize)>,
) {
    let Some(obj) = heap.object_of(base) else {
        return;
    };
    let start = out.len();
    slots.clear();
    heap.pointer_slots(mem, &obj, slots);
    // One read of the whole object where it is small: a read per slot
    // was most of this walk's time.
    bytes.clear();
    if obj.size <= MAX_WHOLE_READ && !slots.is_empty() {
        bytes.resize(obj.size as usize, 0);
        if mem.read(obj.base, bytes).is_err() {
            bytes.clear();
        }
    }
    let mut word = [0u8; 8];
    for &slot in slots.iter() {
        if out.len() - start >= MAX_OBJECTS {
            break;
        }
        let within = slot
            .checked_sub(obj.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| bytes.get(off..off.checked_add(8)?));
        let v = match within {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
            None => match mem.read(slot, &mut word) {
                Ok(()) => u64::from_le_bytes(word),
                Err(_) => continue,
            },
        };
        let Some(o) = heap.object_of(v) else {
            continue;
        };
        if let Some(slot) = heap.slot_number(&o) {
            if !out[start..].iter().any(|c| c.0 == o.base) {
                out.push((o.base, slot));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heapwalk::hostile_tests::{garbage_heaps, program};
    use std::collections::HashSet;

    /// `reached` as it was before objects' children were remembered: a
    /// read per slot, nothing kept between goroutines.
    fn reached_one_by_one(
        heap: &Heap,
        mem: &dyn Memory,
        targets: &Targets,
        stack_values: &[u64],
    ) -> Vec<u64> {
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let mut frontier = Vec::new();
        for v in stack_values {
            if let Some(obj) = heap.object_of(*v) {
                if seen.insert(obj.base) {
                    frontier.push(obj.base);
                }
            }
        }
        let mut word = [0u8; 8];
        for depth in 0..=MAX_DEPTH {
            let mut next = Vec::new();
            for &base in &frontier {
                if let Some(hits) = targets.by_base.get(&base) {
                    found.extend_from_slice(hits);
                }
                let Some(obj) = heap.object_of(base).filter(|_| depth < MAX_DEPTH) else {
                    continue;
                };
                let mut slots = Vec::new();
                heap.pointer_slots(mem, &obj, &mut slots);
                for slot in slots {
                    if seen.len() >= MAX_OBJECTS {
                        break;
                    }
                    if mem.read(slot, &mut word).is_err() {
                        continue;
                    }
                    if let Some(o) = heap.object_of(u64::from_le_bytes(word)) {
                        if seen.insert(o.base) {
                            next.push(o.base);
                        }
                    }
                }
            }
            frontier = next;
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// On crafted heaps (garbage pointers everywhere), from many stacks
    /// sharing one scratch, remembering children changes no answer.
    #[test]
    fn remembered_children_reach_what_reading_each_slot_reaches() {
        let prog = program("go1.27-exe");
        let mut compared = 0;
        for (mem, heap) in garbage_heaps(&prog, 12) {
            let objects: Vec<_> = heap.objects().collect();
            if objects.is_empty() {
                continue;
            }
            let pick = |i: usize| objects[(i * 7919) % objects.len()].base;
            let targets = Targets::new(&heap, (0..40).map(|i| pick(i * 13 + 5) + 8));
            let mut scratch = Scratch::default();
            for g in 0..200 {
                let values: Vec<u64> = (0..6).map(|k| pick(g * 6 + k) + (k as u64) * 8).collect();
                let want = reached_one_by_one(&heap, &mem, &targets, &values);
                let got = reached(&heap, &mem, &targets, &values, &mut scratch).to_vec();
                assert_eq!(got, want, "stack {g}");
                compared += usize::from(!want.is_empty());
            }
        }
        assert!(compared > 50, "only {compared} stacks reached a target");
    }
}
