//! The pre-copy capture of `goat stacks`: the goroutine list, every `g`
//! and the used part of every stack are copied while the target runs, with
//! the target's writes to them tracked (`process/writetrack`); the target
//! is then stopped only to re-read what changed and what the capture asks
//! for that was not copied yet (a stack that grew, a new goroutine, the Ms,
//! the threads' signal stacks).
//!
//! Why the result is what a stop-the-world capture gives at the final
//! stop: every byte the copy holds is either in a tracked page that was
//! write-protected before it was copied (a write since shows in the final
//! stop's scan, and the page is re-read there), or re-read in the stop.
//! After that refresh the copy equals the frozen target wherever it holds
//! bytes, and the capture itself (`collect::capture_with`) runs in the stop
//! against the frozen target, its ranges served from the copy where the
//! copy holds them whole and read from the target where not. So it asks
//! for exactly the ranges a stop capture asks for and gets the same bytes;
//! only the bytes it asked for are kept (`assemble`, after resuming).
//! Anything the refresh cannot vouch for (a copied range unmapped since, a
//! re-read that failed) makes the stop a plain stop capture instead.
//!
//! When the goroutine list is the one the running capture read, the stop
//! does not even run the capture: `ready.rs` answers from the running
//! capture's plan, deciding again only the goroutines written since.

mod ready;
mod stopscan;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::capture_plan::Plan;
use super::collect::{self, Capture, CaptureError, Fetch, CAPTURE_BUDGET};
use super::discover::Globals;
use super::gcphase::{GcPhase, MarkWait, MarkWatch, Next};
use super::layout::RuntimeLayout;
use crate::process::procfs;
use crate::process::writetrack::{category, PageMap, Query, WriteTracker};
use crate::process::{CapturedMemory, Memory, Target, Threadless};

const PAGE: u64 = 4096;
/// Copied spans closer than this share one scan window: the kernel's cost
/// is per page-table walk, and a window per stack would be 100k calls.
const WINDOW_GAP: u64 = 64 * PAGE;

/// A round that re-reads at most this many pages ends the rounds made
/// while the target runs: the final stop re-reads about 6 us a page.
const QUIET_PAGES: u64 = 512;
/// At most this many rounds, and no round begun after this long: a target
/// that never stops writing is stopped anyway, and its stop re-reads more.
const MAX_ROUNDS: usize = 12;
const ROUNDS_BUDGET: Duration = Duration::from_secs(3);
/// A round that would re-read more than this part (1/N) of the copy makes
/// a new copy instead, at most [`MAX_RECOPIES`] times: re-reading into
/// the compressed copy cost about 14 s a GB at a million goroutines, a new
/// copy 1.7 s a GB of the copy.
const RECOPY_FRACTION: u64 = 8;
const MAX_RECOPIES: u64 = 3;

/// What the final capture allocates per goroutine: the list and its copy
/// (16), `g` ranges (16), decisions (48), stack ranges (16), what was
/// asked for (24), and some room.
const FINAL_BYTES_PER_G: usize = 128;

/// The spans the copy holds, disjoint, by start (see [`fetch_into`]).
#[derive(Debug, Default)]
struct Spans(Vec<(u64, u64)>);

impl Spans {
    /// Spans overlapping `[start, end)`, in order.
    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (&u64, &u64)> {
        // Disjoint and sorted: their ends are sorted too.
        let first = self.0.partition_point(|s| s.1 <= start);
        self.0[first..]
            .iter()
            .take_while(move |s| s.0 < end)
            .map(|(s, e)| (s, e))
    }

    /// Adds spans disjoint from every span held.
    fn add(&mut self, fresh: impl IntoIterator<Item = (u64, u64)>) {
        let before = self.0.len();
        self.0.extend(fresh);
        if self.0.len() > before {
            self.0.sort_unstable();
        }
    }

    /// Whether one span holds all of `[start, end)`: what a read of the
    /// copy (`CapturedMemory::read`, one span per read) can answer.
    fn cover_single(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end)
            .next()
            .is_some_and(|(&s, &e)| s <= start && e >= end)
    }

    /// [`Self::cover_single`] of the range `(addr, len)`; never for one
    /// that would end past 2^64.
    fn holds(&self, (addr, len): (u64, usize)) -> bool {
        addr.checked_add(len as u64)
            .is_some_and(|end| self.cover_single(addr, end))
    }

    /// Whether the spans hold every byte of `[start, end)`.
    fn cover(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for (&s, &e) in self.overlapping(start, end) {
            if s > at {
                return false;
            }
            at = at.max(e);
        }
        at >= end
    }

    /// The parts of `[start, end)` the spans hold, each inside one span.
    fn pieces(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.overlapping(start, end)
            .map(|(&s, &e)| (s.max(start), e.min(end)))
            .collect()
    }

    /// [`Self::pieces`] as `(addr, len)` ranges, to be read again.
    fn ranges_in(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.overlapping(start, end)
            .map(move |(&s, &e)| (s.max(start), (e.min(end) - s.max(start)) as usize))
    }
}

/// `(addr, len)` ranges as sorted, disjoint `[start, end)` runs (touching
/// ones merged), as `CapturedMemory::rewrite_from` forms them; ranges past
/// the end of the address space are left out (never readable).
fn runs_of(ranges: &[(u64, usize)]) -> Vec<(u64, u64)> {
    ordered_runs(ranges)
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect()
}

/// [`runs_of`], each run with the index of the first range in `ranges`
/// it holds.
fn ordered_runs(ranges: &[(u64, usize)]) -> Vec<(u64, u64, usize)> {
    let mut v: Vec<(u64, u64, usize)> = ranges
        .iter()
        .enumerate()
        .filter(|(_, r)| r.1 > 0)
        .filter_map(|(i, &(a, n))| Some((a, a.checked_add(n as u64)?, i)))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64, usize)> = Vec::with_capacity(v.len());
    for (s, e, i) in v {
        match out.last_mut() {
            Some(r) if s <= r.1 => {
                r.1 = r.1.max(e);
                r.2 = r.2.min(i);
            }
            _ => out.push((s, e, i)),
        }
    }
    out
}

/// What [`fetch_into`] did.
struct Fetched {
    /// Whether each range is held whole now, with the bytes just read.
    ok: Vec<bool>,
    /// Parts of spans held before whose re-read failed: their bytes may be
    /// damaged.
    damaged: Vec<(u64, u64)>,
    bytes: u64,
}

/// Reads `ranges` from `src` into `mem`, whose spans `spans` mirrors:
/// the parts `mem` holds are re-read in place, the others added as new
/// spans (one per part, so that each part's success is known and the
/// mirror stays exact). `seen` is told the bytes of each new part as read.
fn fetch_into(
    mem: &mut CapturedMemory,
    spans: &mut Spans,
    src: &dyn Memory,
    ranges: &[(u64, usize)],
    seen: &mut dyn FnMut(u64, &[u8]),
) -> Fetched {
    let mut held = Vec::new();
    let mut fresh = Vec::new();
    for (start, end, first) in ordered_runs(ranges) {
        let mut at = start;
        for (&s, &e) in spans.overlapping(start, end) {
            if s > at {
                fresh.push((first, (at, (s - at) as usize)));
            }
            let (a, b) = (s.max(start), e.min(end));
            held.push((a, (b - a) as usize));
            at = at.max(e);
        }
        if at < end {
            fresh.push((first, (at, (end - at) as usize)));
        }
    }
    // Stored in the order they were asked for, not by address: callers ask
    // in the order they will read (goroutines in `allgs` order), and a
    // spilled copy decodes a block per miss. A million goroutines' stacks
    // stored by address had each block decoded 1.6 times (2.1 with two
    // decoding threads), since a stack that grew lies far from its
    // neighbours in the list.
    fresh.sort_by_key(|f| f.0);
    let fresh: Vec<(u64, usize)> = fresh.into_iter().map(|f| f.1).collect();
    let held_ok = mem.rewrite_from(src, &held);
    // Disjoint from every span and from each other: appended in batches
    // (a spilled copy writes its file once per batch, not once per range).
    let fresh_ok = mem.read_from_seen(src, &fresh, seen);
    let mut bytes = 0;
    let mut damaged = Vec::new();
    for (&(a, n), good) in held.iter().zip(held_ok) {
        match good {
            true => bytes += n as u64,
            false => damaged.push((a, a + n as u64)),
        }
    }
    let mut added = Vec::new();
    for (&(a, n), good) in fresh.iter().zip(fresh_ok) {
        if good {
            bytes += n as u64;
            added.push((a, a + n as u64));
        }
    }
    spans.add(added);
    damaged.sort_unstable();
    let ok = ranges
        .iter()
        .map(|&(a, n)| {
            let Some(end) = a.checked_add(n as u64) else {
                return false;
            };
            let i = damaged.partition_point(|d| d.1 <= a);
            let hit = damaged.get(i).is_some_and(|d| d.0 < end);
            !hit && spans.cover(a, end)
        })
        .collect();
    Fetched { ok, damaged, bytes }
}

/// What the pre-copy capture did, for `--stats`.
#[derive(Debug, Clone, Default)]
pub struct PrecopyStats {
    /// Bytes of the mappings whose writes were tracked.
    pub tracked_bytes: u64,
    /// Bytes copied while the target ran (first copy and the rounds after).
    pub running_bytes: u64,
    /// Bytes read in the final stop: pages written since their copy, and
    /// ranges not copied before.
    pub stopped_bytes: u64,
    /// Pages of the copy written after they were copied and re-read while
    /// running (the rounds) and in the final stop.
    pub pages_rewritten_running: u64,
    pub pages_rewritten_stopped: u64,
    /// Rounds of re-reading made while the target ran.
    pub running_rounds: u64,
    /// Rounds that found much of the copy written and made it again.
    pub recopies: u64,
    /// The garbage collector's marks waited out before the final stop.
    pub gc_marks: Vec<MarkWait>,
    /// Ranges the final capture asked for that the copy did not hold.
    pub ranges_fetched_stopped: u64,
    /// When the final capture was made from the running plan: how many
    /// goroutines it decided again.
    pub redecided: Option<u64>,
    /// Why the final stop fell back to a full stop capture, if it did.
    pub full_capture: Option<String>,
    /// Where the copy was kept (`CapturedMemory::kept`).
    pub kept: &'static str,
    /// How long the final stop's own work took, by step: the scan for
    /// written pages, their re-reading, and the capture.
    pub scan: Duration,
    pub reread: Duration,
    pub plan: Duration,
}

/// A pre-copy capture in progress (see the module's comment).
pub struct Precopy<'p> {
    pid: i32,
    layout: &'p RuntimeLayout,
    globals: Globals,
    tracker: WriteTracker,
    pagemap: PageMap,
    /// Mappings registered with the tracker, `[start, end)`, sorted.
    tracked: Vec<(u64, u64)>,
    /// The target's mappings, as last listed, and the starts of those
    /// already considered for tracking.
    maps: Vec<procfs::Vma>,
    considered: HashSet<u64>,
    /// The copy, and the spans it holds.
    copy: Capture,
    spans: Spans,
    /// Spans whose bytes a failed re-read may have damaged, or that were
    /// read before their mapping was protected: read again in the stop.
    dirty: Vec<(u64, u64)>,
    /// [`Self::windows`], and the counts of spans and tracked mappings it
    /// was made from.
    windows_made: Option<((usize, usize), Ranges, Ranges)>,
    /// Whether every span was still mapped, when last checked.
    mapped: stopscan::MappedCheck,
    /// What each fetch of the running copy asked for, and got whole.
    running_asks: Vec<Vec<((u64, usize), bool)>>,
    /// What the running copy's capture decided from the bytes it read.
    plan: Plan,
    /// Ranges of the copy read again since that capture read them, sorted
    /// and disjoint: where its decisions may be out of date.
    refreshed: Vec<(u64, u64)>,
    /// The plan summed up for a final stop that reuses it, when it can.
    ready: Option<ready::Ready>,
    /// The target's GC marks, when its phase can be found.
    gc: Option<MarkWatch>,
    /// What the final capture asked for (for the test hook).
    pub asked: Vec<((u64, usize), bool)>,
    pub stats: PrecopyStats,
}

/// Fetches made while the target runs: every range read into the copy.
struct RunningFetch<'a, 'p> {
    pc: &'a mut Precopy<'p>,
    mem: &'a dyn Memory,
}

impl Fetch for RunningFetch<'_, '_> {
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        let pc = &mut *self.pc;
        let f = pc.copy_in(mem, self.mem, ranges, seen);
        let asks = ranges
            .iter()
            .zip(&f.ok)
            .map(|(&r, &ok)| (r, ok && pc.spans.holds(r)))
            .collect();
        pc.running_asks.push(asks);
        f.ok
    }

    fn wants_plan(&self) -> bool {
        true
    }

    fn keep_plan(&mut self, plan: Plan) {
        self.pc.plan = plan;
    }
}

/// Fetches of the final stop: ranges the refreshed copy holds whole are
/// served from it, the others read from the frozen target.
struct FinalFetch<'a> {
    spans: &'a mut Spans,
    target: &'a dyn Target,
    stats: &'a mut PrecopyStats,
    /// Every range asked for, and whether it could be read: what a stop
    /// capture would have copied.
    asked: Vec<((u64, usize), bool)>,
    /// Ranges read whole in this stop (they may overlap the spans).
    whole: Vec<(u64, u64)>,
    /// The running copy's fetches, in order, and how many of this
    /// capture's fetches were made.
    running_asks: &'a [Vec<((u64, usize), bool)>],
    calls: usize,
    /// The running copy's plan, and where the copy was read again since.
    prior: Option<Plan>,
    refreshed: &'a [(u64, u64)],
}

impl Fetch for FinalFetch<'_> {
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        _seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        let asked_before = self
            .running_asks
            .get(self.calls)
            .map_or(&[][..], |v| &v[..]);
        self.calls += 1;
        let mut stop = InStop {
            spans: self.spans,
            whole: &mut self.whole,
            target: self.target,
            stats: self.stats,
        };
        // The common case, cheaply: the running copy asked for this very
        // range at this place, and got it whole in one span (spans are
        // never taken away, and were all refreshed).
        let ok = stop.resolve(mem, ranges, |i, r| asked_before.get(i) == Some(&(r, true)));
        self.asked
            .extend(ranges.iter().copied().zip(ok.iter().copied()));
        ok
    }

    fn take_prior(&mut self) -> Option<Plan> {
        self.prior.take()
    }

    /// The running capture read these bytes from the copy; a write to them
    /// since would have been seen and the range read again: so they are
    /// unchanged unless they overlap what was read again.
    fn unchanged(&self, addr: u64, len: usize) -> bool {
        addr.checked_add(len as u64)
            .is_some_and(|end| !overlaps(self.refreshed, addr, end))
    }
}

/// What the decode of a capture made from the plan reads, in its order:
/// each goroutine's `g`, then its stack if one was read (the copy's file
/// holds all the `g`s before all the stacks: a read-ahead of the stacks
/// alone left the `g`s to be read a block at a time).
fn decode_order(gs: &[u64], gsize: u64, d: &ready::Deferred) -> Vec<(u64, usize)> {
    let mut stacks = d.stack_asks().filter(|(_, (_, ok))| *ok).peekable();
    let mut out = Vec::with_capacity(gs.len().saturating_mul(2));
    for (i, &g) in gs.iter().enumerate() {
        out.push((g, gsize as usize));
        while let Some((_, (range, _))) = stacks.next_if(|(k, _)| *k <= i) {
            out.push(range);
        }
    }
    out
}

/// Whether sorted, disjoint `ranges` overlap `[start, end)`.
fn overlaps(ranges: &[(u64, u64)], start: u64, end: u64) -> bool {
    let i = ranges.partition_point(|r| r.1 <= start);
    ranges.get(i).is_some_and(|r| r.0 < end)
}

/// The final stop's reads: a range the refreshed copy holds whole (in one
/// span, or read whole in this stop already) is served from it, any other
/// is read whole from the frozen target, as a stop capture reads it, into
/// a span of its own (the copy's older spans there hold the same bytes).
struct InStop<'a> {
    spans: &'a Spans,
    /// Ranges read whole in this stop (they may overlap the spans).
    whole: &'a mut Vec<(u64, u64)>,
    target: &'a dyn Target,
    stats: &'a mut PrecopyStats,
}

impl InStop<'_> {
    /// Makes each range readable in `mem`; whether each could be read.
    /// `known(i, range)`: the caller knows range `i` to be held whole.
    fn resolve(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        known: impl Fn(usize, (u64, usize)) -> bool,
    ) -> Vec<bool> {
        let mut ok = vec![true; ranges.len()];
        let mut need = Vec::new();
        let mut need_at = Vec::new();
        for (i, &(a, n)) in ranges.iter().enumerate() {
            if known(i, (a, n)) {
                continue;
            }
            match a.checked_add(n as u64) {
                None => ok[i] = false,
                Some(end) if n == 0 || self.spans.cover_single(a, end) => {}
                Some(end) if self.whole.iter().any(|w| w.0 <= a && end <= w.1) => {}
                Some(_) => {
                    need.push((a, n));
                    need_at.push(i);
                }
            }
        }
        if !need.is_empty() {
            let got = mem.read_from(self.target, &need);
            for ((&i, &(a, n)), good) in need_at.iter().zip(&need).zip(got) {
                ok[i] = good;
                self.stats.ranges_fetched_stopped += 1;
                if good {
                    self.stats.stopped_bytes += n as u64;
                    self.whole.push((a, a + n as u64));
                }
            }
        }
        ok
    }
}

/// Ranges asked for, each with whether it could be read.
pub type Asked = Vec<((u64, usize), bool)>;

/// `[start, end)` address ranges.
type Ranges = Vec<(u64, u64)>;

/// A stop capture that also lists the ranges it asked for and whether each
/// could be read (the test hook compares them with a pre-copy capture's).
pub fn recorded_stop_capture(
    t: &dyn Target,
    layout: &RuntimeLayout,
    globals: &Globals,
    now: Option<i64>,
) -> Result<(Capture, Asked), CaptureError> {
    struct Recording<'a>(&'a dyn Target, Vec<((u64, usize), bool)>);
    impl Fetch for Recording<'_> {
        fn fetch(
            &mut self,
            mem: &mut CapturedMemory,
            ranges: &[(u64, usize)],
            _seen: &mut dyn FnMut(u64, &[u8]),
        ) -> Vec<bool> {
            let ok = mem.read_from(self.0, ranges);
            self.1
                .extend(ranges.iter().copied().zip(ok.iter().copied()));
            ok
        }
    }
    let mut rec = Recording(t, Vec::new());
    let cap = collect::capture_with(
        t,
        &mut rec,
        layout,
        globals,
        now,
        Capture::default(),
        CAPTURE_BUDGET,
    )?;
    Ok((cap, rec.1))
}

/// The final stop's capture, to be assembled once the target runs again.
pub struct Finished {
    /// The capture with its ranges, `mem` still to be filled by
    /// [`Precopy::assemble`]; or a full stop capture, complete.
    capture: Capture,
    asked: Option<Vec<((u64, usize), bool)>>,
    /// From a capture made from the plan: what to build `asked` from.
    deferred: Option<ready::Deferred>,
}

impl<'p> Precopy<'p> {
    pub fn new(
        pid: i32,
        layout: &'p RuntimeLayout,
        globals: &Globals,
        tracker: WriteTracker,
        pagemap: PageMap,
    ) -> Precopy<'p> {
        Precopy {
            pid,
            layout,
            globals: *globals,
            tracker,
            pagemap,
            tracked: Vec::new(),
            maps: Vec::new(),
            considered: HashSet::new(),
            copy: Capture::default(),
            spans: Spans::default(),
            dirty: Vec::new(),
            windows_made: None,
            mapped: stopscan::MappedCheck::default(),
            running_asks: Vec::new(),
            plan: Plan::default(),
            refreshed: Vec::new(),
            ready: None,
            gc: None,
            asked: Vec::new(),
            stats: PrecopyStats::default(),
        }
    }

    /// Has the copy wait out the target's GC marks before its final stop
    /// (`gcphase.rs`): a mark writes every `g` it scans.
    pub fn with_gc_phase(mut self, gc: Option<GcPhase>) -> Self {
        self.gc = gc.map(|p| MarkWatch::sampling(p, self.pid));
        self
    }

    /// How much memory the final stop's capture allocates, about: its
    /// lists of goroutines, `g` reads, decisions, stack ranges and what it
    /// asked for (see `heap::warm`).
    pub fn final_heap_estimate(&self) -> usize {
        self.copy.gs.len().saturating_mul(FINAL_BYTES_PER_G)
    }

    /// Keeps the copy in `mem` (empty; in memory or spilled to a file).
    pub fn store_in(&mut self, mem: CapturedMemory) {
        self.stats.kept = mem.kept();
        self.copy.mem = mem;
    }

    /// Registers for write tracking the mappings that hold `ranges`,
    /// before they are first copied (a write after that shows in a scan).
    /// A range outside every trackable mapping is re-read in the final
    /// stop instead. The mappings are listed once; a range outside that
    /// list has them listed again, once per call.
    fn track_ranges(&mut self, ranges: &[(u64, usize)]) {
        let mut relisted = false;
        for &(a, n) in ranges {
            let Some(end) = a.checked_add(n as u64).filter(|_| n > 0) else {
                continue;
            };
            let mut at = a;
            // Each pass moves `at` past one mapping, or ends the loop.
            while at < end {
                let i = self.maps.partition_point(|m| m.end <= at);
                let m = match self.maps.get(i) {
                    Some(m) if m.start <= at => m,
                    _ if !relisted => {
                        relisted = true;
                        self.maps = procfs::maps(self.pid).unwrap_or_default();
                        continue;
                    }
                    _ => break,
                };
                let (ms, me) = (m.start, m.end);
                // Anonymous private memory only: a file's or a shared
                // mapping's pages can change without a write by the target.
                let anon = m.path.is_none() || m.path.as_deref() == Some("[heap]");
                let eligible = m.read && m.write && !m.shared && anon;
                if eligible && self.considered.insert(ms) {
                    self.track_mapping(ms, me);
                }
                at = me;
            }
        }
    }

    /// Tracks the parts of mapping `[ms, me)` not tracked yet. A part
    /// tracked already (the mapping was split since, and this piece has a
    /// start of its own) is not protected again: that would hide the
    /// writes to it the next scan has not reported. The copy's spans in a
    /// part protected now were read before it was: the final stop reads
    /// them again (a span read from a mapping not listed yet, which is
    /// rare).
    fn track_mapping(&mut self, ms: u64, me: u64) {
        let Ok(parts) = self.tracker.track_new(ms, me) else {
            return;
        };
        for (s, e) in parts {
            let k = self.tracked.partition_point(|t| t.0 < s);
            self.tracked.insert(k, (s, e));
            self.stats.tracked_bytes += e - s;
            self.dirty.extend(self.spans.pieces(s, e));
        }
    }

    /// Copies `ranges` from the running target `src` into `mem` (the
    /// copy's store), their mappings tracked first; what a failed re-read
    /// may have damaged is read again in the final stop.
    fn copy_in(
        &mut self,
        mem: &mut CapturedMemory,
        src: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Fetched {
        self.track_ranges(ranges);
        let mut f = fetch_into(mem, &mut self.spans, src, ranges, seen);
        self.stats.running_bytes += f.bytes;
        self.dirty.append(&mut f.damaged);
        f
    }

    /// The copy made while the target runs: the same ranges a capture of
    /// this moment would take (without the threads' registers), then one
    /// round re-reading the pages written meanwhile.
    pub fn copy_running(&mut self, mem: &dyn Memory) -> Result<(), CaptureError> {
        // A mark under way as the copy starts writes into it too.
        if let Some(w) = self.gc.as_mut() {
            w.look(mem);
        }
        self.copy_whole(mem)?;
        self.converge(mem);
        self.prepare_ready(mem);
        // The spans' check against the mappings, made here while the
        // target runs: the final stop repeats it only if they changed.
        if let Ok(maps) = procfs::maps(self.pid) {
            let _ = self.mapped.check(&self.spans.0, &maps);
        }
        Ok(())
    }

    /// The capture of this moment, without the threads' registers (running
    /// goroutines' stacks are taken in the stop), into the copy's store.
    fn copy_whole(&mut self, mem: &dyn Memory) -> Result<(), CaptureError> {
        let running = Threadless(mem);
        let (layout, globals) = (self.layout, self.globals);
        let copy = std::mem::take(&mut self.copy);
        let mut fetch = RunningFetch { pc: self, mem };
        let copy = collect::capture_with(
            &running,
            &mut fetch,
            layout,
            &globals,
            None,
            copy,
            CAPTURE_BUDGET,
        )?;
        self.copy = copy;
        Ok(())
    }

    /// Starts the copy over, into a new store: for a round that would
    /// re-read much of it. Every copied page was protected again by the
    /// round's scan, so a write from now on shows in the next one. `false`
    /// if no new store could be made (the round then re-reads as usual).
    fn recopy(&mut self, mem: &dyn Memory) -> bool {
        let Ok(store) = collect::prepare_spilled(mem, self.layout, &self.globals) else {
            return false;
        };
        self.copy = store;
        self.spans = Spans::default();
        self.dirty.clear();
        self.windows_made = None;
        self.running_asks.clear();
        self.plan = Plan::default();
        self.refreshed.clear();
        self.ready = None;
        self.stats.recopies += 1;
        // A copy that fails part-way leaves more for the stop, as the
        // first one does.
        let _ = self.copy_whole(mem);
        true
    }

    /// [`Self::rounds`], then, while the collector marks or has marked
    /// since the copy began, its end is waited for and the rounds taken
    /// again (`gcphase.rs`): a mark that met the copy at a million
    /// goroutines left 86k pages to the stop, which took 1016 ms to re-read
    /// them.
    fn converge(&mut self, mem: &dyn Memory) {
        self.rounds(mem);
        while let Some(Next::CopyAgain) = self.gc.as_mut().map(|w| w.before_final_stop(mem)) {
            self.rounds(mem);
        }
        if let Some(w) = &self.gc {
            self.stats.gc_marks.clone_from(&w.marks);
        }
    }

    /// Rounds of [`Self::round`] until one finds few pages written (the
    /// final stop then finds about as few) or the budget is spent: a
    /// target that never stops writing is stopped anyway.
    fn rounds(&mut self, mem: &dyn Memory) {
        let started = Instant::now();
        for _ in 0..MAX_ROUNDS {
            let (pages, recopied) = self.round(mem);
            if let Some(w) = self.gc.as_mut() {
                w.look(mem);
            }
            // A new copy is a first copy: a round always follows it.
            if !recopied && (pages <= QUIET_PAGES || started.elapsed() >= ROUNDS_BUDGET) {
                break;
            }
        }
    }

    /// Re-reads, running, the copied pages written since they were copied
    /// (the scan protects them again first: a write after it shows in the
    /// final stop), so the final stop finds fewer; or, when they are much
    /// of the copy, copies it anew. Returns how many pages were written,
    /// and whether the copy was made anew.
    fn round(&mut self, mem: &dyn Memory) -> (u64, bool) {
        let mut again = Vec::new();
        let mut pages = 0;
        for (ws, we) in self.windows().0 {
            let Ok(runs) = self.pagemap.take_written(ws, we) else {
                // A walk that failed part-way (a mapping in the window no
                // longer registered) may have protected the pages it
                // reported before failing: the copy there is read again
                // after them. (The final stop's scan of such a window
                // fails too, and reads it all again.)
                again.extend(self.spans.ranges_in(ws, we));
                continue;
            };
            for r in runs {
                pages += (r.end - r.start) / PAGE;
                again.extend(self.spans.ranges_in(r.start, r.end));
            }
        }
        // Each re-read range is a patch to its compressed blocks, and a
        // block patched is decoded and encoded again whole: after a
        // garbage collection, which writes every `g` and moves the stacks
        // it shrinks, re-reading a million goroutines' copy that way took
        // 22 s in three rounds, where copying it afresh takes 3.
        let stale: u64 = again.iter().map(|r| r.1 as u64).sum();
        let held: u64 = self.spans.0.iter().map(|(s, e)| e - s).sum();
        self.stats.pages_rewritten_running += pages;
        self.stats.running_rounds += 1;
        if self.stats.recopies < MAX_RECOPIES && stale > held / RECOPY_FRACTION && self.recopy(mem)
        {
            return (pages, true);
        }
        self.note_refreshed(&again);
        let f = fetch_into(
            &mut self.copy.mem,
            &mut self.spans,
            mem,
            &again,
            &mut |_, _| {},
        );
        self.stats.running_bytes += f.bytes;
        self.dirty.extend(f.damaged);
        (pages, false)
    }

    /// Records ranges about to be read again into the copy.
    fn note_refreshed(&mut self, ranges: &[(u64, usize)]) {
        let mut all: Vec<(u64, usize)> = self
            .refreshed
            .iter()
            .map(|&(s, e)| (s, (e - s) as usize))
            .chain(ranges.iter().copied())
            .collect();
        // A range past the end of the address space is never held.
        all.retain(|r| r.0.checked_add(r.1 as u64).is_some());
        self.refreshed = runs_of(&all);
    }

    /// Scan windows over the copied spans inside tracked mappings, and the
    /// spans (or parts) outside every tracked mapping. Made once for the
    /// running round and kept for the final stop: spans and tracked
    /// mappings are only ever added to, so while their counts are the same
    /// so are the windows (a million spans took 13 ms to walk, in the stop).
    fn windows(&mut self) -> (Ranges, Ranges) {
        let key = (self.spans.0.len(), self.tracked.len());
        match &self.windows_made {
            Some((k, w, u)) if *k == key => (w.clone(), u.clone()),
            _ => {
                let (w, u) = self.make_windows();
                self.windows_made = Some((key, w.clone(), u.clone()));
                (w, u)
            }
        }
    }

    fn make_windows(&self) -> (Ranges, Ranges) {
        let mut windows: Vec<(u64, u64)> = Vec::new();
        let mut untracked = Vec::new();
        // Spans are sorted and disjoint, so `at` only grows: the tracked
        // mapping that may hold it is found by moving a cursor forward.
        let mut i = 0;
        for &(s, e) in &self.spans.0 {
            let mut at = s;
            while at < e {
                while self.tracked.get(i).is_some_and(|m| m.1 <= at) {
                    i += 1;
                }
                match self.tracked.get(i) {
                    Some(&(ms, me)) if ms <= at => {
                        let end = e.min(me);
                        let (ps, pe) = (at & !(PAGE - 1), end.div_ceil(PAGE) * PAGE);
                        match windows.last_mut() {
                            // Same mapping (a window never spans two: a
                            // scan must stay inside registered ranges).
                            Some(w) if ps <= w.1.saturating_add(WINDOW_GAP) && w.0 >= ms => {
                                w.1 = w.1.max(pe.min(me));
                            }
                            _ => windows.push((ps.max(ms), pe.min(me))),
                        }
                        at = end;
                    }
                    Some(&(ms, _)) => {
                        let end = e.min(ms);
                        untracked.push((at, end));
                        at = end;
                    }
                    None => {
                        untracked.push((at, e));
                        at = e;
                    }
                }
            }
        }
        (windows, untracked)
    }

    /// The final stop's work, with every thread of the target stopped (`t`):
    /// the copy is refreshed, then the capture runs against it.
    pub fn finish(&mut self, t: &dyn Target, now: Option<i64>) -> Result<Finished, CaptureError> {
        let started = Instant::now();
        let stale = self.stale_ranges();
        self.stats.scan = started.elapsed();
        let started = Instant::now();
        let refreshed = stale.and_then(|ranges| {
            self.note_refreshed(&ranges);
            let f = fetch_into(
                &mut self.copy.mem,
                &mut self.spans,
                t,
                &ranges,
                &mut |_, _| {},
            );
            self.stats.stopped_bytes += f.bytes;
            match f.damaged.is_empty() && f.ok.iter().all(|&g| g) {
                true => Ok(()),
                false => Err("a copied range could not be read again".to_string()),
            }
        });
        self.stats.reread = started.elapsed();
        let started = Instant::now();
        let fin = match refreshed {
            Ok(()) => match self.capture_ready(t, now) {
                Some(f) => Ok(f),
                None => self.capture_on_copy(t, now)?,
            },
            Err(why) => Err(why),
        };
        let fin = match fin {
            Ok(f) => f,
            Err(why) => {
                // What the copy cannot vouch for: a plain stop capture.
                self.stats.full_capture = Some(why);
                let cap = collect::capture(t, self.layout, &self.globals, now, Capture::default())?;
                self.stats.stopped_bytes += cap.bytes as u64;
                Finished {
                    capture: cap,
                    asked: None,
                    deferred: None,
                }
            }
        };
        self.stats.plan = started.elapsed();
        Ok(fin)
    }

    /// The capture of the final stop, its ranges served from the refreshed
    /// copy where it holds them; `Err(why)` if a read failed over bytes the
    /// copy held.
    fn capture_on_copy(
        &mut self,
        t: &dyn Target,
        now: Option<i64>,
    ) -> Result<Result<Finished, String>, CaptureError> {
        let mem = std::mem::take(&mut self.copy.mem);
        let mut fetch = FinalFetch {
            spans: &mut self.spans,
            target: t,
            stats: &mut self.stats,
            asked: Vec::new(),
            whole: Vec::new(),
            running_asks: &self.running_asks,
            calls: 0,
            prior: Some(std::mem::take(&mut self.plan)),
            refreshed: &self.refreshed,
        };
        let cap = Capture {
            mem,
            ..Capture::default()
        };
        let cap = collect::capture_with(
            t,
            &mut fetch,
            self.layout,
            &self.globals,
            now,
            cap,
            CAPTURE_BUDGET,
        )?;
        let asked = std::mem::take(&mut fetch.asked);
        Ok(Ok(Finished {
            capture: cap,
            asked: Some(asked),
            deferred: None,
        }))
    }

    /// Ranges of the copy to read again in the final stop: pages written
    /// since they were copied (or gone: a page given back reads as zero),
    /// spans outside tracked mappings, and spans a failed read may have
    /// damaged. `Err(why)` when a span lies outside every readable mapping
    /// now: the copy holds bytes the target no longer has.
    fn stale_ranges(&mut self) -> Result<Vec<(u64, usize)>, String> {
        let maps = procfs::maps(self.pid).map_err(|e| format!("reading the mappings: {e}"))?;
        self.mapped.check(&self.spans.0, &maps)?;
        let (windows, untracked) = self.windows();
        let mut stale: Vec<(u64, u64)> = untracked;
        stale.append(&mut self.dirty);
        // Written, or not present (given back: it reads as zero now; or
        // swapped out, read again for nothing): the kernel reports only
        // those runs.
        let q = Query {
            inverted: category::PRESENT,
            any: category::WRITTEN | category::PRESENT,
            report: category::WRITTEN | category::PRESENT,
            ..Query::default()
        };
        for ((ws, we), scanned) in stopscan::scan_windows(&self.pagemap, &windows, q) {
            match scanned {
                Ok(runs) => {
                    for r in runs {
                        self.stats.pages_rewritten_stopped += (r.end - r.start) / PAGE;
                        stale.push((r.start, r.end));
                    }
                }
                // No longer registered (unmapped and mapped again):
                // nothing in it is known unchanged.
                Err(_) => stale.push((ws, we)),
            }
        }
        let mut out = Vec::new();
        for (s, e) in stale {
            out.extend(self.spans.ranges_in(s, e));
        }
        Ok(out)
    }

    /// After the target resumed: the capture of the final stop, holding
    /// only the ranges it asked for (the copy holds older ones too), as a
    /// stop capture would. The copy's bytes stay where they are: only its
    /// index changes.
    pub fn assemble(&mut self, fin: Finished) -> Capture {
        let Finished {
            mut capture,
            asked,
            deferred,
        } = fin;
        let mut reads = None;
        let asked = match deferred {
            Some(d) => {
                let asked = d.asked();
                reads = Some(decode_order(&capture.gs, self.layout.g.size, &d));
                // What a stop capture counts: every range it could read.
                capture.bytes += asked.iter().filter(|a| a.1).map(|a| a.0 .1).sum::<usize>();
                Some(asked)
            }
            None => asked,
        };
        self.asked = asked.clone().unwrap_or_default();
        let Some(asked) = asked else {
            capture.mem.begin_reads();
            return capture;
        };
        let ranges: Vec<(u64, usize)> = asked.iter().filter(|a| a.1).map(|a| a.0).collect();
        capture.mem.restrict_to(&ranges);
        // A capture made in the stop said so itself (`capture_with`).
        if let Some(reads) = reads {
            capture.mem.will_read(reads);
        }
        capture.mem.begin_reads();
        capture
    }

    /// The write tracking, to end with [`WriteTracker::release`] (which
    /// clears the protection of every page: the target takes no more
    /// faults for it) or by dropping it.
    pub fn into_tracker(self) -> WriteTracker {
        self.tracker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::MemoryExt;

    /// Source memory holding `0x0e00..0x2100`, byte = low bits of the address.
    fn source() -> CapturedMemory {
        let mut src = CapturedMemory::new();
        src.insert(
            0x0e00,
            &(0x0e00u64..0x2100).map(|a| a as u8).collect::<Vec<_>>(),
        );
        src
    }

    #[test]
    fn fetches_add_only_what_no_span_held_and_report_each_range() {
        let src = source();
        let (mut mem, mut s) = (CapturedMemory::new(), Spans::default());
        // Each new part read is told as read (overlapping asks: one part).
        let mut told = Vec::new();
        let f = fetch_into(
            &mut mem,
            &mut s,
            &src,
            &[(0x1000, 0x100), (0x1080, 0x100)],
            &mut |a, b| told.push((a, b.to_vec())),
        );
        assert_eq!((f.ok, f.bytes), (vec![true, true], 0x180));
        assert_eq!(told, vec![(0x1000, src.read_vec(0x1000, 0x180).unwrap())]);
        // A stack grown below, a range partly unreadable, one past the end
        // of the address space: only the parts around what was held are
        // new and read, so only they are told.
        told.clear();
        let f = fetch_into(
            &mut mem,
            &mut s,
            &src,
            &[(0x0f00, 0x300), (0x20f0, 0x20), (u64::MAX - 4, 8)],
            &mut |a, b| told.push((a, b.to_vec())),
        );
        assert_eq!(f.ok, vec![true, false, false]);
        let around = [(0x0f00, 0x100), (0x1180, 0x80)];
        let want: Vec<_> = around
            .iter()
            .map(|&(a, n)| (a, src.read_vec(a, n).unwrap()))
            .collect();
        assert_eq!(told, want);
        assert!(f.damaged.is_empty());
        assert!(s.cover(0x0f00, 0x1200) && !s.cover(0x20f0, 0x2100));
        assert!(!s.cover(0x0f00, 0x1208));
        assert_eq!(
            s.pieces(0x0ff0, 0x1010),
            vec![(0x0ff0, 0x1000), (0x1000, 0x1010)]
        );
        assert!(runs_of(&[(u64::MAX - 4, 8)]).is_empty());
    }

    #[test]
    fn fresh_bytes_are_stored_in_the_order_asked() {
        let src = source();
        let (mut mem, mut s) = (CapturedMemory::new(), Spans::default());
        // Asked for out of address order; the middle range joins two asks
        // (the run stored where its first ask was).
        let asks = [(0x1800, 0x10), (0x1000, 0x10), (0x1400, 0x10), (0x1410, 8)];
        fetch_into(&mut mem, &mut s, &src, &asks, &mut |_, _| {});
        assert_eq!(mem.stored_order(), vec![0x1800, 0x1000, 0x1400]);
        assert_eq!(
            ordered_runs(&asks),
            vec![
                (0x1000, 0x1010, 1),
                (0x1400, 0x1418, 2),
                (0x1800, 0x1810, 0)
            ]
        );
    }
}
