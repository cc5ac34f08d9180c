//! Who may release each blocked goroutine: the goroutines that can reach
//! what it waits on (from their stacks, through a few heap objects), or
//! whose code names the package variable it is in, and that are not queued
//! on it themselves.

use std::collections::{BTreeMap, BTreeSet};

use super::code_refs::CodeRefs;
use super::describe::Names;
use super::graph::WaitFor;
use super::reach::{self, Targets};
use super::Snapshot;
use crate::goruntime::waits::{Waits, WaitsOn};
use crate::heapwalk::Heap;

/// Whether `w` waits on another goroutine's action (a channel, a select,
/// a sync object): the waits the wait-for graph is made of.
pub fn waits_on_another(w: &WaitsOn) -> bool {
    matches!(
        w,
        WaitsOn::Chan { .. } | WaitsOn::Select { .. } | WaitsOn::Sync { .. }
    )
}

/// The objects `w` waits on: channels (nil ones left out) or a sync object.
pub fn objects(w: &WaitsOn) -> Vec<u64> {
    match w {
        WaitsOn::Chan { chan, .. } if *chan != 0 => vec![*chan],
        WaitsOn::Select { cases } => cases.iter().map(|(c, _)| *c).filter(|c| *c != 0).collect(),
        WaitsOn::Sync { object, .. } => vec![*object],
        _ => Vec::new(),
    }
}

/// For every blocked goroutine, the goroutines that may release it.
pub fn may_release(
    snap: &Snapshot<'_>,
    heap: Option<&Heap>,
    waits: &Waits,
    stacks: &BTreeMap<u64, Vec<u64>>,
    names: &Names<'_>,
) -> WaitFor {
    // Who is queued on each object.
    let mut queued: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (id, w) in &waits.by_goroutine {
        for o in objects(w) {
            queued.entry(o).or_default().insert(*id);
        }
    }
    let mut reachers: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    if let Some(heap) = heap {
        let targets = Targets::new(heap, queued.keys().copied());
        for (id, values) in stacks {
            for o in reach::reached(heap, snap.mem, &targets, values) {
                reachers.entry(o).or_default().insert(*id);
            }
        }
    }
    // Objects in (or held by) a package variable: whose code names it.
    let in_variables: Vec<(u64, (u64, u64))> = queued
        .keys()
        .filter_map(|o| Some((*o, names.variable_range(*o)?)))
        .collect();
    if !in_variables.is_empty() {
        let bin = snap.prog.binary();
        let bias = snap.bias;
        let mut code = CodeRefs::default();
        for g in &snap.dump.goroutines {
            for f in g.frames.iter().filter(|f| !f.inlined) {
                // A caller's pc is its return address: look inside the call.
                let Some(pc) = f.pc.checked_sub(bias).and_then(|p| p.checked_sub(1)) else {
                    continue;
                };
                for (o, (start, end)) in &in_variables {
                    let (Some(s), Some(e)) = (start.checked_sub(bias), end.checked_sub(bias))
                    else {
                        continue;
                    };
                    if code.addresses(bin, pc, s, e) {
                        reachers.entry(*o).or_default().insert(g.id);
                    }
                }
            }
        }
    }
    let mut out = WaitFor::new();
    for (id, w) in &waits.by_goroutine {
        if !waits_on_another(w) {
            continue;
        }
        let mut r = BTreeSet::new();
        for o in objects(w) {
            let q = queued.get(&o);
            for who in reachers.get(&o).into_iter().flatten() {
                if *who != *id && !q.is_some_and(|q| q.contains(who)) {
                    r.insert(*who);
                }
            }
        }
        out.insert(*id, r);
    }
    out
}
