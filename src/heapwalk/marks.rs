//! A mark bitmap over the heap's objects, shaped like the heap's own
//! allocation bitmap (a bit per slot), grown in steps: each
//! [`Marks::mark_from`] marks what new roots reach and scans only the
//! objects it newly marked, so an object is scanned at most once over the
//! life of the marks.

use std::collections::{HashSet, VecDeque};

use crate::goruntime::PcHasher;
use crate::process::Memory;

use super::{Heap, Object};

/// Bytes of an object read at once when scanning it.
const READ_CHUNK: u64 = 256 << 10;

/// Words the marking never follows (a blocked goroutine's sudog words,
/// Go's leak rule). Every pointer slot of every object scanned is looked
/// up: among a million goroutines' 600,000 such words a probe of their set
/// missed the cache, for a tenth of the marking. Most slots lie on a page
/// that holds none of them, which a far smaller set of pages tells first.
#[derive(Default)]
pub struct SkipSlots {
    pages: HashSet<u64, PcHasher>,
    words: HashSet<u64, PcHasher>,
}

impl SkipSlots {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn contains(&self, slot: u64) -> bool {
        self.pages.contains(&(slot >> 12)) && self.words.contains(&slot)
    }

    /// Whether any of these words may lie in the `size` bytes at `base`:
    /// asked once for an object, its slots need no look each when not.
    pub fn may_touch(&self, base: u64, size: u64) -> bool {
        let first = base >> 12;
        let last = base.saturating_add(size.saturating_sub(1)) >> 12;
        // A large object is looked at slot by slot instead.
        last.saturating_sub(first) >= 4 || (first..=last).any(|p| self.pages.contains(&p))
    }
}

impl FromIterator<u64> for SkipSlots {
    fn from_iter<I: IntoIterator<Item = u64>>(words: I) -> Self {
        let words: HashSet<u64, PcHasher> = words.into_iter().collect();
        SkipSlots {
            pages: words.iter().map(|w| w >> 12).collect(),
            words,
        }
    }
}

pub struct Marks {
    bits: Vec<u64>,
    objects: u64,
    bytes: u64,
}

impl Marks {
    pub fn new(heap: &Heap) -> Marks {
        Marks {
            bits: vec![0; heap.allocated_words()],
            objects: 0,
            bytes: 0,
        }
    }

    /// Marks every object reachable from the pointer *values* `roots`,
    /// transitively, never following the words whose addresses are in
    /// `skip`. Each object is scanned at most once over the Marks' life;
    /// work and memory are bounded by the heap's size (the work list holds
    /// each object at most once). Returns how many objects this call newly
    /// marked.
    pub fn mark_from(
        &mut self,
        heap: &Heap,
        mem: &dyn Memory,
        roots: impl IntoIterator<Item = u64>,
        skip: &SkipSlots,
    ) -> u64 {
        self.mark_watched(heap, mem, roots, skip, |_, _| false)
    }

    /// [`Self::mark_from`], telling `marked` of each object as it is newly
    /// marked: `marked` may add pointer values to mark from (`more`), and
    /// returning `true` ends the marking at once, with objects reachable
    /// but not yet marked (a caller that has learnt what it wanted to).
    pub fn mark_watched(
        &mut self,
        heap: &Heap,
        mem: &dyn Memory,
        roots: impl IntoIterator<Item = u64>,
        skip: &SkipSlots,
        mut marked: impl FnMut(&Object, &mut Vec<u64>) -> bool,
    ) -> u64 {
        let before = self.objects;
        let mut work: VecDeque<Object> = VecDeque::new();
        let mut more: Vec<u64> = roots.into_iter().collect();
        // Values are marked as they are found (`more` drained at once), so
        // that what the roots point at directly is seen before any object
        // is scanned, and objects are scanned in the order they were
        // marked (breadth first): what lies few pointers from a root is
        // reached before a long list is walked to its end.
        let mut mark = |marks: &mut Marks, work: &mut VecDeque<Object>, more: &mut Vec<u64>| {
            while let Some(value) = more.pop() {
                if let Some(obj) = marks.mark(heap, value, work) {
                    if marked(&obj, more) {
                        return true;
                    }
                }
            }
            false
        };
        if mark(self, &mut work, &mut more) {
            return self.objects - before;
        }
        let mut slots = Vec::new();
        let mut buf = Vec::new();
        while let Some(obj) = work.pop_front() {
            slots.clear();
            heap.pointer_slots(mem, &obj, &mut slots);
            // Hashing every slot of millions of objects for a set of a
            // few sudog words: only when there is one.
            if !skip.is_empty() && skip.may_touch(obj.base, obj.size) {
                slots.retain(|s| !skip.contains(*s));
            }
            slots.sort_unstable();
            slots.dedup();
            // Slots come in address order; read the object a chunk at a
            // time and take each slot's value from the copy.
            let mut i = 0;
            while i < slots.len() {
                let from = slots[i];
                let end = obj.base.saturating_add(obj.size);
                let to = from.saturating_add(READ_CHUNK).min(end);
                let len = to.saturating_sub(from) as usize;
                buf.resize(len, 0);
                let readable = mem.read(from, &mut buf).is_ok();
                while i < slots.len() && slots[i].saturating_add(8) <= to {
                    let slot = slots[i];
                    i += 1;
                    let value = if readable {
                        let at = slot.saturating_sub(from) as usize;
                        buf.get(at..at.saturating_add(8))
                            .and_then(|b| b.try_into().ok())
                            .map(u64::from_le_bytes)
                    } else {
                        read_word(mem, slot)
                    };
                    if let Some(v) = value {
                        more.push(v);
                        if mark(self, &mut work, &mut more) {
                            return self.objects - before;
                        }
                    }
                }
                // A slot too close to the object's end for a whole word
                // (hostile metadata) is skipped.
                if i < slots.len() && slots[i].saturating_add(8) > to && to == end {
                    i += 1;
                }
            }
        }
        self.objects - before
    }

    /// Marks the object holding `value`, if it is one not marked yet (and
    /// queues it to be scanned), and returns it.
    fn mark(&mut self, heap: &Heap, value: u64, work: &mut VecDeque<Object>) -> Option<Object> {
        let obj = heap.object_of(value)?;
        let slot = heap.slot_number(&obj)?;
        let word = self.bits.get_mut(slot / 64)?;
        let bit = 1u64 << (slot % 64);
        if *word & bit != 0 {
            return None;
        }
        *word |= bit;
        self.objects += 1;
        self.bytes += obj.size;
        if !obj.noscan {
            work.push_back(obj);
        }
        Some(obj)
    }

    /// Whether `addr` is inside a marked object.
    pub fn is_marked(&self, heap: &Heap, addr: u64) -> bool {
        let Some(slot) = heap.object_of(addr).and_then(|obj| heap.slot_number(&obj)) else {
            return false;
        };
        self.bits
            .get(slot / 64)
            .is_some_and(|w| w >> (slot % 64) & 1 != 0)
    }

    /// Marked objects and their bytes.
    pub fn marked(&self) -> (u64, u64) {
        (self.objects, self.bytes)
    }
}

fn read_word(mem: &dyn Memory, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(addr, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}
