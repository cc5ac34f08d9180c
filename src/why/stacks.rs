//! Each goroutine's live stack pointer values: what the leak rule marks
//! from and what "may release" follows. Worked out a goroutine at a time,
//! so that `goat why` scans each stack on the decoding thread that has
//! just decoded it (`inspect/why.rs`), and chunks scanned on several
//! threads are joined in order.

use std::collections::HashMap;

use super::{ScanSummary, Snapshot};
use crate::goruntime::stackroots::{self, Scratch};
use crate::goruntime::{GoProgram, GoroutineBrief, PcHasher};
use crate::process::Memory;

/// Each goroutine's live stack pointer values, by id, in one buffer. A
/// goroutine id is the runtime's, and so is unique but for a crash core's
/// `goroutine 0 [idle]` system stacks, which have no values (see
/// [`StackValues::scan`]).
#[derive(Default)]
pub struct StackValues {
    values: Vec<u64>,
    /// Each goroutine's id and where its values end, in snapshot order.
    ends: Vec<(u64, usize)>,
    /// The position of the last goroutine of each id (made when the
    /// values are complete, [`StackValues::index`]).
    last: HashMap<u64, usize, PcHasher>,
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
        g: &GoroutineBrief,
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
            g,
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
            out.scan(snap.prog, snap.mem, snap.bias, g, &mut scratch);
        }
        out
    }

    /// Whether these are the values of exactly `gs`, in order.
    pub(super) fn matches(&self, gs: &[GoroutineBrief]) -> bool {
        self.ends.len() == gs.len() && self.ends.iter().zip(gs).all(|(e, g)| e.0 == g.id)
    }

    /// Makes [`Self::of`] answer: once every goroutine is in.
    pub(super) fn index(&mut self) {
        self.slots = Vec::new();
        self.last = HashMap::with_capacity_and_hasher(self.ends.len(), PcHasher);
        for (i, (id, _)) in self.ends.iter().enumerate() {
            self.last.insert(*id, i);
        }
    }

    /// The values of the goroutine at position `i`.
    fn at(&self, i: usize) -> &[u64] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(0, |e| e.1),
            None => 0,
        };
        let end = self.ends.get(i).map_or(start, |e| e.1);
        self.values.get(start..end).unwrap_or(&[])
    }

    /// The values of goroutine `id`.
    pub(crate) fn of(&self, id: u64) -> &[u64] {
        self.last.get(&id).map_or(&[], |&i| self.at(i))
    }

    /// How many goroutines were scanned (positions for [`Self::entry`]).
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id and values of the goroutine at position `i`, unless a later
    /// one has its id (as [`Self::each`] lists them).
    pub(crate) fn entry(&self, i: usize) -> Option<(u64, &[u64])> {
        let (id, _) = *self.ends.get(i)?;
        (self.last.get(&id) == Some(&i)).then(|| (id, self.at(i)))
    }

    /// Each id with its values, once, in snapshot order (goroutines made
    /// one after another have their objects near each other: the heap
    /// reads of one follow those of the last).
    pub(crate) fn each(&self) -> impl Iterator<Item = (u64, &[u64])> {
        self.ends
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| self.last.get(id) == Some(i))
            .map(|(i, (id, _))| (*id, self.at(i)))
    }
}
