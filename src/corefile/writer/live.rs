//! [`Mode::Live`]: the core is copied while the target runs, and the
//! target is stopped only at the end, to re-copy what it wrote meanwhile.
//!
//! 1. One short stop has the target open a userfaultfd, which goat takes
//!    over (`tracer/borrow_fd.rs`); every mapping to dump is registered
//!    for asynchronous write protection (`uffd.rs`) and copied, running.
//! 2. Rounds: `PAGEMAP_SCAN` reports the pages written since they were
//!    last protected and protects them again in the same walk; those are
//!    copied again, running, until few are left. New mappings are
//!    registered and copied whole. Each rewrite of a page is a rewrite of
//!    the file in place, so a round is taken only when it converges: when
//!    what was written since the last pass (counted first, without taking
//!    it) is at most a quarter of what that pass copied. A target that
//!    writes faster than that (a heap under constant writes) gets no
//!    round: its pages are re-read once, in the final stop, and the file
//!    is written about twice its size, not four times (issue 33: 12 GiB
//!    for a 4.4 GB core).
//!    A Go target's garbage collector writes in bursts: a mark writes to
//!    every `g` it scans, and the sweep after it goes on writing for a
//!    second or two. A mark met during the copy (`goruntime/gcphase.rs`
//!    samples the phase while it runs) is waited out before the final
//!    stop, and its writes are copied in rounds while what is left
//!    shrinks at all, not only by a quarter: at a million goroutines
//!    they were 0.3-0.5 GB, 100-180 ms of final stop.
//! 3. The final stop: registers, then the pages written since the last
//!    round (and mappings that turned up) are read, the target resumes,
//!    and the file gets its notes and program headers.
//!
//! A page not reported written has not changed since its copy was taken
//! (copies are always taken after the page was protected), so the file
//! holds memory exactly as it was at the final stop, as in the other
//! modes. The pause is that of reading the last round's writes, not the
//! heap. The cost to the target: one minor fault on the first write to
//! each page per round, which is less than fork mode's copy-on-write.
//! The target's memory use is unchanged (fork mode needs room for a copy).

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::goruntime::gcphase::{GcPhase, MarkWait, MarkWatch, Next};
use crate::process::writetrack::{category, PageMap, Query, Run, WriteTracker};
use crate::process::{Memory, ProcessMemory};
use crate::tracer::{LiveProcess, StopWindow};

use super::elf::{self, Job, WriteStats, PAGE};
use super::extents::{Extent, Extents, Piece};
use super::maps::{dump_rule, Dump, Vma};
use super::write::{progress_bar, read_vmas, write_error};
use super::{io_err, CoreStats, SnapshotError};

#[path = "live_final.rs"]
mod final_stop;

/// Rounds of re-copying after the first copy, at most.
const MAX_ROUNDS: usize = 4;
/// Fewer written bytes than this are left for the final stop, which reads
/// them in a few milliseconds.
const FEW_BYTES: u64 = 16 << 20;
/// A round is copied only if what it would copy is at most this fraction
/// (1/N) of the pass before: the rounds then shrink geometrically, and
/// all of them together rewrite at most a third of the first copy.
const CONVERGING: u64 = 4;
/// Read the final stop's pages into memory (and resume before writing
/// them) up to this much; beyond, write them with the target stopped.
const RAM_LIMIT: u64 = 512 << 20;

/// Why live mode could not start (nothing was written or changed yet).
#[derive(Debug)]
pub(super) struct Unavailable(pub String);

/// Live mode's own figures (the rest is in [`CoreStats`]).
#[derive(Debug, Clone, Default)]
pub struct LiveStats {
    /// The short stop that opened the userfaultfd: when it began and how
    /// long it lasted.
    pub setup: Option<StopWindow>,
    /// Bytes copied while the target ran, and per round after the first.
    pub first_copy: u64,
    pub round_bytes: Vec<u64>,
    /// The written bytes left for the final stop when a round would not
    /// have converged (the target writes too fast): counted, not copied.
    pub round_skipped: Option<u64>,
    /// Bytes read for the final stop.
    pub final_bytes: u64,
    /// Whether they were read from a frozen copy (a clone made in the
    /// final stop) rather than with the target stopped.
    pub final_from_copy: bool,
    /// The Go garbage collector's marks waited out before the final stop
    /// (see `goruntime/gcphase.rs`).
    pub gc_marks: Vec<MarkWait>,
}

/// What a pass has to do: copies, and file ranges to punch out (pages
/// that are zero now).
#[derive(Debug, Default)]
struct Work {
    jobs: Vec<Copy>,
    zero: Vec<(u64, u64)>,
}

/// A job and whether its place in the file may hold an older copy.
#[derive(Debug, Clone, Copy)]
struct Copy {
    job: Job,
    overwrite: bool,
}

/// The copy in progress.
struct LiveCopy<'a> {
    pid: i32,
    file: &'a File,
    dest: &'a Path,
    /// Bytes kept after the start of the file for headers and notes.
    room: u64,
    mem: &'a ProcessMemory,
    tracker: WriteTracker,
    pagemap: PageMap,
    filter: u32,
    extents: Extents,
    /// The next free file offset (page-aligned).
    end: u64,
    /// Mappings as smaps last showed them.
    known: Vec<Vma>,
    written: WriteStats,
    /// The target's GC marks, when its phase can be found.
    gc: Option<MarkWatch>,
}

/// Opens the write tracking: a short stop to have the target create the
/// userfaultfd, which goat then owns.
fn open_tracking(
    live: &LiveProcess,
    stats: &mut LiveStats,
) -> Result<(WriteTracker, PageMap), Unavailable> {
    let pid = live.pid();
    let pagemap = PageMap::open(pid)
        .map_err(|e| Unavailable(format!("cannot open /proc/{pid}/pagemap: {e}")))?;
    // PAGEMAP_SCAN is Linux 6.7+, like asynchronous write protection.
    pagemap
        .scan(0, PAGE, Query::default())
        .map_err(|e| Unavailable(format!("the kernel has no PAGEMAP_SCAN (Linux 6.7+): {e}")))?;
    let stopped = live
        .stop()
        .map_err(|e| Unavailable(format!("stopping the target: {e}")))?;
    let fd = stopped.open_userfaultfd();
    stats.setup = Some(stopped.window());
    stopped
        .resume()
        .map_err(|e| Unavailable(format!("resuming the target: {e}")))?;
    let fd = fd.map_err(|e| Unavailable(format!("opening a userfaultfd in the target: {e}")))?;
    let tracker = WriteTracker::new(fd).map_err(|e| Unavailable(e.to_string()))?;
    Ok((tracker, pagemap))
}

/// Writes the core of `live` into `file` in live mode. `Err(Ok(_))`: live
/// mode is not available here and nothing was done; `Err(Err(_))`: it
/// failed part-way.
pub(super) fn write_live(
    live: &LiveProcess,
    file: &File,
    dest: &Path,
    facts_hold: (u32, Option<Duration>),
    stats: &mut CoreStats,
) -> Result<Releasing, Result<Unavailable, SnapshotError>> {
    let (filter, hold) = facts_hold;
    let pid = live.pid();
    let mut ls = LiveStats::default();
    let (tracker, pagemap) = open_tracking(live, &mut ls).map_err(Ok)?;
    let room = header_room(pid, crate::process::read_mappings(pid).len());
    let mut copy = LiveCopy {
        pid,
        file,
        dest,
        room,
        mem: live.memory(),
        tracker,
        pagemap,
        filter,
        extents: Extents::default(),
        end: room,
        // The first round reads them.
        known: Vec::new(),
        written: WriteStats::default(),
        gc: GcPhase::of_process(pid).map(|p| MarkWatch::sampling(p, pid)),
    };
    let r = copy.run(live, hold, &mut ls, stats);
    stats.bytes_written = copy.written.bytes_written;
    stats.unreadable_pages = copy.written.unreadable_pages;
    stats.live = Some(ls);
    // Unprotecting every page walks the page tables again (about 25 ms a
    // GiB): let it overlap the fsync of the file. The target is not waiting
    // on it; it only spares it a minor fault per page on its next writes.
    let tracker = copy.tracker;
    let releasing = Releasing(Some(std::thread::spawn(move || tracker.release())));
    match r {
        Ok(()) => Ok(releasing),
        Err(e) => {
            releasing.wait();
            Err(Err(e))
        }
    }
}

/// The write tracking being released in the background.
pub(super) struct Releasing(Option<std::thread::JoinHandle<()>>);

impl Releasing {
    /// Waits for the release to be done (dropping does too).
    pub(super) fn wait(self) {
        drop(self);
    }
}

impl Drop for Releasing {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Room kept after the ELF header for the program headers and notes, so
/// they can sit where the kernel puts them: twice what the mappings and
/// threads of now would need (a hole in the file if unused). If the
/// target grows past that, they go to the end of the file instead.
fn header_room(pid: i32, vmas: usize) -> u64 {
    let threads = crate::process::procfs::tasks(pid).map_or(1, |t| t.len());
    let need = elf::header_len(2 * vmas + 64) + threads as u64 * 4096 + vmas as u64 * 256;
    (2 * need + (64 << 10)).div_ceil(PAGE) * PAGE
}

impl LiveCopy<'_> {
    fn run(
        &mut self,
        live: &LiveProcess,
        hold: Option<Duration>,
        ls: &mut LiveStats,
        stats: &mut CoreStats,
    ) -> Result<(), SnapshotError> {
        // A mark under way as the copy starts writes into it too.
        let mem = self.mem;
        if let Some(w) = self.gc.as_mut() {
            w.look(mem);
        }
        let first = self.round(true, hold)?;
        ls.first_copy = first;
        let mut last = first;
        self.converge(&mut last, ls)?;
        // A mark's writes would be read in the final stop: 0.2-0.5 GB at a
        // million goroutines. Its end is waited for, and what it wrote is
        // copied while the target runs, whether or not that converges.
        loop {
            let mem = self.mem;
            let next = self
                .gc
                .as_mut()
                .map_or(Next::FinalStop, |w| w.before_final_stop(mem));
            if next == Next::FinalStop {
                break;
            }
            let n = self.round(false, None)?;
            ls.round_bytes.push(n);
            last = n;
            self.converge_after_mark(&mut last, ls)?;
        }
        if let Some(w) = self.gc.as_mut() {
            ls.gc_marks = std::mem::take(&mut w.marks);
        }
        self.finish(live, ls, stats)
    }

    /// Rounds after a pass that copied `last` bytes, while each shrinks
    /// what is left (see [`converges`]) and more than a few bytes are left.
    fn converge(&mut self, last: &mut u64, ls: &mut LiveStats) -> Result<(), SnapshotError> {
        self.rounds_while(last, ls, converges)
    }

    /// [`Self::converge`] after a round that copied a mark's writes: the
    /// runtime goes on writing for a second or two once the mark ends
    /// (mark termination, then the sweep): 345 MiB during the round after
    /// a mark of a million goroutines, then next to nothing. Rounds go on
    /// while what is left shrinks at all, so the tail of that burst is
    /// copied while the target runs too.
    fn converge_after_mark(
        &mut self,
        last: &mut u64,
        ls: &mut LiveStats,
    ) -> Result<(), SnapshotError> {
        self.rounds_while(last, ls, |pending, last| pending < last)
    }

    /// Rounds while `shrinks(pending, last)` and more than a few bytes are
    /// left, at most [`MAX_ROUNDS`].
    fn rounds_while(
        &mut self,
        last: &mut u64,
        ls: &mut LiveStats,
        shrinks: fn(u64, u64) -> bool,
    ) -> Result<(), SnapshotError> {
        ls.round_skipped = None;
        for _ in 0..MAX_ROUNDS {
            // Counted before it is taken: pages taken are protected again,
            // and must then be copied.
            let pending = self.pending_bytes()?;
            if pending < FEW_BYTES {
                break;
            }
            if !shrinks(pending, *last) {
                ls.round_skipped = Some(pending);
                break;
            }
            let n = self.round(false, None)?;
            ls.round_bytes.push(n);
            *last = n;
        }
        Ok(())
    }

    /// The bytes a round would copy now: the pages of tracked mappings
    /// written since their last copy, and mappings not tracked (new, or
    /// replaced) whole. Counted with a scan that protects nothing.
    fn pending_bytes(&self) -> Result<u64, SnapshotError> {
        let q = Query {
            all: category::WRITTEN,
            report: category::WRITTEN,
            ..Query::default()
        };
        let mut total = 0u64;
        for (v, rule) in self.current_mappings()? {
            if rule != Dump::Whole {
                continue;
            }
            let written = match self.tracker.covers(v.start, v.end) {
                true => self.pagemap.scan_tracked(v.start, v.end, q).ok(),
                false => None,
            };
            let n = written.map_or(v.len(), |runs| {
                runs.iter().map(|r| r.end.saturating_sub(r.start)).sum()
            });
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    fn io(&self, what: &str) -> impl FnOnce(io::Error) -> SnapshotError {
        io_err(format!("{what} of pid {}", self.pid))
    }

    /// Reserves file space for `[start, end)` and returns its extent.
    fn allocate(&mut self, start: u64, end: u64) -> Extent {
        let e = Extent {
            start,
            end,
            offset: self.end,
        };
        self.end += end - start;
        self.extents.insert(e);
        e
    }

    /// Jobs copying what `[start, end)` holds into extent `e` (fresh file
    /// space): present pages of anonymous memory, everything of a file's.
    fn fill(&self, v: &Vma, e: Extent, out: &mut Vec<Copy>) -> Result<(), SnapshotError> {
        if v.is_file() {
            push(out, e.start, e.end, e.offset, false);
            return Ok(());
        }
        let q = Query {
            any: category::PRESENT | category::SWAPPED,
            report: category::PRESENT | category::SWAPPED,
            ..Query::default()
        };
        let runs = self
            .pagemap
            .scan(e.start, e.end, q)
            .map_err(self.io("scanning the pages"))?;
        for r in runs {
            push(out, r.start, r.end, e.offset_of(r.start), false);
        }
        Ok(())
    }

    /// Jobs re-copying the written `runs` into the extents that hold them.
    /// Written pages that are gone from anonymous memory (given back with
    /// `MADV_DONTNEED`) read as zero: punched out, not read.
    fn refill(&self, v: &Vma, runs: &[Run], work: &mut Work) {
        for r in runs {
            let gone = r.categories & (category::PRESENT | category::SWAPPED) == 0;
            for p in self.extents.pieces(r.start, r.end) {
                let Piece::Copied(e) = p else { continue };
                if gone && !v.is_file() {
                    work.zero.push((e.offset, e.end - e.start));
                } else {
                    push(&mut work.jobs, e.start, e.end, e.offset, true);
                }
            }
        }
    }

    /// Adds the work for mapping `v` (dumped whole), given the pages
    /// `written` since the last pass, or `None` when it is not tracked (a
    /// new mapping, or another in the place of one copied before). While
    /// the target `running`, what gets copied is protected first (and
    /// skipped, for the final stop, if that fails); in the final stop it is
    /// simply read.
    fn plan_whole(
        &mut self,
        v: &Vma,
        written: Option<Vec<Run>>,
        running: bool,
        work: &mut Work,
    ) -> Result<(), SnapshotError> {
        match written {
            Some(runs) => {
                self.refill(v, &runs, work);
                for p in self.extents.pieces(v.start, v.end) {
                    if let Piece::Missing { start, end } = p {
                        // Grown since.
                        if !running || self.tracker.protect(start, end).is_ok() {
                            let e = self.allocate(start, end);
                            self.fill(v, e, &mut work.jobs)?;
                        }
                    }
                }
            }
            None => {
                self.extents.remove(v.start, v.end);
                if !running || self.tracker.track(v.start, v.end).is_ok() {
                    let e = self.allocate(v.start, v.end);
                    self.fill(v, e, &mut work.jobs)?;
                }
            }
        }
        Ok(())
    }

    /// One pass while the target runs: new mappings are registered and
    /// copied whole, and the pages written since the last pass copied
    /// again. Returns the bytes copied.
    fn round(&mut self, first: bool, hold: Option<Duration>) -> Result<u64, SnapshotError> {
        let maps: Vec<(Vma, Dump)> = if first {
            let vmas = read_vmas(self.pid)?;
            vmas.into_iter()
                .map(|v| {
                    let rule = dump_rule(&v, self.filter);
                    (v, rule)
                })
                .collect()
        } else {
            self.current_mappings()?
        };
        let mut work = Work::default();
        for (v, rule) in &maps {
            if *rule != Dump::Whole {
                continue;
            }
            // Scanning fails unless all of `v` is registered here (it may
            // be a new mapping in the place of one that was).
            let ours = self.tracker.covers(v.start, v.end);
            let written = if ours {
                self.pagemap.take_written(v.start, v.end).ok()
            } else {
                None
            };
            self.plan_whole(v, written, true, &mut work)?;
        }
        self.known = maps.into_iter().map(|(v, _)| v).collect();
        super::hold_for_tests(hold);
        let bytes: u64 = work.jobs.iter().map(|c| c.job.len as u64).sum();
        let bar = if first { progress_bar(bytes) } else { None };
        let r = self.copy(&work, &mut |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        r?;
        let mem = self.mem;
        if let Some(w) = self.gc.as_mut() {
            w.look(mem);
        }
        Ok(bytes)
    }

    /// Runs the copies against the target's memory, then the punches.
    fn copy(&mut self, work: &Work, progress: &mut dyn FnMut(u64)) -> Result<(), SnapshotError> {
        let mem = self.mem;
        self.copy_from(mem, work, progress)
    }

    /// [`LiveCopy::copy`] from `mem` (a frozen copy of the target, say).
    fn copy_from(
        &mut self,
        mem: &(dyn Memory + Sync),
        work: &Work,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SnapshotError> {
        let readers = elf::reader_count();
        for overwrite in [false, true] {
            let js: Vec<Job> = work
                .jobs
                .iter()
                .filter(|c| c.overwrite == overwrite)
                .map(|c| c.job)
                .collect();
            elf::copy_jobs(
                readers,
                self.file,
                &js,
                mem,
                overwrite,
                progress,
                &mut self.written,
            )
            .map_err(|e| write_error(self.dest, self.written.bytes_written, e))?;
        }
        self.punch(&work.zero)
    }

    /// Punches the `(offset, len)` ranges out of the file (pages that read
    /// as zero now, over an older copy).
    fn punch(&self, zero: &[(u64, u64)]) -> Result<(), SnapshotError> {
        for &(off, len) in zero {
            elf::punch(self.file, off, len)
                .map_err(|e| write_error(self.dest, self.written.bytes_written, e))?;
        }
        Ok(())
    }
}

/// Whether a round that would copy `pending` bytes, after a pass that
/// copied `last`, shrinks what is left: else the target writes about as
/// fast as the rounds copy, and a round would only write the file over
/// again without shortening the final stop.
fn converges(pending: u64, last: u64) -> bool {
    pending <= last / CONVERGING
}

/// Adds jobs copying `[start, end)` to file `offset`, in chunks.
fn push(out: &mut Vec<Copy>, start: u64, end: u64, offset: u64, overwrite: bool) {
    let mut js = Vec::new();
    elf::chunked(start, offset, end - start, &mut js);
    out.extend(js.into_iter().map(|job| Copy { job, overwrite }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_copied_only_when_it_shrinks_what_is_left() {
        let gib = 1u64 << 30;
        // A heap under constant writes: most of it written again during
        // the first copy. No round: one re-read in the final stop.
        assert!(!converges(3 * gib, 4 * gib));
        assert!(!converges(gib + 1, 4 * gib));
        // A mostly idle one: a round, then the next only if it shrank.
        assert!(converges(gib, 4 * gib));
        assert!(converges(200 << 20, gib));
        assert!(!converges(300 << 20, gib));
        // Rounds of at most a quarter of the pass before add up to at
        // most a third of the first copy.
        let (mut last, mut again) = (4 * gib, 0u64);
        while converges(last / CONVERGING, last) && last >= FEW_BYTES {
            last /= CONVERGING;
            again += last;
        }
        assert!(again <= 4 * gib / 3, "{again}");
    }
}
