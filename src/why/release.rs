//! Who may release each blocked goroutine: the goroutines that can reach
//! what it waits on (from their stacks, through a few heap objects), or
//! whose code names the package variable it is in, and that are not queued
//! on it themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::code_refs::CodeRefs;
use super::describe::Names;
use super::reach::{self, Targets};
use super::Snapshot;
use crate::goruntime::waits::{Waits, WaitsOn};
use crate::goruntime::{PcHasher, StackFacts};
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

/// Who may release what: per waited-on object, not per goroutine, so that
/// many goroutines waiting on one object share one set.
#[derive(Debug, Default)]
pub struct Releasers {
    /// Each waited-on object: the goroutines that reach it and are not
    /// queued on it.
    pub by_object: BTreeMap<u64, BTreeSet<u64>>,
    /// Each blocked goroutine: the objects it waits on.
    pub objects_of: BTreeMap<u64, Vec<u64>>,
}

impl Releasers {
    /// Goroutine `g`'s releasers, at most `cap` of them (smallest ids
    /// first), and how many there are in all.
    pub fn of(&self, g: u64, cap: usize) -> (Vec<u64>, usize) {
        let Some(objects) = self.objects_of.get(&g) else {
            return (Vec::new(), 0);
        };
        let mut sets: Vec<&BTreeSet<u64>> = objects
            .iter()
            .filter_map(|o| self.by_object.get(o))
            .collect();
        // Largest first: the others are looked up in it, never copied (a
        // select's own timer channel beside a channel 60,000 may send on).
        sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let total = sets.first().map_or(0, |s| s.len())
            + sets
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, s)| {
                    s.iter()
                        .filter(|id| !sets[..i].iter().any(|earlier| earlier.contains(id)))
                        .count()
                })
                .sum::<usize>();
        // The smallest `cap` ids of the union are among each set's first `cap`.
        let mut first: Vec<u64> = sets
            .iter()
            .flat_map(|s| s.iter().copied().take(cap))
            .collect();
        first.sort_unstable();
        first.dedup();
        first.truncate(cap);
        (first, total)
    }
}

/// For every blocked goroutine, the objects it waits on and who may
/// release each.
pub fn may_release(
    snap: &Snapshot<'_>,
    heap: Option<&Heap>,
    waits: &Waits,
    stacks: &super::StackValues,
    names: &Names<'_>,
) -> Releasers {
    // Who is queued on each object.
    let mut queued: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut objects_of = BTreeMap::new();
    for (id, w) in &waits.by_goroutine {
        if !waits_on_another(w) {
            continue;
        }
        let os = objects(w);
        for o in &os {
            queued.entry(*o).or_default().insert(*id);
        }
        objects_of.insert(*id, os);
    }
    // Who reaches each object, in any order and maybe more than once:
    // sorted once at the end.
    let mut reachers: HashMap<u64, Vec<u64>, PcHasher> = HashMap::default();
    if let Some(heap) = heap {
        let targets = Targets::new(heap, queued.keys().copied());
        reach_all(snap, heap, &targets, stacks, |o, id| {
            reachers.entry(o).or_default().push(id)
        });
    }
    // Objects in (or held by) a package variable: whose code names it.
    let in_variables: Vec<(u64, (u64, u64))> = queued
        .keys()
        .filter_map(|o| Some((*o, names.variable_link_range(*o)?)))
        .collect();
    if !in_variables.is_empty() {
        let bin = snap.prog.binary();
        let bias = snap.bias;
        let mut code = CodeRefs::default();
        // 100k goroutines stand at a few thousand distinct pcs, and in
        // far fewer distinct stacks (which `GoroutineBrief`s share): each
        // pc's answer, and each stack's, is worked out once.
        let mut named_at: HashMap<u64, Vec<u64>> = HashMap::new();
        let mut named_by: HashMap<*const StackFacts, Vec<u64>> = HashMap::new();
        // A thread's scheduler frames name the runtime's variables, never
        // hold a program's lock (`StackValues::scan` says why).
        for g in snap.goroutines.iter().filter(|g| !g.is_system_stack()) {
            let named = named_by.entry(Arc::as_ptr(&g.stack)).or_insert_with(|| {
                let mut all = Vec::new();
                for f in g.stack.call_pcs.iter() {
                    // A caller's pc is its return address: look inside the call.
                    let Some(pc) = f.checked_sub(bias).and_then(|p| p.checked_sub(1)) else {
                        continue;
                    };
                    let named = named_at.entry(pc).or_insert_with(|| {
                        in_variables
                            .iter()
                            .filter(|(_, (start, end))| code.addresses(bin, pc, *start, *end))
                            .map(|(o, _)| *o)
                            .collect()
                    });
                    all.extend_from_slice(named);
                }
                all.sort_unstable();
                all.dedup();
                all
            });
            for o in named.iter() {
                reachers.entry(*o).or_default().push(g.id);
            }
        }
    }
    let by_object = queued
        .iter()
        .map(|(o, q)| {
            let r: BTreeSet<u64> = reachers
                .remove(o)
                .unwrap_or_default()
                .into_iter()
                .filter(|who| !q.contains(who))
                .collect();
            (*o, r)
        })
        .collect();
    Releasers {
        by_object,
        objects_of,
    }
}

/// Goroutines per chunk of the reach, when it runs on several threads.
const REACH_CHUNK: usize = 1024;

/// Calls `found(object, goroutine id)` for each object of `targets` each
/// goroutine's stack reaches, in snapshot order: on several threads when
/// the snapshot's memory can be read from them.
fn reach_all(
    snap: &Snapshot<'_>,
    heap: &Heap,
    targets: &Targets,
    stacks: &super::StackValues,
    mut found: impl FnMut(u64, u64),
) {
    let Some(shared) = snap.shared else {
        let mut scratch = reach::Scratch::default();
        for (id, values) in stacks.each() {
            for &o in reach::reached(heap, snap.mem, targets, values, &mut scratch) {
                found(o, id);
            }
        }
        return;
    };
    let n = stacks.len();
    let chunks = n.div_ceil(REACH_CHUNK);
    let threads = crate::ordered::threads_for(n, 2 * REACH_CHUNK);
    let done = crate::ordered::map_ordered(
        chunks,
        threads,
        reach::Scratch::default,
        |scratch, i| {
            let mut pairs: Vec<(u64, u64)> = Vec::new();
            let end = (i + 1).saturating_mul(REACH_CHUNK).min(n);
            for (id, values) in (i * REACH_CHUNK..end).filter_map(|at| stacks.entry(at)) {
                for &o in reach::reached(heap, shared, targets, values, scratch) {
                    pairs.push((o, id));
                }
            }
            Some(pairs)
        },
        // A chunk that panicked (a bug): the whole reach is done again
        // on this thread, so that no releaser goes missing.
        |_| None,
        |pairs| match pairs {
            Some(pairs) => {
                pairs.into_iter().for_each(|(o, id)| found(o, id));
                Ok(())
            }
            None => Err(()),
        },
    );
    if done.is_err() {
        let mut scratch = reach::Scratch::default();
        for (id, values) in stacks.each() {
            for &o in reach::reached(heap, snap.mem, targets, values, &mut scratch) {
                found(o, id);
            }
        }
    }
}
