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

use std::collections::{BTreeSet, HashSet};

use crate::goruntime::waits::WaitsOn;
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
pub fn never_wakes(
    heap: &Heap,
    mem: &dyn Memory,
    roots: &[u64],
    skip: &HashSet<u64>,
    goroutines: &[Candidate<'_>],
) -> BTreeSet<u64> {
    let mut marks = Marks::new(heap);
    let mut pending: Vec<(usize, Vec<u64>)> = Vec::new();
    let mut forever: Vec<usize> = Vec::new();
    let mut first: Vec<u64> = roots.to_vec();
    for (i, g) in goroutines.iter().enumerate() {
        match blocked(g.waits_on) {
            Blocked::No => first.extend_from_slice(g.stack_values),
            Blocked::On(objects) => pending.push((i, objects)),
            Blocked::ForGood => forever.push(i),
        }
    }
    marks.mark_from(heap, mem, first, skip);
    // Each round either frees a goroutine or ends: at most one per pending.
    loop {
        let mut next: Vec<u64> = Vec::new();
        let before = pending.len();
        pending.retain(|(i, objects)| {
            let free = objects
                .iter()
                .any(|o| heap.object_of(*o).is_none() || marks.is_marked(heap, *o));
            if free {
                if let Some(g) = goroutines.get(*i) {
                    next.extend_from_slice(g.stack_values);
                }
            }
            !free
        });
        if pending.len() == before {
            break;
        }
        marks.mark_from(heap, mem, next, skip);
    }
    pending
        .iter()
        .map(|(i, _)| *i)
        .chain(forever)
        .filter_map(|i| goroutines.get(i))
        .filter(|g| {
            !(g.id == 1 && matches!(g.waits_on, WaitsOn::Select { cases } if cases.is_empty()))
        })
        .map(|g| g.id)
        .collect()
}
