//! What a capture decided from the bytes it read (`collect::capture_with`):
//! the goroutine list and, for each `runtime.g`, the fields that decide
//! which stack bytes to copy. The pre-copy capture (`precopy.rs`) makes one
//! while the target runs; its final stop, which must ask for exactly what a
//! stop-the-world capture asks for, reuses each decision whose bytes the
//! write tracking vouches unchanged instead of reading 100k `g`s again:
//! that reading, not the copying, was most of the stop.

/// The fields of a `runtime.g` that decide which stack bytes to copy.
#[derive(Debug, Clone, Copy)]
pub(super) struct StackFields {
    pub status: u32,
    pub lo: u64,
    pub hi: u64,
    pub sched_sp: u64,
    pub syscallsp: u64,
    pub m: u64,
}

/// What one `g`'s bytes said, as compact as the final stop needs it:
/// 100k of these are read there, and their size is its time.
#[derive(Debug, Clone)]
pub(super) enum GSaid {
    /// Not read (a failed read, or past the byte budget).
    Unread,
    /// A dead goroutine: nothing to copy.
    Dead,
    /// Not on a thread: its stack range follows from its `g` alone.
    Parked { m: u64, stack: Option<(u64, usize)> },
    /// On a thread: its stack range depends on the thread's registers.
    Running(Box<StackFields>),
}

/// A capture's decisions; see the module's comment.
#[derive(Debug, Default)]
pub struct Plan {
    /// `allgs`' array address and length in bytes, and the goroutine list
    /// read from it (each `g` once, in order).
    pub(super) list: (u64, usize),
    pub(super) gs: Vec<u64>,
    /// The merged reads of the `g`s of `gs` (see [`merge_runs`]).
    pub(super) g_runs: Runs,
    /// By index in `gs`.
    pub(super) said: Vec<GSaid>,
    /// Which of the capture's fetches (counted from 0) asked for the
    /// stacks: one range per goroutine with a stack, in list order.
    pub(super) stacks_call: usize,
}

impl Plan {
    /// What the `g` at index `i` of the list said, if the plan has it at
    /// that index.
    pub(super) fn said(&self, i: usize, g: u64) -> Option<&GSaid> {
        match (self.gs.get(i), self.said.get(i)) {
            (Some(&at), Some(said)) if at == g => Some(said),
            _ => None,
        }
    }
}

/// Ranges merged into runs for reading: the runs, and the run of each range.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Runs {
    pub runs: Vec<(u64, usize)>,
    pub run_of: Vec<usize>,
}

/// Ranges closer than `gap` merged into runs of at most `max_run` bytes
/// (a range longer than that is a run of its own).
pub(super) fn merge_runs(ranges: &[(u64, usize)], gap: u64, max_run: u64) -> Runs {
    merge_runs_ordered(ranges, gap, max_run).0
}

/// [`merge_runs`], and the indexes of `ranges` by address (sorted once,
/// for both).
pub(super) fn merge_runs_ordered(
    ranges: &[(u64, usize)],
    gap: u64,
    max_run: u64,
) -> (Runs, Vec<usize>) {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_unstable_by_key(|&i| ranges[i].0);
    let mut runs: Vec<(u64, usize)> = Vec::new();
    let mut run_of = vec![0usize; ranges.len()];
    for &i in &order {
        let (addr, len) = ranges[i];
        let end = addr.saturating_add(len as u64);
        if let Some(run) = runs.last_mut() {
            // A g at the top of the address space (target bytes) ends past
            // it; `end` saturates alike, and its read fails, marking the g.
            let run_end = run.0.saturating_add(run.1 as u64);
            if addr <= run_end.saturating_add(gap) && end.saturating_sub(run.0) <= max_run {
                run.1 = (end.max(run_end) - run.0) as usize;
                run_of[i] = runs.len() - 1;
                continue;
            }
        }
        runs.push((addr, len));
        run_of[i] = runs.len() - 1;
    }
    (Runs { runs, run_of }, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ranges_share_a_run_and_far_or_long_ones_do_not() {
        let r = merge_runs(
            &[
                (0x3000, 0x10),
                (0x1000, 0x100),
                (0x1200, 0x100),
                (u64::MAX - 4, 8),
            ],
            0x200,
            0x1000,
        );
        assert_eq!(
            r.runs,
            vec![(0x1000, 0x300), (0x3000, 0x10), (u64::MAX - 4, 8)]
        );
        assert_eq!(r.run_of, vec![1, 0, 0, 2]);
        let long = merge_runs(&[(0, 0x800), (0x800, 0x900)], 0x200, 0x1000);
        assert_eq!(long.runs.len(), 2);
    }

    #[test]
    fn a_plan_answers_only_for_the_g_it_holds_at_that_index() {
        let p = Plan {
            gs: vec![0x10, 0x20],
            said: vec![GSaid::Dead, GSaid::Unread],
            ..Plan::default()
        };
        assert!(matches!(p.said(0, 0x10), Some(&GSaid::Dead)));
        assert!(p.said(0, 0x20).is_none() && p.said(2, 0x30).is_none());
    }
}
