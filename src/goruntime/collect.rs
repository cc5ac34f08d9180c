//! The stop-time half of a dump: copy bytes out of the frozen target, as few
//! reads as possible, and nothing else. Decoding happens after resuming.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

use super::capture_plan::{merge_runs, merge_runs_ordered, GSaid, Plan, Runs, StackFields};
use super::discover::Globals;
use super::layout::RuntimeLayout;
use super::version::{G_DEAD, G_DEAD_EXTRA, G_RUNNING, G_SCAN, G_SYSCALL};
use crate::process::{CapturedMemory, Memory, MemoryExt, ReadFault, Target, Thread};

/// No process has more goroutines than this; a larger `len(allgs)` is garbage.
pub(super) const MAX_GOROUTINES: u64 = 1 << 24;
/// Stack bytes copied per goroutine at most (from SP up). Deeper stacks are
/// cut and reported as such.
const MAX_STACK_COPY: u64 = 4 << 20;
/// Bytes copied from the SP of a thread that is off its goroutine's stack:
/// Go's signal stacks are 32 KiB, and the signal frame is near their top.
const SIGNAL_STACK_COPY: usize = 32 << 10;
/// Wait reason strings are short; a longer one is garbage.
const MAX_REASON_LEN: usize = 64;
/// Bytes one capture copies at most (`runtime.g`s and stacks): what target
/// data asks for (a core listing a million goroutines with 4 MiB stacks)
/// must not decide how much memory goat takes. Goroutines past it are
/// shown unreadable, with [`OVER_BUDGET`] as the reason.
pub const CAPTURE_BUDGET: u64 = 2 << 30;
/// Why a goroutine past [`CAPTURE_BUDGET`] has no frames.
pub const OVER_BUDGET: &str =
    "not copied: the dump's byte budget (2 GiB by default) was spent on other goroutines";

/// The bytes of one stop.
#[derive(Debug, Default)]
pub struct Capture {
    pub mem: CapturedMemory,
    /// Addresses of every `runtime.g` in `allgs` order.
    pub gs: Vec<u64>,
    pub threads: Vec<Thread>,
    /// The target's `nanotime()` at the stop, when known (live process).
    pub now: Option<i64>,
    /// `runtime.waitReasonStrings`, when it could be read.
    pub wait_reasons: Vec<String>,
    /// Bytes copied while stopped.
    pub bytes: usize,
    /// `runtime.g`s whose stacks (or selves) were not copied: the budget was
    /// spent.
    pub over_budget: BTreeSet<u64>,
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("cannot read runtime.allgs: {0}")]
    AllGs(ReadFault),
    #[error("runtime.allgs has an implausible length {0}")]
    BadLength(u64),
}

/// Where the capture's ranges come from. A stop-the-world capture reads
/// each from the stopped target ([`ReadAll`]); the pre-copy capture
/// (`precopy.rs`) answers most of them from bytes it copied while the
/// target ran and knows to be unchanged.
pub trait Fetch {
    /// Makes the bytes of each range, as the target holds them now,
    /// readable in `mem`; returns whether each could be read. A fetch may
    /// tell `seen` the address and bytes of what it reads from the target,
    /// as it reads them (a part of a range, a range, or several touching
    /// ones at once), so the caller can look at them without reading `mem`
    /// back; what it does not tell, the caller reads from `mem`.
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool>;

    /// [`Fetch::fetch`] for a caller that looks at every byte of the
    /// ranges: a fetch that would tell nothing tells all it can (see
    /// `CapturedMemory::read_from_told`).
    fn fetch_told(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        self.fetch(mem, ranges, seen)
    }

    /// The plan of an earlier capture into the same `mem`, whose decisions
    /// this capture may reuse where [`Fetch::unchanged`] vouches for their
    /// bytes (taken once, at the start).
    fn take_prior(&mut self) -> Option<Plan> {
        None
    }

    /// Whether `[addr, addr + len)` holds the same bytes in `mem` as when
    /// the prior plan's capture read them, and still what the target holds.
    fn unchanged(&self, _addr: u64, _len: usize) -> bool {
        false
    }

    /// Whether this capture's own plan is wanted ([`Fetch::keep_plan`]).
    fn wants_plan(&self) -> bool {
        false
    }

    fn keep_plan(&mut self, _plan: Plan) {}
}

/// Every range read from the target.
pub struct ReadAll<'a>(pub &'a dyn Target);

impl Fetch for ReadAll<'_> {
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        mem.read_from_seen(self.0, ranges, seen)
    }

    fn fetch_told(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        mem.read_from_told(self.0, ranges, seen)
    }
}

/// An empty capture sized for the target's current goroutine count (read
/// while it runs; only an estimate), so the stop spends no time growing it.
pub fn prepare(mem: &dyn Memory, layout: &RuntimeLayout, globals: &Globals) -> Capture {
    prepare_within(mem, layout, globals, CAPTURE_BUDGET)
}

/// [`prepare`] for a capture of at most `budget` bytes: the arena is
/// faulted in up front, so reserving more than the capture may copy would
/// cost the memory (and, for a hostile `allgs` length, the time) of pages
/// never used.
pub fn prepare_within(
    mem: &dyn Memory,
    layout: &RuntimeLayout,
    globals: &Globals,
    budget: u64,
) -> Capture {
    let cap = usize::try_from(budget).unwrap_or(usize::MAX).min(1 << 30);
    let len = mem.read_u64(globals.allgs.saturating_add(8)).unwrap_or(0);
    // A length the capture will refuse (see `capture_within`) needs no
    // arena: faulting one in would be time spent for nothing.
    let goroutines = if len > MAX_GOROUTINES || len.saturating_mul(8) > budget {
        0
    } else {
        len as usize
    };
    // A g, its share of a merged run, and the used top of its stack.
    let per_g = layout.g.size as usize * 3 / 2 + 1024;
    Capture {
        mem: CapturedMemory::with_capacity(goroutines.saturating_mul(per_g).min(cap)),
        ..Capture::default()
    }
}

/// Captures expected to copy more than this keep their bytes in a
/// temporary file ([`prepare_spilled`]): about 40k service goroutines.
pub const SPILL_MIN_BYTES: usize = 64 << 20;

/// Captures expected to copy more than this are spilled compressed;
/// smaller ones raw (`CapturedMemory::spilled_raw`): at 100k goroutines
/// (190 MB) compressing and decompressing was a third of `goat stacks`'
/// CPU, while at a million the raw file would take 1.9 GB of disk.
pub const RAW_MAX_BYTES: usize = 512 << 20;

/// An empty capture for a copy made while the target runs, where
/// writing to a file costs no pause: in an unlinked temporary
/// file in `$TMPDIR` (else `/var/tmp`) when the target's goroutines are
/// expected to copy more than [`SPILL_MIN_BYTES`], so goat's memory does
/// not grow with their number; on the heap otherwise. Fails only when the
/// temporary file cannot be made.
pub fn prepare_spilled(
    mem: &dyn Memory,
    layout: &RuntimeLayout,
    globals: &Globals,
) -> std::io::Result<Capture> {
    let len = mem.read_u64(globals.allgs.saturating_add(8)).unwrap_or(0);
    let per_g = layout.g.size.saturating_mul(3) / 2 + 1024;
    let expected = len.min(MAX_GOROUTINES).saturating_mul(per_g);
    let mem = if expected > RAW_MAX_BYTES as u64 {
        CapturedMemory::spilled()?
    } else if expected > SPILL_MIN_BYTES as u64 {
        CapturedMemory::spilled_raw()?
    } else {
        CapturedMemory::new()
    };
    Ok(Capture {
        mem,
        ..Capture::default()
    })
}

/// Copies what decoding needs into `cap` (from [`prepare`]).
/// `bias` = run-time − link-time address.
pub fn capture(
    t: &dyn Target,
    layout: &RuntimeLayout,
    globals: &Globals,
    now: Option<i64>,
    cap: Capture,
) -> Result<Capture, CaptureError> {
    capture_within(t, layout, globals, now, cap, CAPTURE_BUDGET)
}

/// [`capture`] copying at most `budget` bytes of `g`s and stacks.
pub fn capture_within(
    t: &dyn Target,
    layout: &RuntimeLayout,
    globals: &Globals,
    now: Option<i64>,
    cap: Capture,
    budget: u64,
) -> Result<Capture, CaptureError> {
    capture_with(t, &mut ReadAll(t), layout, globals, now, cap, budget)
}

/// [`capture_within`] with the ranges of `g`s, Ms and stacks (and the
/// `allgs` array) got through `fetch`; `t` gives the threads and the few
/// words read on their own. Which ranges are asked for depends only on
/// what `t` and the fetched bytes hold, so two captures of the same
/// frozen target ask for the same ranges, however they are fetched.
pub fn capture_with(
    t: &dyn Target,
    fetch: &mut dyn Fetch,
    layout: &RuntimeLayout,
    globals: &Globals,
    now: Option<i64>,
    mut cap: Capture,
    budget: u64,
) -> Result<Capture, CaptureError> {
    let fetch = &mut Counted {
        inner: fetch,
        calls: 0,
    };
    let prior = fetch.take_prior().unwrap_or_default();
    let mut plan = fetch.wants_plan().then(Plan::default);
    cap.threads = t.threads().to_vec();
    cap.now = now;
    let (list, gs) = read_allgs(t, fetch, &prior, globals, budget, &mut cap)?;
    cap.gs = gs;

    let gsize = layout.g.size as usize;
    let mut spent = 0u64;
    let mut gs = cap.gs.clone();
    let affordable = (budget / layout.g.size.max(1)) as usize;
    if gs.len() > affordable {
        cap.over_budget.extend(gs.drain(affordable..));
    }
    spent += gs.len() as u64 * layout.g.size;
    let granges: Vec<(u64, usize)> = gs.iter().map(|&g| (g, gsize)).collect();
    // The same list as the prior plan's (unchanged bytes): the same runs.
    let (runs, by_addr) = match prior.gs == gs {
        true => (prior.g_runs.clone(), Vec::new()),
        false => merge_runs_ordered(&granges, G_MERGE_GAP, MAX_RUN),
    };
    // Each g read from the target now is decided as its bytes go by: read
    // back from a spilled copy, a million `g`s would be decompressed again.
    let mut early = GsSeen::new(&gs, &by_addr, layout);
    let read_ok = read_merged(fetch, &mut cap, &granges, &runs, &mut |a, b| {
        early.see(a, b)
    });
    let mut early = early.said;
    drop(by_addr);

    // One look-up per g: the fields that decide which stack bytes to copy,
    // or the prior plan's decision where the g's bytes are unchanged since.
    let mut gbuf = vec![0u8; gsize];
    let mut said = Vec::with_capacity(if plan.is_some() { cap.gs.len() } else { 0 });
    // The live goroutines in order, each with what its g said.
    let mut live = Vec::with_capacity(gs.len());
    for (i, (&g, ok)) in gs.iter().zip(read_ok).enumerate() {
        let reused = match prior.said(i, g) {
            Some(s @ (GSaid::Dead | GSaid::Parked { .. } | GSaid::Running(_)))
                if ok && fetch.unchanged(g, gsize) =>
            {
                Some(s.clone())
            }
            _ => None,
        };
        let now_said = match reused {
            Some(s) => s,
            None if !ok => GSaid::Unread,
            None => match early.get_mut(i).and_then(Option::take) {
                Some(s) => s,
                None => said_of(&cap.mem, layout, g, &mut gbuf),
            },
        };
        // Kept for the plan only when one is wanted (the running copy, which
        // has no prior): the final stop moves each decision, never copies it.
        if plan.is_some() {
            said.push(now_said.clone());
        }
        if matches!(now_said, GSaid::Parked { .. } | GSaid::Running(_)) {
            live.push((g, now_said));
        }
    }
    if let Some(plan) = plan.as_mut() {
        said.resize(cap.gs.len(), GSaid::Unread);
        *plan = Plan {
            list,
            gs,
            g_runs: runs,
            said,
            stacks_call: 0,
        };
    }

    // The Ms of goroutines that are on a thread, to find the thread's registers.
    let ms: BTreeSet<u64> = live
        .iter()
        .map(|(_, s)| match s {
            GSaid::Parked { m, .. } => *m,
            GSaid::Running(f) => f.m,
            _ => 0,
        })
        .filter(|&m| m != 0)
        .collect();
    let mranges = m_ranges(ms.into_iter(), layout);
    read_ranges(fetch, &mut cap, &mranges);

    // Stacks, from the SP the unwinder will start at up to stack.hi.
    let sps = ThreadSps::of(&cap.threads);
    let mut stacks = Vec::with_capacity(live.len());
    let mut signal_stacks = Vec::new();
    for (g, s) in &live {
        let (signal, stack) = match s {
            GSaid::Parked { stack, .. } => (None, *stack),
            GSaid::Running(p) => sps.want(p, &cap.mem, layout),
            _ => continue,
        };
        if signal.is_none() && stack.is_none() {
            continue;
        }
        let cost = signal.map_or(0, |w| w.1 as u64) + stack.map_or(0, |w| w.1 as u64);
        if spent.saturating_add(cost) > budget {
            cap.over_budget.insert(*g);
            continue;
        }
        spent += cost;
        signal_stacks.extend(signal);
        stacks.extend(stack);
    }
    let stacks_call = fetch.calls;
    read_ranges(fetch, &mut cap, &stacks);
    // The decode reads them in this order, each once.
    cap.mem.will_read(stacks);
    read_signal_stacks(fetch, &mut cap, &signal_stacks);

    if let Some((addr, n)) = globals.wait_reasons {
        cap.wait_reasons = read_wait_reasons(t, fetch, addr, n, &mut cap);
    }
    if let Some(mut plan) = plan {
        plan.stacks_call = stacks_call;
        fetch.keep_plan(plan);
    }
    Ok(cap)
}

/// A [`Fetch`] that counts its calls: the plan says which of them asked
/// for the stacks.
struct Counted<'f> {
    inner: &'f mut dyn Fetch,
    calls: usize,
}

impl Fetch for Counted<'_> {
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        self.calls += 1;
        self.inner.fetch(mem, ranges, seen)
    }
    fn fetch_told(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        self.calls += 1;
        self.inner.fetch_told(mem, ranges, seen)
    }
    fn take_prior(&mut self) -> Option<Plan> {
        self.inner.take_prior()
    }
    fn unchanged(&self, addr: u64, len: usize) -> bool {
        self.inner.unchanged(addr, len)
    }
    fn wants_plan(&self) -> bool {
        self.inner.wants_plan()
    }
    fn keep_plan(&mut self, plan: Plan) {
        self.inner.keep_plan(plan)
    }
}

/// The ranges of the Ms `ms` (ascending, each once), for reading them;
/// one that would end past 2^64 (target bytes) is left out.
pub(super) fn m_ranges(ms: impl Iterator<Item = u64>, layout: &RuntimeLayout) -> Vec<(u64, usize)> {
    let size = layout.m.size;
    ms.filter(|m| m.checked_add(size).is_some())
        .map(|m| (m, size as usize))
        .collect()
}

/// The stopped threads' SPs, by the thread id the runtime knows each by:
/// where a running goroutine's stack is in use.
pub(super) struct ThreadSps(HashMap<i64, u64>);

impl ThreadSps {
    pub(super) fn of(threads: &[Thread]) -> Self {
        ThreadSps(
            threads
                .iter()
                .map(|th| (i64::from(th.go_tid()), th.regs.rsp))
                .collect(),
        )
    }

    /// What running goroutine `p` asks for, its M's thread id read from
    /// `mem` (which holds the M).
    pub(super) fn want<M: Memory + ?Sized>(
        &self,
        p: &StackFields,
        mem: &M,
        layout: &RuntimeLayout,
    ) -> Wants {
        let tid =
            p.m.checked_add(layout.m.procid)
                .and_then(|a| mem.read_u64(a).ok())
                .unwrap_or(0) as i64;
        let sp = self.0.get(&tid).copied();
        running_want(p, sp.filter(|&sp| sp != u64::MAX))
    }
}

/// What the `g` at `g` in `mem` says (`gbuf`: room for one `g`).
pub(super) fn said_of<M: Memory + ?Sized>(
    mem: &M,
    layout: &RuntimeLayout,
    g: u64,
    gbuf: &mut [u8],
) -> GSaid {
    if g.checked_add(gbuf.len() as u64).is_none() || mem.read(g, gbuf).is_err() {
        return GSaid::Unread;
    }
    said_by(layout, gbuf)
}

/// What a `g`'s bytes `gbuf` say.
fn said_by(layout: &RuntimeLayout, gbuf: &[u8]) -> GSaid {
    let goff = &layout.g;
    let field = |off: u64| {
        gbuf.get(off as usize..off as usize + 8)
            .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
    };
    match (field(goff.atomicstatus) as u32) & !G_SCAN {
        G_DEAD | G_DEAD_EXTRA => GSaid::Dead,
        status => decide(StackFields {
            status,
            lo: field(goff.stack_lo),
            hi: field(goff.stack_hi),
            sched_sp: field(goff.sched_sp),
            syscallsp: field(goff.syscallsp),
            m: field(goff.m),
        }),
    }
}

/// The `g`s decided from bytes a fetch told as it read them (see
/// [`Fetch::fetch`]), by index in the list.
struct GsSeen<'a> {
    gs: &'a [u64],
    /// Indexes into `gs`, by address.
    by_addr: &'a [usize],
    layout: &'a RuntimeLayout,
    /// Empty until something is told.
    said: Vec<Option<GSaid>>,
}

impl<'a> GsSeen<'a> {
    fn new(gs: &'a [u64], by_addr: &'a [usize], layout: &'a RuntimeLayout) -> Self {
        GsSeen {
            gs,
            by_addr,
            layout,
            said: Vec::new(),
        }
    }

    /// Decides every `g` lying whole in the `bytes` at `addr`.
    fn see(&mut self, addr: u64, bytes: &[u8]) {
        let gsize = self.layout.g.size as usize;
        let first = self.by_addr.partition_point(|&i| self.gs[i] < addr);
        for &i in &self.by_addr[first..] {
            // `g >= addr`: the offset is in range; past the bytes, done.
            let at = (self.gs[i] - addr) as usize;
            let Some(gbuf) = at.checked_add(gsize).and_then(|end| bytes.get(at..end)) else {
                break;
            };
            if self.said.is_empty() {
                self.said.resize(self.gs.len(), None);
            }
            self.said[i] = Some(said_by(self.layout, gbuf));
        }
    }
}

/// Reads the threads' signal stacks, each on its own: its end may be
/// unmapped, and then at least the rest of its page.
pub(super) fn read_signal_stacks(
    fetch: &mut dyn Fetch,
    cap: &mut Capture,
    signal_stacks: &[(u64, usize)],
) {
    for &(sp, len) in signal_stacks {
        if !read_ranges(fetch, cap, &[(sp, len)])
            .first()
            .copied()
            .unwrap_or(false)
        {
            read_ranges(fetch, cap, &[(sp, (0x1000 - (sp & 0xfff)) as usize)]);
        }
    }
}

/// What a live `g`'s fields decide: a goroutine off any thread has its
/// stack range now; one on a thread waits for the thread's registers.
fn decide(f: StackFields) -> GSaid {
    match f.status {
        G_RUNNING => GSaid::Running(Box::new(f)),
        _ => GSaid::Parked {
            m: f.m,
            stack: stack_from(&f, [f.sched_sp, syscall_sp(&f), u64::MAX]),
        },
    }
}

fn syscall_sp(f: &StackFields) -> u64 {
    match f.status {
        G_SYSCALL => f.syscallsp,
        _ => u64::MAX,
    }
}

/// The stack from the lowest of `sps` that is on it up to `stack.hi`.
fn stack_from(f: &StackFields, sps: [u64; 3]) -> Option<(u64, usize)> {
    // hi <= lo (target bytes) is no stack: nothing is on it.
    let low = sps.into_iter().filter(|&s| s >= f.lo && s < f.hi).min()?;
    Some((low, (f.hi - low).min(MAX_STACK_COPY) as usize))
}

/// A running goroutine's ranges, its thread's SP being `thread_sp`: the
/// thread's signal stack (or system stack) and the whole goroutine stack
/// when the thread is off it (decode unwinds the thread's own stack to
/// find where the goroutine was, somewhere on its stack); else its stack
/// from the lowest SP on it.
pub(super) type Wants = (Option<(u64, usize)>, Option<(u64, usize)>);
pub(super) fn running_want(f: &StackFields, thread_sp: Option<u64>) -> Wants {
    if let Some(sp) = thread_sp {
        if !(sp >= f.lo && sp < f.hi) && f.lo < f.hi {
            let whole = (f.lo, (f.hi - f.lo).min(MAX_STACK_COPY) as usize);
            return (Some((sp, SIGNAL_STACK_COPY)), Some(whole));
        }
    }
    let sps = [f.sched_sp, syscall_sp(f), thread_sp.unwrap_or(u64::MAX)];
    (None, stack_from(f, sps))
}

/// The list of `runtime.g` addresses in `allgs` order, each once (the
/// list's bytes counted in `cap.bytes`).
fn read_allgs(
    t: &dyn Target,
    fetch: &mut dyn Fetch,
    prior: &Plan,
    globals: &Globals,
    budget: u64,
    cap: &mut Capture,
) -> Result<((u64, usize), Vec<u64>), CaptureError> {
    let allgs = globals.allgs;
    let ptr = t.read_u64(allgs).map_err(CaptureError::AllGs)?;
    let len_at = allgs.checked_add(8).ok_or(CaptureError::AllGs(ReadFault {
        addr: allgs,
        len: 16,
    }))?;
    let len = t.read_u64(len_at).map_err(CaptureError::AllGs)?;
    // The list is bytes copied too: one the budget cannot hold is as
    // implausible as one past MAX_GOROUTINES (with the default budget the
    // first bound is always the tighter one). Without this, a small budget
    // still read and deduplicated 16 million entries (128 MiB).
    if len > MAX_GOROUTINES || len.saturating_mul(8) > budget {
        return Err(CaptureError::BadLength(len));
    }
    // Through `fetch`, into the capture: the pre-copy capture answers it
    // from its copy where the list has not changed.
    let list = (ptr, len as usize * 8);
    if !read_ranges(fetch, cap, &[list])[0] && len > 0 {
        return Err(CaptureError::AllGs(ReadFault {
            addr: ptr,
            len: list.1,
        }));
    }
    if list == prior.list && fetch.unchanged(list.0, list.1) {
        return Ok((list, prior.gs.clone()));
    }
    let raw = match list.1 {
        0 => Vec::new(),
        n => cap.mem.read_vec(ptr, n).map_err(CaptureError::AllGs)?,
    };
    // Each g once: a list naming one g a million times (target bytes) is
    // not a million goroutines to copy.
    let mut seen = std::collections::HashSet::new();
    let gs = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .filter(|&g| g != 0 && seen.insert(g))
        .collect();
    Ok((list, gs))
}

/// What a session's goroutine list needs of a stop, without the stacks:
/// `allgs`, the threads and the wait reasons; the `runtime.g`s themselves
/// are read a chunk at a time as they are decoded ([`for_each_g_chunk`]).
/// A target that stays stopped (a session, a core) has its stacks read
/// when a goroutine's frames are asked for
/// ([`super::GoProgram::decode_one`]), not all of them up front.
pub fn capture_headers(
    t: &dyn Target,
    globals: &Globals,
    now: Option<i64>,
) -> Result<Capture, CaptureError> {
    let mut cap = Capture {
        threads: t.threads().to_vec(),
        now,
        ..Capture::default()
    };
    let mut fetch = ReadAll(t);
    let prior = Plan::default();
    cap.gs = read_allgs(t, &mut fetch, &prior, globals, CAPTURE_BUDGET, &mut cap)?.1;
    if let Some((addr, n)) = globals.wait_reasons {
        cap.wait_reasons = read_wait_reasons(t, &mut fetch, addr, n, &mut cap);
    }
    Ok(cap)
}

/// `runtime.g`s copied per chunk by [`for_each_g_chunk`]: a few MiB, so a
/// million goroutines never hold their 400 MiB of `g`s at once.
const G_CHUNK: usize = 8192;

/// Copies the `runtime.g`s of `gs` a chunk at a time (merged reads, as a
/// capture does) and hands each chunk's copy and addresses to `each`.
pub fn for_each_g_chunk(
    t: &dyn Target,
    layout: &RuntimeLayout,
    gs: &[u64],
    mut each: impl FnMut(&CapturedMemory, &[u64]),
) {
    let gsize = layout.g.size as usize;
    for chunk in gs.chunks(G_CHUNK) {
        let mut copy = Capture::default();
        let ranges: Vec<(u64, usize)> = chunk.iter().map(|&g| (g, gsize)).collect();
        let runs = merge_runs(&ranges, G_MERGE_GAP, MAX_RUN);
        read_merged(&mut ReadAll(t), &mut copy, &ranges, &runs, &mut |_, _| {});
        each(&copy.mem, chunk);
    }
}

/// `runtime.g`s closer than this are read as one range: they sit side by
/// side in their spans, and the kernel's cost is per range, not per byte.
const G_MERGE_GAP: u64 = 1024;
/// A merged range never grows past this.
const MAX_RUN: u64 = 1 << 20;

/// Like [`read_ranges`], but reads `ranges` as `runs` (from
/// [`merge_runs`]: ranges less than [`G_MERGE_GAP`] apart read as one run)
/// straight into the capture (no second copy). A run that fails (a hole
/// between two ranges) is retried range by range.
fn read_merged(
    fetch: &mut dyn Fetch,
    cap: &mut Capture,
    ranges: &[(u64, usize)],
    runs: &Runs,
    seen: &mut dyn FnMut(u64, &[u8]),
) -> Vec<bool> {
    let run_ok = read_ranges_seen(fetch, cap, &runs.runs, seen);
    // A range without a run (runs made for other ranges) is read on its own.
    let mut ok: Vec<bool> = (0..ranges.len())
        .map(|i| runs.run_of.get(i).and_then(|&r| run_ok.get(r)) == Some(&true))
        .collect();
    let retry: Vec<usize> = (0..ranges.len()).filter(|&i| !ok[i]).collect();
    if !retry.is_empty() {
        let again: Vec<(u64, usize)> = retry.iter().map(|&i| ranges[i]).collect();
        for (&i, good) in retry.iter().zip(read_ranges_seen(fetch, cap, &again, seen)) {
            ok[i] = good;
        }
    }
    ok
}

/// Fetches every range into `cap.mem`; returns whether each could be
/// read. `cap.bytes` counts what a stop-the-world capture reads, however
/// the bytes were got.
fn read_ranges(fetch: &mut dyn Fetch, cap: &mut Capture, ranges: &[(u64, usize)]) -> Vec<bool> {
    let ok = fetch.fetch(&mut cap.mem, ranges, &mut |_, _| {});
    count_read(cap, ranges, ok)
}

/// [`read_ranges`], `seen` told what the fetch reads (see
/// [`Fetch::fetch_told`]).
fn read_ranges_seen(
    fetch: &mut dyn Fetch,
    cap: &mut Capture,
    ranges: &[(u64, usize)],
    seen: &mut dyn FnMut(u64, &[u8]),
) -> Vec<bool> {
    let ok = fetch.fetch_told(&mut cap.mem, ranges, seen);
    count_read(cap, ranges, ok)
}

/// `ok`, after adding what was read of `ranges` to `cap.bytes`.
fn count_read(cap: &mut Capture, ranges: &[(u64, usize)], ok: Vec<bool>) -> Vec<bool> {
    cap.bytes += ranges
        .iter()
        .zip(&ok)
        .filter(|(_, ok)| **ok)
        .map(|(r, _)| r.1)
        .sum::<usize>();
    ok
}

pub(super) fn read_wait_reasons(
    t: &dyn Target,
    fetch: &mut dyn Fetch,
    addr: u64,
    n: u64,
    cap: &mut Capture,
) -> Vec<String> {
    let n = n.min(256) as usize;
    let Ok(headers) = t.read_vec(addr, n * 16) else {
        return Vec::new();
    };
    cap.bytes += headers.len();
    let strs: Vec<(u64, usize)> = headers
        .chunks_exact(16)
        .map(|h| {
            let p = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
            let l = u64::from_le_bytes(h[8..].try_into().unwrap_or_default());
            (p, (l as usize).min(MAX_REASON_LEN))
        })
        .collect();
    read_ranges(fetch, cap, &strs);
    strs.iter()
        .map(|&(p, l)| {
            let b = cap.mem.read_vec(p, l).unwrap_or_default();
            String::from_utf8_lossy(&b).into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::GoVersion;

    fn layout() -> RuntimeLayout {
        let (g, m, defer) = super::super::table::offsets(GoVersion {
            major: 1,
            minor: 24,
        })
        .expect("go1.24 row");
        RuntimeLayout {
            g,
            m,
            defer,
            allgs: None,
            wait_reasons: None,
        }
    }

    /// A parked `g` at `g` whose stack is `[lo, hi)` with its saved SP at
    /// `sp`, as the bytes a copy holds.
    fn parked(l: &RuntimeLayout, lo: u64, hi: u64, sp: u64) -> Vec<u8> {
        let mut b = vec![0u8; l.g.size as usize];
        let mut put =
            |off: u64, v: u64| b[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
        put(l.g.atomicstatus, 4); // _Gwaiting
        put(l.g.stack_lo, lo);
        put(l.g.stack_hi, hi);
        put(l.g.sched_sp, sp);
        b
    }

    #[test]
    fn gs_told_whole_are_decided_as_from_memory_and_others_left() {
        let l = layout();
        let size = l.g.size;
        // Three gs side by side, listed out of address order.
        let base = 0x10_0000u64;
        let gs = [base + 2 * size, base, base + size];
        let mut bytes = Vec::new();
        for k in 0..3 {
            bytes.extend(parked(
                &l,
                0x8000 * (k + 1),
                0x8000 * (k + 1) + 0x2000,
                0x8000 * (k + 1) + 0x1f00,
            ));
        }
        let (_, by_addr) = merge_runs_ordered(
            &gs.iter().map(|&g| (g, size as usize)).collect::<Vec<_>>(),
            G_MERGE_GAP,
            MAX_RUN,
        );
        let mut seen = GsSeen::new(&gs, &by_addr, &l);
        // Told: the first g whole and the second cut short; nothing told
        // of the third.
        seen.see(base, &bytes[..(size + size / 2) as usize]);
        let mut mem = CapturedMemory::new();
        mem.insert(base, &bytes);
        let mut gbuf = vec![0u8; size as usize];
        let from_mem = format!("{:?}", said_of(&mem, &l, base, &mut gbuf));
        let said: Vec<String> = seen.said.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(said[1], format!("Some({from_mem})"));
        assert!(from_mem.contains("Parked"), "{from_mem}");
        assert_eq!((said[0].as_str(), said[2].as_str()), ("None", "None"));
        // Bytes before every g, or empty: nothing decided, no panic.
        let mut none = GsSeen::new(&gs, &by_addr, &l);
        none.see(0x1000, &bytes);
        none.see(u64::MAX - 4, &[]);
        assert!(none.said.is_empty());
    }
}
