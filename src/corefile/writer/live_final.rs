//! Live mode's final stop (see `live.rs`): what changed since the last
//! round is read with the target stopped (or from a frozen copy, when that
//! is quicker), then the program headers and notes are written.

use std::os::unix::fs::FileExt;

use crate::process::writetrack::{category, Query};
use crate::process::{procfs, Memory, ProcessMemory};
use crate::tracer::{LiveProcess, Stopped};

use super::super::elf::{self, Phdr, WriteStats, PAGE};
use super::super::extents::Piece;
use super::super::maps::{dump_rule, Dump, Vma};
use super::super::notes;
use super::super::write::write_error;
use super::super::{stop_facts, CoreStats, SnapshotError};
use super::{push, Copy, LiveCopy, LiveStats, Work, RAM_LIMIT};

impl LiveCopy<'_> {
    /// The mappings now, from `maps` (reading `smaps` walks every page
    /// table: tens of milliseconds at 2 GiB, which the final stop must not
    /// spend), each with what smaps last said of it, and whether it has
    /// been written (the kernel's test for dumping private memory) decided
    /// from its pages.
    pub(super) fn current_mappings(&self) -> Result<Vec<(Vma, Dump)>, SnapshotError> {
        let maps = procfs::maps(self.pid).map_err(self.io("reading the mappings"))?;
        let mut out = Vec::new();
        for v in maps {
            let same = |k: &&Vma| {
                k.start == v.start
                    && k.end == v.end
                    && (k.read, k.write, k.exec, k.shared) == (v.read, v.write, v.exec, v.shared)
                    && k.offset == v.offset
                    && k.path == v.path
            };
            let mut vv = match self.known.iter().find(same) {
                Some(k) => k.clone(),
                None => {
                    // Flags (VM_DONTDUMP, hugetlb…) of the mapping it came from.
                    let mut n = v.clone();
                    if let Some(k) = self
                        .known
                        .iter()
                        .find(|k| k.start < v.end && v.start < k.end)
                    {
                        n.vm_flags = k.vm_flags.clone();
                    }
                    n
                }
            };
            let mut rule = dump_rule(&vv, self.filter);
            if rule != Dump::Whole && vv.read && !vv.shared && self.has_anonymous_pages(&vv)? {
                vv.anonymous_kb = 4;
                rule = dump_rule(&vv, self.filter);
            }
            out.push((vv, rule));
        }
        Ok(out)
    }

    fn has_anonymous_pages(&self, v: &Vma) -> Result<bool, SnapshotError> {
        let q = Query {
            any: category::PRESENT | category::SWAPPED,
            report: category::PRESENT | category::SWAPPED | category::FILE | category::PFNZERO,
            ..Query::default()
        };
        let runs = self
            .pagemap
            .scan(v.start, v.end, q)
            .map_err(self.io("scanning the pages"))?;
        Ok(runs.iter().any(|r| {
            let c = r.categories;
            c & category::SWAPPED != 0
                || (c & category::PRESENT != 0 && c & (category::FILE | category::PFNZERO) == 0)
        }))
    }

    /// The jobs of the final stop: written pages of tracked mappings,
    /// mappings not tracked (or not copied) whole, and ELF header pages.
    fn final_jobs(&mut self, maps: &[(Vma, Dump)]) -> Result<Work, SnapshotError> {
        let mut work = Work::default();
        for (v, rule) in maps {
            match rule {
                Dump::None => {}
                Dump::ElfHeader => {
                    // Only the first page, and only if it is an ELF header.
                    self.extents.remove(v.start, v.end);
                    if elf::has_elf_header(self.mem, v.start) {
                        let e = self.allocate(v.start, v.start + PAGE.min(v.len()));
                        push(&mut work.jobs, e.start, e.end, e.offset, false);
                    }
                }
                Dump::Whole => {
                    let q = Query {
                        all: category::WRITTEN,
                        report: category::WRITTEN | category::PRESENT | category::SWAPPED,
                        ..Query::default()
                    };
                    // Fails unless the whole mapping is registered with us.
                    let written = if self.tracker.covers(v.start, v.end) {
                        self.pagemap.scan_tracked(v.start, v.end, q).ok()
                    } else {
                        None
                    };
                    self.plan_whole(v, written, false, &mut work)?;
                }
            }
        }
        Ok(work)
    }

    /// The final stop, then the notes and headers.
    pub(super) fn finish(
        &mut self,
        live: &LiveProcess,
        ls: &mut LiveStats,
        stats: &mut CoreStats,
    ) -> Result<(), SnapshotError> {
        let stopped = live.stop()?;
        let (threads, pinfo) = stop_facts(&stopped, self.pid)?;
        stats.threads = threads.len();
        let maps = self.current_mappings()?;
        let work = self.final_jobs(&maps)?;
        let bytes: u64 = work.jobs.iter().map(|c| c.job.len as u64).sum();
        ls.final_bytes = bytes;
        let stopped = match self.clone_worthwhile(bytes) {
            true => match self.read_from_copy(live, stopped, &work, stats)? {
                None => {
                    ls.final_from_copy = true;
                    return self.write_headers(&maps, &pinfo, &threads, stats);
                }
                Some(s) => s,
            },
            false => stopped,
        };
        if bytes <= RAM_LIMIT {
            let read = read_all(&stopped, &work.jobs, &mut self.written);
            stats.stopped(&stopped);
            stopped.resume()?;
            for (c, buf) in work.jobs.iter().zip(&read) {
                elf::write_nonzero(self.file, c.job.offset, buf, c.overwrite, &mut self.written)
                    .map_err(|e| write_error(self.dest, self.written.bytes_written, e))?;
            }
            self.punch(&work.zero)?;
        } else {
            let r = self.copy(&work, &mut |_| {});
            stats.stopped(&stopped);
            stopped.resume()?;
            r?;
        }
        self.write_headers(&maps, &pinfo, &threads, stats)
    }

    /// Whether reading `bytes` with the target stopped would take longer
    /// than cloning it (the kernel copies its page tables: about 30 ms per
    /// GiB resident, against 2-3 GiB/s for reading) and a clone has room.
    fn clone_worthwhile(&self, bytes: u64) -> bool {
        let rss = resident_bytes(self.pid);
        bytes > CLONE_ABOVE.max(rss / 16) && super::super::fork::memory_headroom(self.pid).is_ok()
    }

    /// Clones the stopped target, resumes it and copies `work` from the
    /// frozen copy, which is then killed and reaped. `Ok(Some(stopped))`
    /// hands the stop back when the clone failed (the caller reads with the
    /// target stopped instead).
    fn read_from_copy<'l>(
        &mut self,
        live: &'l LiveProcess,
        stopped: Stopped<'l>,
        work: &Work,
        stats: &mut CoreStats,
    ) -> Result<Option<Stopped<'l>>, SnapshotError> {
        let Ok(f) = stopped.fork_copy() else {
            return Ok(Some(stopped));
        };
        stats.clone = f.clone;
        stats.stopped(&stopped);
        stopped.resume()?;
        // Never process_vm_readv here: it would copy every shared page.
        let mem = ProcessMemory::without_pinning(f.child);
        let r = self.copy_from(&mem, work, &mut |_| {});
        let reaped = live.release_copy();
        r?;
        let d = reaped?;
        stats.reap_pause = d.pause;
        stats.leftovers_reaped = d.leftovers;
        stats.reap_one_thread = d.one_thread;
        Ok(None)
    }

    /// Program headers for every mapping (one `PT_LOAD` per copied piece),
    /// and the notes: right after the ELF header if they fit the room kept
    /// there, else at the end of the file.
    fn write_headers(
        &mut self,
        maps: &[(Vma, Dump)],
        pinfo: &notes::ProcessInfo,
        threads: &[notes::ThreadInfo],
        stats: &mut CoreStats,
    ) -> Result<(), SnapshotError> {
        let vmas: Vec<Vma> = maps.iter().map(|(v, _)| v.clone()).collect();
        let notes = notes::build_notes(pinfo, threads, &vmas);
        let mut loads = Vec::new();
        for (v, rule) in maps {
            let copied = match rule {
                Dump::None => Vec::new(),
                Dump::ElfHeader => self.extents.find(v.start).into_iter().collect(),
                Dump::Whole => self
                    .extents
                    .pieces(v.start, v.end)
                    .into_iter()
                    .filter_map(|p| match p {
                        Piece::Copied(e) => Some(e),
                        Piece::Missing { .. } => None,
                    })
                    .collect(),
            };
            if copied.is_empty() {
                loads.push(Phdr::load(v, v.start, v.len(), 0, 0));
                continue;
            }
            // A header-only mapping's one page, or the copied pieces.
            let mut at = v.start;
            for e in copied {
                if e.start > at {
                    loads.push(Phdr::load(v, at, e.start - at, 0, 0));
                }
                let tail = if *rule == Dump::ElfHeader {
                    v.end - e.start
                } else {
                    e.end - e.start
                };
                loads.push(Phdr::load(v, e.start, tail, e.offset, e.end - e.start));
                at = e.start + tail;
            }
            if at < v.end {
                loads.push(Phdr::load(v, at, v.end - at, 0, 0));
            }
        }
        let n = loads.len() + 1;
        let head_len = elf::header_len(n);
        let room = self.room;
        let (phoff, notes_at) = if head_len + notes.len() as u64 <= room {
            (64, head_len)
        } else {
            let at = self.end;
            (at, at + head_len - 64)
        };
        let mut phdrs = vec![Phdr::note(notes_at, notes.len() as u64)];
        phdrs.extend(loads);
        let bytes = elf::header_and_phdrs(phoff, &phdrs);
        let (dest, done) = (self.dest, self.written.bytes_written);
        let werr = |e| write_error(dest, done, e);
        if phoff == 64 {
            self.file.write_all_at(&bytes, 0).map_err(werr)?;
        } else {
            self.file.write_all_at(&bytes[..64], 0).map_err(werr)?;
            self.file.write_all_at(&bytes[64..], phoff).map_err(werr)?;
        }
        self.file.write_all_at(&notes, notes_at).map_err(werr)?;
        let end = (notes_at + notes.len() as u64).max(self.end);
        self.file.set_len(end).map_err(werr)?;
        self.written.bytes_written += (bytes.len() + notes.len()) as u64;
        stats.segments = phdrs.len() - 1;
        stats.file_len = end;
        Ok(())
    }
}

/// Reads every job from `mem` into memory, with several threads.
fn read_all(mem: &(dyn Memory + Sync), jobs: &[Copy], stats: &mut WriteStats) -> Vec<Vec<u8>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let out: Vec<Mutex<Vec<u8>>> = jobs.iter().map(|_| Mutex::new(Vec::new())).collect();
    let unreadable = AtomicUsize::new(0);
    let readers = elf::reader_count().min(jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..readers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = jobs.get(i) else { return };
                let mut buf = vec![0u8; c.job.len];
                let mut st = WriteStats::default();
                elf::read_tolerant(mem, c.job.addr, &mut buf, &mut st);
                unreadable.fetch_add(st.unreadable_pages as usize, Ordering::Relaxed);
                if let Ok(mut slot) = out[i].lock() {
                    *slot = buf;
                }
            });
        }
    });
    stats.unreadable_pages += unreadable.load(Ordering::Relaxed) as u64;
    out.into_iter()
        .map(|m| m.into_inner().unwrap_or_default())
        .collect()
}

/// Above this many bytes to read at the end, a clone may be quicker.
const CLONE_ABOVE: u64 = 64 << 20;

/// The target's resident memory (`VmRSS`), 0 if unknown.
fn resident_bytes(pid: i32) -> u64 {
    procfs::kb_to_bytes(procfs::status(pid).and_then(|s| s.vmrss))
}
