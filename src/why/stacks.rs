//! Each goroutine's live stack pointer values: what the leak rule marks
//! from and what "may release" follows. Worked out a goroutine at a time,
//! so that `goat why` scans each stack on the decoding thread that has
//! just decoded it (`inspect/why.rs`), and chunks scanned on several
//! threads are joined in order.

use super::{ScanSummary, Snapshot};
use crate::goruntime::stackroots::{self, Scratch};
use crate::goruntime::{GoProgram, GoroutineBrief, PriorWalk};
use crate::process::Memory;

/// Each goroutine's live stack pointer values, in one buffer, by position
/// in the snapshot (the analysis' goroutines are in the same order). Not
/// by id: looking a million ids up in a map, pass after pass, was a tenth
/// of the never-wakes and releasers phase, and ids need not be unique (a
/// crash core's `goroutine 0` system stacks, a hostile core's).
#[derive(Default)]
pub struct StackValues {
    values: Vec<u64>,
    /// Each goroutine's id and where its values end, in snapshot order.
    ends: Vec<(u64, usize)>,
    /// How the stacks were scanned.
    pub(super) scan: ScanSummary,
    /// The stack scanner's buffers and per-pc facts, reused from one
    /// goroutine to the next (not part of the answer).
    slots: Vec<u64>,
}

impl StackValues {
    /// Scans `g`'s stack (at load bias `bias` in `mem`) and appends its
    /// values. Goroutines must come in snapshot order.
    ///
    /// A thread's system stack (a crash core's `goroutine 0`) has none.
    /// The runtime's GC never scans a `g0` stack (no `allgs` holds it), so
    /// Go 1.27's leak rule has no roots there; and a thread in the
    /// scheduler releases no channel or lock (a goroutine in C code or
    /// a callback is listed on its own stack). Stale words of its
    /// scheduler frames (`park_m`'s wait lock: the channel it has just
    /// parked a goroutine on) made a thread "may release" a deadlocked
    /// channel.
    pub fn scan(
        &mut self,
        prog: &GoProgram,
        mem: &dyn Memory,
        bias: u64,
        (g, prior): (&GoroutineBrief, Option<PriorWalk<'_>>),
        scratch: &mut Scratch,
    ) {
        if g.is_system_stack() {
            self.ends.push((g.id, self.values.len()));
            return;
        }
        self.slots.clear();
        let s = stackroots::stack_pointer_values_of(
            prog,
            mem,
            bias,
            (g, prior),
            &mut self.slots,
            &mut self.values,
            scratch,
        );
        self.scan.precise_frames += u64::from(s.precise_frames);
        self.scan.conservative_frames += u64::from(s.conservative_frames);
        if s.incomplete.is_some() {
            self.scan.incomplete += 1;
        }
        self.ends.push((g.id, self.values.len()));
    }

    /// Appends `later`'s goroutines (scanned after these).
    pub fn append(&mut self, later: StackValues) {
        let base = self.values.len();
        self.values.extend_from_slice(&later.values);
        self.ends
            .extend(later.ends.iter().map(|&(id, end)| (id, base + end)));
        self.scan.precise_frames += later.scan.precise_frames;
        self.scan.conservative_frames += later.scan.conservative_frames;
        self.scan.incomplete += later.scan.incomplete;
    }

    /// Every goroutine of `snap`, scanned in order on this thread.
    pub(super) fn of_snapshot(snap: &Snapshot<'_>) -> StackValues {
        let mut out = StackValues {
            ends: Vec::with_capacity(snap.goroutines.len()),
            ..StackValues::default()
        };
        let mut scratch = Scratch::default();
        for g in snap.goroutines {
            out.scan(snap.prog, snap.mem, snap.bias, (g, None), &mut scratch);
        }
        out
    }

    /// Whether these are the values of exactly `gs`, in order.
    pub(super) fn matches(&self, gs: &[GoroutineBrief]) -> bool {
        self.ends.len() == gs.len() && self.ends.iter().zip(gs).all(|(e, g)| e.0 == g.id)
    }

    /// Gives back the scanner's buffers, once every goroutine is in.
    pub(super) fn finish(&mut self) {
        self.slots = Vec::new();
    }

    /// The values of the goroutine at position `i`.
    pub(crate) fn at(&self, i: usize) -> &[u64] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(0, |e| e.1),
            None => 0,
        };
        let end = self.ends.get(i).map_or(start, |e| e.1);
        self.values.get(start..end).unwrap_or(&[])
    }

    /// How many goroutines were scanned (positions for [`Self::entry`]).
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id and values of the goroutine at position `i`.
    pub(crate) fn entry(&self, i: usize) -> Option<(u64, &[u64])> {
        let (id, _) = *self.ends.get(i)?;
        Some((id, self.at(i)))
    }

    /// Each goroutine's id with its values, in snapshot order (goroutines
    /// made one after another have their objects near each other: the
    /// heap reads of one follow those of the last).
    pub(crate) fn each(&self) -> impl Iterator<Item = (u64, &[u64])> {
        (0..self.ends.len()).filter_map(|i| self.entry(i))
    }
}
