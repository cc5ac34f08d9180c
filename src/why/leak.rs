//! Which blocked goroutines can never wake: Go 1.27's goroutine-leak rule
//! (golang/go#74609, `findMaybeRunnableGoroutines` in the runtime's
//! `mgc.go`), applied from outside to any release.
//!
//! The GC marks from the roots as usual, but scans the stack of a goroutine
//! only once it *may* run again: one that is not blocked on a channel or a
//! sync object, or whose channel (any of a select's) or sync object has been
//! marked, or is not in the heap at all. The sudog words that name what a
//! goroutine waits on are not followed meanwhile (`setSyncObjectsUntraceable`),
//! or every waited-on object would be marked through the runtime's own
//! queues. When marking reaches a fixed point, whoever is still blocked waits
//! on something only other such goroutines can reach: it can never wake.
//! `select {}` and a nil channel never wake by definition.

use std::collections::{BTreeSet, HashMap};

use crate::goruntime::waits::WaitsOn;
use crate::goruntime::PcHasher;
use crate::heapwalk::{Heap, Marks};
use crate::process::Memory;

/// One goroutine as the rule sees it.
pub struct Candidate<'a> {
    pub id: u64,
    pub waits_on: &'a WaitsOn,
    /// The values of its stack's live pointer slots.
    pub stack_values: &'a [u64],
}

/// What a goroutine's wait means to the rule.
enum Blocked {
    /// It may run (not blocked on a channel or sync object).
    No,
    /// Blocked until one of these objects is marked (or is not in the heap).
    On(Vec<u64>),
    /// `select {}` or a nil channel: never runnable.
    ForGood,
}

fn blocked(w: &WaitsOn) -> Blocked {
    match w {
        WaitsOn::Chan { chan: 0, .. } => Blocked::ForGood,
        WaitsOn::Chan { chan, .. } => Blocked::On(vec![*chan]),
        WaitsOn::Select { cases } if cases.is_empty() => Blocked::ForGood,
        WaitsOn::Select { cases } => {
            let live: Vec<u64> = cases.iter().map(|(c, _)| *c).filter(|c| *c != 0).collect();
            if live.is_empty() {
                Blocked::ForGood
            } else {
                Blocked::On(live)
            }
        }
        WaitsOn::Sync { sema, .. } => Blocked::On(vec![*sema]),
        _ => Blocked::No,
    }
}

/// The ids of `goroutines` that can never wake, marking from `roots`
/// (package variables, finalizers: pointer values) with `skip` never
/// followed. `main_select_forever`: goroutine 1 in `select {}` is analysed
/// as blocked but, as the runtime does, not reported.
///
/// One mark, told of each object as it is marked: a blocked goroutine is
/// freed (its stack marked from) the moment an object it waits on is
/// marked, which reaches the same fixed point as marking in rounds. Once
/// no goroutine is left blocked the answer is known and the rest of the
/// heap is not walked: a service whose waits hang off package variables
/// is decided before its large data is scanned.
pub fn never_wakes(
    heap: &Heap,
    mem: &dyn Memory,
    roots: &[u64],
    skip: &crate::heapwalk::SkipSlots,
    goroutines: &[Candidate<'_>],
) -> BTreeSet<u64> {
    let mut first: Vec<u64> = roots.to_vec();
    // Each heap object waited on: the goroutines it frees when marked.
    let mut frees: HashMap<u64, Vec<usize>, PcHasher> = HashMap::default();
    let mut blocked_now = vec![false; goroutines.len()];
    let mut left = 0usize;
    let mut forever: Vec<usize> = Vec::new();
    for (i, g) in goroutines.iter().enumerate() {
        match blocked(g.waits_on) {
            Blocked::No => first.extend_from_slice(g.stack_values),
            Blocked::On(objects) => {
                let in_heap: Option<Vec<u64>> = objects
                    .iter()
                    .map(|o| heap.object_of(*o).map(|obj| obj.base))
                    .collect();
                match in_heap {
                    // Waiting on something outside the heap: it may run.
                    None => first.extend_from_slice(g.stack_values),
                    Some(bases) => {
                        for b in bases {
                            frees.entry(b).or_default().push(i);
                        }
                        blocked_now[i] = true;
                        left += 1;
                    }
                }
            }
            Blocked::ForGood => forever.push(i),
        }
    }
    if left > 0 {
        let mut marks = Marks::new(heap);
        marks.mark_watched(heap, mem, first, skip, |obj, more| {
            for i in frees.remove(&obj.base).unwrap_or_default() {
                if let Some(b) = blocked_now.get_mut(i).filter(|b| **b) {
                    *b = false;
                    left -= 1;
                    if let Some(g) = goroutines.get(i) {
                        more.extend_from_slice(g.stack_values);
                    }
                }
            }
            left == 0
        });
    }
    blocked_now
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i)
        .chain(forever)
        .filter_map(|i| goroutines.get(i))
        .filter(|g| {
            !(g.id == 1 && matches!(g.waits_on, WaitsOn::Select { cases } if cases.is_empty()))
        })
        .map(|g| g.id)
        .collect()
}
