//! `goat why`: what each blocked goroutine waits on, who could release it,
//! the deadlock cycles among them, and which can never wake.
//!
//! Everything is read from one consistent snapshot (a core, or a live
//! process copied as `goat core --mode live` copies it): the runtime's own
//! records of each wait (`goruntime::waits`), the heap (`heapwalk`) and the
//! live pointer slots of each stack (`goruntime::stackroots`). Nothing here
//! prints; `report::why` formats a [`WhyReport`].

pub mod code_refs;
mod describe;
mod findings;
pub mod graph;
pub mod growth;
pub mod leak;
pub mod reach;
mod release;
mod stacks;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::goruntime::waits::{self, FdInfo, Waits, WaitsOn};
use crate::goruntime::{GoProgram, GoroutineBrief, PcHasher};
use crate::heapwalk::{self, Heap, HeapError};
use crate::process::Memory;

pub use describe::WaitDesc;
pub use stacks::StackValues;

/// What the analysis reads: one consistent snapshot of the program.
pub struct Snapshot<'a> {
    pub prog: &'a GoProgram,
    pub mem: &'a dyn Memory,
    /// `mem` again, when it can be read from several threads at once (a
    /// core): the work done per goroutine is then shared between them.
    pub shared: Option<&'a (dyn Memory + Sync)>,
    pub bias: u64,
    /// The target's Go release, as the report names it.
    pub go_version: &'a str,
    /// Every goroutine, as `goat why` keeps them (see [`GoroutineBrief`]).
    pub goroutines: &'a [GoroutineBrief],
    /// Every thread's registers (a syscall's number), when known.
    pub threads: &'a [crate::process::Thread],
    /// A live process's descriptors (sockets' addresses); `None` on a core.
    pub fds: Option<&'a dyn FdInfo>,
    /// The target's monotonic clock at the copy, when known (goat's
    /// cores record it): when sleeps end and deadlines fall, as durations.
    pub now_ns: Option<i64>,
}

/// The answer: findings first, then every goroutine.
#[derive(Debug, Clone, Serialize)]
pub struct WhyReport {
    pub go_version: String,
    /// One line each, the one that affects the most goroutines first.
    pub findings: Vec<Finding>,
    /// Deadlock cycles: each a sorted list of goroutine ids.
    pub cycles: Vec<Vec<u64>>,
    pub goroutines: Vec<GoroutineWhy>,
    /// Why "never wakes" could not be decided, when it could not: then no
    /// goroutine is said to never wake.
    pub never_wakes_unknown: Option<String>,
    /// Why who may release a goroutine is only partly known, when it is
    /// (the heap could not be read: only code that names a package
    /// variable counts): then an empty `may_release` proves nothing, and
    /// no cycle is claimed to be absent.
    pub releasers_partial: Option<String>,
    /// How the stacks were scanned.
    pub stack_scan: ScanSummary,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    /// Frames scanned from the compiler's stack maps.
    pub precise_frames: u64,
    /// Frames scanned word by word (errs toward "may wake").
    pub conservative_frames: u64,
    /// Goroutines whose stack scan ended early (the rest word by word).
    pub incomplete: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub text: String,
    pub goroutines: Vec<u64>,
}

/// One goroutine's answer. What many goroutines have in common (their
/// status, what they wait on, who may release them, where they stand and
/// were created) is shared between them, not copied.
#[derive(Debug, Clone, Serialize)]
pub struct GoroutineWhy {
    pub id: u64,
    /// As the traceback's header shows it: a wait reason or a status.
    pub status: Arc<str>,
    pub wait_reason: Option<Arc<str>>,
    pub wait_minutes: Option<i64>,
    pub waits_on: Arc<WaitDesc>,
    /// Goroutines that could release it: for a channel, those that can
    /// reach it and are not queued on it; for a lock, those that may hold
    /// it (Go records no owner).
    pub may_release: Arc<[u64]>,
    /// How many may release it: `may_release` lists at most 100 of them.
    pub may_release_total: usize,
    pub never_wakes: bool,
    /// The innermost frame outside the Go distribution: "func file:line".
    pub location: Option<Arc<str>>,
    /// "func file:line" of the `go` statement that created it.
    pub created_by: Option<Arc<str>>,
}

/// Releasers listed per goroutine, at most: 20,000 goroutines that may
/// release each of 20,000 waiters would be 400 million ids.
const MAX_LISTED: usize = 100;

/// Runs the whole analysis on `snap`.
pub fn analyze(snap: &Snapshot<'_>) -> WhyReport {
    analyze_scanned(snap, None, None, &mut |_| {})
}

/// [`analyze`], with the goroutines' stacks already scanned (`stacks`,
/// when they are those of `snap.goroutines` in order: a caller that
/// decodes on several threads scans each stack there). `phase` hears the
/// name of each phase as it begins (`goat why --stats` times them).
pub fn analyze_scanned(
    snap: &Snapshot<'_>,
    stacks: Option<StackValues>,
    heap: Option<Result<Heap, HeapError>>,
    phase: &mut dyn FnMut(&'static str),
) -> WhyReport {
    let gs = snap.goroutines;
    phase("waits");
    let waits = waits::read_waits_shared(
        snap.prog,
        snap.mem,
        snap.shared,
        snap.bias,
        gs,
        snap.threads,
        snap.fds,
    );
    let heap = heap.unwrap_or_else(|| {
        phase("heap spans");
        Heap::load(snap.prog, snap.mem, snap.bias)
    });
    phase("stack values");
    let mut stacks = match stacks {
        Some(s) if s.matches(gs) => s,
        _ => StackValues::of_snapshot(snap),
    };
    stacks.finish();
    let scan = stacks.scan.clone();
    phase("names");
    let names = describe::Names::new(snap, &waits);
    phase("never-wakes and releasers");
    // Which goroutines never wake, and who may release each, read the
    // same snapshot and nothing of each other: side by side where the
    // memory can be read from two threads (a core), each about a fifth
    // of the analysis at a million goroutines.
    let ((never, never_unknown), releasers) = match (&heap, snap.shared) {
        (Ok(h), Some(shared)) => std::thread::scope(|s| {
            let on = OnMemory::of(snap, shared);
            let (waits, stacks) = (&waits, &stacks);
            let never = s.spawn(move || never_wakes(&on, h, waits, stacks));
            let releasers = release::may_release(snap, Some(h), waits, stacks, &names);
            let never = never.join().unwrap_or_else(|_| {
                (
                    BTreeSet::new(),
                    Some("the never-wakes analysis failed (a bug in goat)".to_string()),
                )
            });
            (never, releasers)
        }),
        (Ok(h), None) => (
            never_wakes(&OnMemory::of(snap, snap.mem), h, &waits, &stacks),
            release::may_release(snap, Some(h), &waits, &stacks, &names),
        ),
        (Err(e), _) => (
            (
                BTreeSet::new(),
                Some(format!("the heap could not be read: {e}")),
            ),
            release::may_release(snap, None, &waits, &stacks, &names),
        ),
    };
    // The stacks' values and the heap's tables are done with: given back
    // before the graph and the answers are built.
    drop(stacks);
    let heap = heap.map(drop);
    crate::process::freed::give_back_freed();
    // Nothing below reads the snapshot: a live copy's file can leave the
    // page cache while the answers are built, not after the report.
    snap.mem.done_reading();
    // The deadlock cycles beside the answers: they read the same
    // releasers and nothing of each other, and the cycles' graph is a
    // thread's work of half a second at a million goroutines.
    phase("cycles and answers");
    let (cycles, goroutines) = std::thread::scope(|s| {
        let find_cycles = || {
            let blocked: BTreeSet<u64> = releasers.objects_of.keys().copied().collect();
            graph::deadlocks(&releasers.objects_of, &releasers.by_object, &blocked)
        };
        let cycles = s.spawn(find_cycles);
        let goroutines = answers(gs, &waits, &names, &releasers, &never);
        // A panic (a bug) there: the cycles are looked for again here.
        let cycles = cycles.join().unwrap_or_else(|_| find_cycles());
        (cycles, goroutines)
    });
    let bin = snap.prog.binary();
    let releasers_partial = match &heap {
        Err(e) => Some(format!("the heap could not be read: {e}")),
        // code_refs needs each package variable's bounds.
        Ok(_) if !bin.has_symbols() && !bin.has_dwarf() => Some(
            "the executable has no symbols, so package variables have no bounds: a goroutine \
             whose code names one (a lock's likely holder) is not counted"
                .to_string(),
        ),
        Ok(_) => None,
    };
    phase("findings");
    let findings = findings::findings(
        &goroutines,
        &cycles,
        &waits,
        &names,
        &releasers,
        never_unknown.is_some(),
        releasers_partial.is_some(),
    );
    phase("freeing");
    // Millions of map nodes at a million goroutines (a fifth of a second
    // to free): freed beside the report rather than before it.
    crate::process::freed::drop_in_background((waits, releasers, never));
    WhyReport {
        go_version: snap.go_version.to_string(),
        findings,
        cycles,
        goroutines,
        releasers_partial,
        never_wakes_unknown: never_unknown,
        stack_scan: scan,
    }
}

/// Releasers as [`GoroutineWhy`] lists them, and how many there are.
type Listed = (Arc<[u64]>, usize);

/// Below this many goroutines a second thread for the answers costs more
/// than it saves.
const ANSWERS_PARALLEL_MIN: usize = 20_000;

/// Each goroutine's answer, in the order of `gs`: parts of them built on
/// as many threads (a million answers took two seconds on one).
fn answers(
    gs: &[GoroutineBrief],
    waits: &Waits,
    names: &describe::Names<'_>,
    releasers: &release::Releasers,
    never: &BTreeSet<u64>,
) -> Vec<GoroutineWhy> {
    let never: HashSet<u64, PcHasher> = never.iter().copied().collect();
    let threads = crate::ordered::threads_for(gs.len(), ANSWERS_PARALLEL_MIN);
    crate::ordered::fill_in_parts(gs, threads, |part, slots| {
        answers_into(part, slots, waits, names, releasers, &never)
    })
}

/// Answers `gs` into `slots` (as many). Goroutines that wait on the same
/// thing share its description, and those that wait on the same objects
/// their list of releasers: 80,000 goroutines on one channel hold one
/// list, not 80,000.
fn answers_into(
    gs: &[GoroutineBrief],
    slots: &mut [Option<GoroutineWhy>],
    waits: &Waits,
    names: &describe::Names<'_>,
    releasers: &release::Releasers,
    never: &HashSet<u64, PcHasher>,
) {
    // Looked up for each of a million goroutines: a cheap hash (SipHash
    // was a fifth of the answers).
    let mut descs: HashMap<Option<&WaitsOn>, Arc<WaitDesc>, PcHasher> = HashMap::default();
    let mut lists: HashMap<Option<&[u64]>, Listed, PcHasher> = HashMap::default();
    // Lists of the same ids, shared whatever objects they came from: each
    // of 200,000 selects on a shared channel and a timer of its own has
    // objects of its own, and the same 100 releasers (160 MB as copies).
    let mut interned: HashSet<Arc<[u64]>, PcHasher> = HashSet::default();
    for (g, slot) in gs.iter().zip(slots) {
        let w = waits.by_goroutine.get(&g.id);
        let waits_on = descs
            .entry(w)
            .or_insert_with(|| Arc::new(names.describe(w)))
            .clone();
        let objects = releasers.objects_of.get(&g.id).map(Vec::as_slice);
        let (may_release, may_release_total) = lists
            .entry(objects)
            .or_insert_with(|| {
                let (ids, total) = releasers.of(g.id, MAX_LISTED);
                let ids = match interned.get(ids.as_slice()) {
                    Some(shared) => shared.clone(),
                    None => {
                        let ids: Arc<[u64]> = ids.into();
                        interned.insert(ids.clone());
                        ids
                    }
                };
                (ids, total)
            })
            .clone();
        *slot = Some(GoroutineWhy {
            id: g.id,
            status: g.status.clone(),
            wait_reason: g.wait_reason.clone(),
            wait_minutes: g.wait_minutes,
            waits_on,
            may_release,
            may_release_total,
            never_wakes: never.contains(&g.id),
            location: g.stack.own_code.clone(),
            created_by: g.created_by.clone(),
        });
    }
}

/// What [`never_wakes`] reads: a [`Snapshot`]'s parts that another
/// thread may hold, over `mem`.
struct OnMemory<'a, M: Memory + ?Sized> {
    prog: &'a GoProgram,
    mem: &'a M,
    bias: u64,
    goroutines: &'a [GoroutineBrief],
}

impl<'a, M: Memory + ?Sized> OnMemory<'a, M> {
    fn of(snap: &Snapshot<'a>, mem: &'a M) -> Self {
        OnMemory {
            prog: snap.prog,
            mem,
            bias: snap.bias,
            goroutines: snap.goroutines,
        }
    }
}

/// The never-wakes set, or why it is unknown.
fn never_wakes<M: Memory + ?Sized>(
    snap: &OnMemory<'_, M>,
    heap: &Heap,
    waits: &Waits,
    stacks: &StackValues,
) -> (BTreeSet<u64>, Option<String>) {
    let roots = match heapwalk::global_roots(snap.prog, &snap.mem, snap.bias, heap) {
        Ok(r) => r,
        Err(e) => {
            return (
                BTreeSet::new(),
                Some(format!("the package variables could not be read: {e}")),
            )
        }
    };
    // A root missed would let a goroutine that may wake be called stuck
    // for good: with any root unread, nothing is decided.
    if !roots.unreadable.is_empty() {
        return (
            BTreeSet::new(),
            Some(format!(
                "part of the roots could not be read: {}",
                roots.unreadable.join("; ")
            )),
        );
    }
    if roots.finalizer_queue_unknown && !finalizer_queue_empty(snap.goroutines) {
        return (
            BTreeSet::new(),
            Some(
                "the finalizers' queue is not named in a binary without symbols, and the \
                 finalizer goroutine is not idle: what it holds may wake a goroutine"
                    .to_string(),
            ),
        );
    }
    let values: Vec<u64> = roots.values().filter(|v| *v != 0).collect();
    // Looked up for every pointer slot the marking meets: a cheap hash
    // (SipHash was a tenth of the marking at a million goroutines).
    let skip: heapwalk::SkipSlots = waits.untraceable_slots.iter().copied().collect();
    let none = WaitsOn::NotBlocked;
    let candidates: Vec<leak::Candidate<'_>> = snap
        .goroutines
        .iter()
        .enumerate()
        .map(|(i, g)| leak::Candidate {
            id: g.id,
            waits_on: waits.by_goroutine.get(&g.id).unwrap_or(&none),
            stack_values: stacks.at(i),
        })
        .collect();
    let never = leak::never_wakes(heap, &snap.mem, &values, &skip, &candidates);
    (never, None)
}

/// Whether the finalizers' queue holds nothing, as the goroutines show it:
/// the finalizer goroutine parks in "finalizer wait" only once the queue is
/// empty, and is started by the first `SetFinalizer`, before which nothing
/// was ever queued.
fn finalizer_queue_empty(gs: &[GoroutineBrief]) -> bool {
    gs.iter()
        .filter(|g| g.stack.runs_finalizers)
        .all(|g| g.wait_reason.as_deref() == Some("finalizer wait"))
}
