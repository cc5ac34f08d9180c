//! The final stop's look for what changed, kept short: the stop is the
//! target's pause. Two parts of it grow with the copy (a million
//! goroutines' stacks, a million spans):
//! - checking that every copied span is still mapped and readable: made
//!   once while the target runs, and in the stop only again if the
//!   readable mappings or the spans changed since;
//! - the page-table walk for pages written since their copy: split over
//!   the CPUs, which in the stop are goat's alone (every thread of the
//!   target is stopped).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::process::procfs::Vma;
use crate::process::writetrack::{PageMap, Query, Run};

/// Threads that walk page tables at once in the stop, at most.
const MAX_SCANNERS: usize = 4;
/// Below this many bytes of windows, one thread: starting another costs
/// more than it saves.
const PARALLEL_FROM: u64 = 256 << 20;
/// Pieces a scanner takes at a time, per scanner: small enough that the
/// scanners end together however uneven the windows are.
const PIECES_PER_SCANNER: u64 = 8;
const PAGE: u64 = 4096;

/// Whether each span in `spans` (sorted, disjoint) lies in a readable
/// mapping of `maps` (sorted, as /proc lists them). `Err` names the first
/// byte that does not.
pub(super) fn check_mapped(spans: &[(u64, u64)], maps: &[Vma]) -> Result<(), String> {
    // A cursor: spans are sorted and disjoint, so `at` only grows.
    let mut i = 0;
    for &(s, e) in spans {
        let mut at = s;
        while at < e {
            while maps.get(i).is_some_and(|m| m.end <= at) {
                i += 1;
            }
            match maps.get(i) {
                Some(m) if m.start <= at && m.read => at = m.end,
                _ => return Err(format!("the copied range at {at:#x} is no longer mapped")),
            }
        }
    }
    Ok(())
}

/// What [`check_mapped`] last passed: how many spans there were and the
/// readable mappings. Spans are only ever added, so the same count means
/// the same spans; with the same readable mappings too, the answer holds.
#[derive(Debug, Default)]
pub(super) struct MappedCheck {
    passed: Option<(usize, Vec<(u64, u64)>)>,
}

fn readable(maps: &[Vma]) -> Vec<(u64, u64)> {
    maps.iter()
        .filter(|m| m.read)
        .map(|m| (m.start, m.end))
        .collect()
}

impl MappedCheck {
    /// [`check_mapped`], unless it passed already for these spans and
    /// mappings.
    pub(super) fn check(&mut self, spans: &[(u64, u64)], maps: &[Vma]) -> Result<(), String> {
        let now = (spans.len(), readable(maps));
        if self.passed.as_ref() == Some(&now) {
            return Ok(());
        }
        check_mapped(spans, maps)?;
        self.passed = Some(now);
        Ok(())
    }
}

/// A piece's runs, or why it could not be scanned.
pub(super) type Scanned = io::Result<Vec<Run>>;

/// The written runs of each window (`PageMap::scan_tracked` with `q`), by
/// pieces of the windows: each piece with its runs, or the error that
/// makes all of it stale. Pieces come in address order.
pub(super) fn scan_windows(
    pagemap: &PageMap,
    windows: &[(u64, u64)],
    q: Query,
) -> Vec<((u64, u64), Scanned)> {
    let total = windows
        .iter()
        .fold(0u64, |sum, w| sum.saturating_add(w.1.saturating_sub(w.0)));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scanners = cpus.min(MAX_SCANNERS);
    if scanners < 2 || total < PARALLEL_FROM {
        return windows
            .iter()
            .map(|&(s, e)| ((s, e), pagemap.scan_tracked(s, e, q)))
            .collect();
    }
    let share = (total / (scanners as u64 * PIECES_PER_SCANNER)).max(PAGE);
    let pieces = split(windows, share.div_ceil(PAGE) * PAGE);
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Scanned)>> = Mutex::new(Vec::new());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(s, e)) = pieces.get(i) else {
            return;
        };
        let runs = pagemap.scan_tracked(s, e, q);
        done.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((i, runs));
    };
    std::thread::scope(|scope| {
        // A scanner that cannot be started leaves its share to the others.
        for _ in 1..scanners {
            let _ = std::thread::Builder::new()
                .name("goat-stopscan".into())
                .spawn_scoped(scope, work);
        }
        work();
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter()
        .filter_map(|(i, runs)| pieces.get(i).map(|&p| (p, runs)))
        .collect()
}

/// `windows` cut into pieces of at most `piece` bytes (page multiples,
/// for page-aligned windows), in order.
fn split(windows: &[(u64, u64)], piece: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(s, e) in windows {
        let mut at = s;
        while at < e {
            let to = at.saturating_add(piece).min(e);
            out.push((at, to));
            at = to;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, end: u64, read: bool) -> Vma {
        Vma {
            start,
            end,
            read,
            ..Vma::default()
        }
    }

    #[test]
    fn spans_inside_readable_mappings_pass_and_others_fail() {
        let maps = [vma(0x1000, 0x5000, true), vma(0x5000, 0x6000, false)];
        assert!(check_mapped(&[(0x1000, 0x2000), (0x3000, 0x5000)], &maps).is_ok());
        assert!(check_mapped(&[(0x4000, 0x5800)], &maps).is_err());
        assert!(check_mapped(&[(0x7000, 0x8000)], &maps).is_err());
    }

    #[test]
    fn a_passed_check_is_made_again_only_when_something_changed() {
        let mut c = MappedCheck::default();
        let maps = vec![vma(0x1000, 0x5000, true)];
        let spans = [(0x1000, 0x2000)];
        assert!(c.check(&spans, &maps).is_ok());
        // The same spans and mappings: the answer stands.
        assert!(c.check(&spans, &maps).is_ok());
        // The mapping shrank: checked again, and it fails.
        let shrunk = vec![vma(0x1000, 0x1800, true)];
        assert!(c.check(&spans, &shrunk).is_err());
        // A span more: checked again.
        let more = [(0x1000, 0x2000), (0x6000, 0x7000)];
        assert!(c.check(&more, &maps).is_err());
    }

    #[test]
    fn pieces_cover_the_windows_exactly_in_order() {
        let windows = [(0x1000, 0x9000), (0x20000, 0x21000)];
        let p = split(&windows, 0x3000);
        assert_eq!(
            p,
            [
                (0x1000, 0x4000),
                (0x4000, 0x7000),
                (0x7000, 0x9000),
                (0x20000, 0x21000)
            ]
        );
        assert!(split(&[(u64::MAX - 0x1000, u64::MAX)], 0x3000).len() == 1);
    }
}
