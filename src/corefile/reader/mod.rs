//! An ELF core file (the kernel's, gdb's `gcore`) as a read-only [`Target`].
//!
//! The core is read on demand with `pread` through a small block cache, so a
//! core of many GiB costs a few MiB of memory. Headers and notes are decoded
//! by hand, field by field, little-endian, every offset and count checked
//! against the file: a truncated or hostile core yields a [`CoreError`] or a
//! [`ReadFault`], never a panic.
//!
//! Memory the core did not dump (file-backed text and read-only data, which
//! the kernel writes as headers only) is read from the mapped file itself,
//! found through `NT_FILE`, as gdb does, or from an executable the caller
//! has checked is the mapped one ([`CoreFile::read_unmapped_from`]). Any
//! other byte the core did not dump is a read fault, never a zero: reading
//! it as zeros would print plausible wrong values.

// Parses what the target or its files hold: no `unsafe` is needed here,
// so none can creep in.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use thiserror::Error;

mod parse;
mod source;
mod unpack;

use crate::process::readahead::{self, Planned, ReadAhead};
use crate::process::{Mapping, Memory, ReadFault, Regs, Target, Thread};
use parse::Parser;
use source::Source;
pub use unpack::Compression;

const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PN_XNUM: u16 = 0xffff;
const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_FILE: u32 = 0x4649_4c45;
/// goat's own note (owner "GOAT", see `corefile/writer/notes.rs`): clocks at the stop.
const NT_GOAT_CLOCKS: u32 = 0x5441_4f47;
const AT_ENTRY: u64 = 9;
const PHDR_SIZE: u64 = 56;
/// Offsets inside the kernel's `struct elf_prstatus` (x86-64).
const PRSTATUS_CURSIG: usize = 12;
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REG: usize = 112;
/// Offsets inside `struct elf_prpsinfo` (x86-64).
const PRPSINFO_PID: usize = 24;
const PRPSINFO_FNAME: usize = 40;
const PRPSINFO_PSARGS: usize = 56;

/// More program headers than any process has mappings (vm.max_map_count is 65530 by default).
const MAX_PHDRS: u64 = 1 << 20;
/// Notes of one core, in all, at most.
const MAX_NOTES_BYTES: u64 = 256 << 20;
/// Block size and count of the read cache (per file).
const BLOCK: u64 = 64 << 10;
const CACHE_BLOCKS: usize = 64;

/// Why a core file could not be opened.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The cause is part of the text, not a `source` (a field named so
    /// would be one, and a chain would say it twice).
    #[error("cannot read {}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A compressed core whose stream is corrupt, cut short, or unpacks
    /// to more than any core holds.
    #[error("cannot unpack {} ({format}): {why}", path.display())]
    BadCompressed {
        path: PathBuf,
        format: &'static str,
        why: String,
    },
    /// A compressed core that could not be unpacked for want of room
    /// (or rights) where its temporary goes.
    #[error(
        "cannot unpack {} into {}: {cause} (set TMPDIR to a directory with room)",
        path.display(),
        dir.display()
    )]
    UnpackRoom {
        path: PathBuf,
        dir: PathBuf,
        cause: std::io::Error,
    },
    #[error("{} is not an x86-64 ELF core file: {why}", path.display())]
    NotCore { path: PathBuf, why: String },
    #[error(
        "{} is truncated: {have} bytes, but its segments reach {want} (was the dump cut short?)",
        path.display()
    )]
    Truncated { path: PathBuf, have: u64, want: u64 },
    #[error("{} is a malformed core: bad {what} at file offset {offset:#x}", path.display())]
    Malformed {
        path: PathBuf,
        what: &'static str,
        offset: u64,
    },
}

/// One `PT_LOAD`: `memsz` bytes at `vaddr`, the first `filesz` of them at
/// `offset` in the core.
#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    flags: u32,
}

impl Segment {
    fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.memsz)
    }
}

/// One `NT_FILE` entry: `[start, end)` maps `file` from byte `offset`.
#[derive(Debug, Clone, Copy)]
struct FileMap {
    start: u64,
    end: u64,
    offset: u64,
    file: usize,
}

/// A mapped file named by `NT_FILE`, opened on first use.
#[derive(Debug)]
struct Backing {
    /// The path as the core names it.
    name: String,
    /// Where to read it instead (`--exe`), if not from `name`.
    local: Option<PathBuf>,
    source: OnceLock<Option<Source>>,
}

impl Backing {
    fn source(&self) -> Option<&Source> {
        self.source
            .get_or_init(|| {
                let path = match &self.local {
                    Some(p) => p.clone(),
                    None => PathBuf::from(strip_deleted(&self.name)),
                };
                Source::open(&path).ok()
            })
            .as_ref()
    }
}

/// A core file, opened read-only.
#[derive(Debug)]
pub struct CoreFile {
    path: PathBuf,
    core: Source,
    /// Sorted by `vaddr`.
    segments: Vec<Segment>,
    /// Sorted by `start`.
    file_maps: Vec<FileMap>,
    files: Vec<Backing>,
    /// Ranges of a verified executable that back what neither the core nor
    /// `NT_FILE` covers (sorted by `start`; `file` indexes `files`).
    exe_maps: Vec<FileMap>,
    threads: Vec<Thread>,
    /// See [`CoreFile::signalled_thread`].
    signalled: Option<i32>,
    mappings: Vec<Mapping>,
    pid: Option<i32>,
    command: Option<String>,
    args: Option<String>,
    entry: Option<u64>,
    monotonic_ns: Option<i64>,
}

/// Whether `path` holds a core: an ELF file of type `ET_CORE`, or a file
/// compressed in a format goat unpacks (what systemd-coredump stores).
/// Tells `goat debug EXE CORE` from `goat debug CORE EXE`.
pub fn is_core_file(path: &Path) -> bool {
    let mut head = [0u8; 18];
    // Non-blocking, as every open of a user's path: a FIFO must not hang.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let Ok(file) = opened else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let n = file.read_at(&mut head, 0).unwrap_or(0);
    let head = &head[..n];
    Compression::sniff(head).is_some()
        || (head.starts_with(b"\x7fELF") && head.get(16..18) == Some(&[4, 0][..]))
}

impl CoreFile {
    /// Opens and indexes the core at `path` (headers and notes only; memory
    /// is read on demand).
    pub fn open(path: &Path) -> Result<CoreFile, CoreError> {
        let core = Source::open(path).map_err(|cause| CoreError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::from_source(path.to_path_buf(), core.unpacked(path)?)
    }

    /// `file`, this core's file opened for writing, is goat's own scratch
    /// copy (an unlinked file nobody else reads): once the analysis says it
    /// is done reading, its blocks are freed while the answers are built,
    /// and any read after that fails. Only for a core [`Self::open_mapped`].
    pub fn adopt_scratch(&self, file: std::fs::File) {
        self.core.adopt_scratch(file);
    }

    /// Opens and indexes the core at `path`, read through a memory map:
    /// for a file no one else can truncate (`goat why`'s own unlinked
    /// copy), whose heap walk reads it at random.
    pub fn open_mapped(path: &Path) -> Result<CoreFile, CoreError> {
        let io = |cause| CoreError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let core = Source::open(path).map_err(io)?.mapped().map_err(io)?;
        Self::from_source(path.to_path_buf(), core)
    }

    /// Indexes a core held in memory (tests, fuzzing); mapped files are
    /// still read from disk.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<CoreFile, CoreError> {
        Self::from_source(PathBuf::from("<memory>"), Source::from_bytes(bytes))
    }

    fn from_source(path: PathBuf, core: Source) -> Result<CoreFile, CoreError> {
        let parsed = Parser {
            path: path.clone(),
            src: &core,
        }
        .parse()?;
        Ok(parsed.into_core(path, core))
    }

    /// The core file's own path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The executable, as the core names it (from `NT_FILE`: the file mapped
    /// at the entry point, else the one named like the command, else the
    /// lowest file mapped from offset 0). It may not exist on this machine.
    pub fn executable(&self) -> Option<PathBuf> {
        let by_entry = self.entry.and_then(|e| self.file_map_at(e));
        let by_name = || {
            let comm = self.command.as_deref().filter(|c| !c.is_empty())?;
            self.file_maps.iter().find(|m| {
                let name = strip_deleted(&self.files[m.file].name);
                let base = name.rsplit('/').next().unwrap_or(name);
                // The kernel keeps the first 15 bytes of the name.
                base.starts_with(comm) && m.offset == 0
            })
        };
        let lowest = || self.file_maps.iter().find(|m| m.offset == 0);
        let m = by_entry.or_else(by_name).or_else(lowest)?;
        Some(PathBuf::from(strip_deleted(&self.files[m.file].name)))
    }

    /// Reads the mapped file the core names `named` from `local` instead
    /// (an executable copied elsewhere, or `--exe`).
    pub fn use_file(&mut self, named: &Path, local: &Path) {
        let named = named.to_string_lossy();
        for f in &mut self.files {
            if strip_deleted(&f.name) == strip_deleted(&named) {
                f.local = Some(local.to_path_buf());
                f.source = OnceLock::new();
            }
        }
    }

    /// Reads what neither the core nor `NT_FILE` covers from `file`, at
    /// `ranges` (`(start, end, file offset)`, runtime addresses). For the
    /// caller to use only once it has checked `file` is the executable the
    /// core was taken of: a core whose `NT_FILE` note is missing or
    /// damaged then still reads the executable's text and read-only data.
    pub fn read_unmapped_from(&mut self, file: &Path, ranges: &[(u64, u64, u64)]) {
        self.files.push(Backing {
            name: file.to_string_lossy().into_owned(),
            local: Some(file.to_path_buf()),
            source: OnceLock::new(),
        });
        let index = self.files.len() - 1;
        self.exe_maps = ranges
            .iter()
            .filter(|(start, end, _)| start < end)
            .map(|&(start, end, offset)| FileMap {
                start,
                end,
                offset,
                file: index,
            })
            .collect();
        self.exe_maps.sort_by_key(|m| m.start);
    }

    /// The entry point (`AT_ENTRY` from `NT_AUXV`), when the core has one:
    /// with the executable's own entry it gives the load bias without
    /// `NT_FILE`.
    pub fn entry(&self) -> Option<u64> {
        self.entry
    }

    /// The process id the core was taken of.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The thread the signal that dumped the core was delivered to: the
    /// kernel writes that thread's `NT_PRSTATUS` first, and every thread's
    /// `pr_cursig` names the signal (a crash); cores written of a live
    /// process (goat's, gdb's gcore) have none.
    pub fn signalled_thread(&self) -> Option<i32> {
        self.signalled
    }

    /// The command name (`comm`, at most 15 bytes), from `NT_PRPSINFO`.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The start of the command line (at most 80 bytes), from `NT_PRPSINFO`.
    pub fn args(&self) -> Option<&str> {
        self.args.as_deref()
    }

    /// `CLOCK_MONOTONIC` (ns) when the process was stopped, for cores goat
    /// wrote (other cores carry no clock): the "now" for wait times.
    pub fn monotonic_at_stop(&self) -> Option<i64> {
        self.monotonic_ns
    }

    /// Reads bytes the core itself holds at `addr` (never from a mapped
    /// file, never zeros for what was not dumped).
    pub fn read_dumped(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let seg = self.segment_at(addr).ok_or(fault)?;
        let rel = addr - seg.vaddr;
        let end = rel.checked_add(buf.len() as u64).ok_or(fault)?;
        if end > seg.filesz || !self.core.read_at(seg.offset.saturating_add(rel), buf) {
            return Err(fault);
        }
        Ok(())
    }

    fn segment_at(&self, addr: u64) -> Option<&Segment> {
        let after = self.segments.partition_point(|s| s.vaddr <= addr);
        self.segments[..after]
            .iter()
            .rev()
            .take(4)
            .find(|s| addr < s.end())
    }

    fn file_map_at(&self, addr: u64) -> Option<&FileMap> {
        map_at(&self.file_maps, addr)
    }

    /// Fills a prefix of `buf` (at least one byte) from what covers `addr`;
    /// returns how much.
    fn read_some(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let Some(seg) = self.segment_at(addr) else {
            // gdb's gcore leaves read-only file mappings out altogether.
            return self.read_mapped_file(addr, buf);
        };
        if seg.flags & (PF_R | PF_W | PF_X) == 0 {
            // A PROT_NONE reservation: the process could not read it either.
            return None;
        }
        let rel = addr - seg.vaddr;
        let n = buf
            .len()
            .min(usize::try_from(seg.end() - addr).unwrap_or(usize::MAX));
        if rel < seg.filesz {
            let n = n.min(usize::try_from(seg.filesz - rel).unwrap_or(usize::MAX));
            let off = seg.offset.checked_add(rel)?;
            return self.core.read_at(off, &mut buf[..n]).then_some(n);
        }
        // Not dumped: a file-backed page comes from the file, as mapped.
        // Anything else (MADV_DONTDUMP, or a mapping NT_FILE no longer
        // names) is unknown, and reading it as zeros would print
        // plausible wrong values: a fault.
        self.read_mapped_file(addr, &mut buf[..n])
    }

    /// How many bytes from `addr` (at least one, at most `want`) a read
    /// there would fill as [`Self::read_some`] fills them, found from the
    /// segments and the files' lengths alone; `None` where it would fail.
    fn held_from(&self, addr: u64, want: u64) -> Option<u64> {
        let Some(seg) = self.segment_at(addr) else {
            return self.mapped_file_holds(addr, want);
        };
        if seg.flags & (PF_R | PF_W | PF_X) == 0 {
            return None;
        }
        let rel = addr - seg.vaddr;
        let n = want.min(seg.end() - addr);
        if rel < seg.filesz {
            let n = n.min(seg.filesz - rel);
            let end = seg.offset.checked_add(rel)?.checked_add(n)?;
            return (n > 0 && end <= self.core.len).then_some(n);
        }
        self.mapped_file_holds(addr, n)
    }

    /// [`Self::held_from`] for the file `NT_FILE` maps at `addr`.
    fn mapped_file_holds(&self, addr: u64, want: u64) -> Option<u64> {
        let m = self
            .file_map_at(addr)
            .or_else(|| map_at(&self.exe_maps, addr))?;
        let n = want.min(m.end - addr);
        let end = m.offset.checked_add(addr - m.start)?.checked_add(n)?;
        let src = self.files.get(m.file)?.source()?;
        (n > 0 && end <= src.len).then_some(n)
    }

    /// Fills a prefix of `buf` from the file `NT_FILE` says is mapped at `addr`.
    fn read_mapped_file(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let m = self
            .file_map_at(addr)
            .or_else(|| map_at(&self.exe_maps, addr))?;
        let n = buf
            .len()
            .min(usize::try_from(m.end - addr).unwrap_or(usize::MAX));
        let off = m.offset.checked_add(addr - m.start)?;
        let src = self.files.get(m.file)?.source()?;
        src.read_at(off, &mut buf[..n]).then_some(n)
    }
}

impl Memory for CoreFile {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        addr.checked_add(buf.len() as u64).ok_or(fault)?;
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .read_some(addr + done as u64, &mut buf[done..])
                .ok_or(fault)?;
            done += n;
        }
        Ok(())
    }

    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        // In file order, so neighbouring requests share cached blocks.
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by_key(|&i| reqs[i].0);
        let mut out = vec![Ok(()); reqs.len()];
        for i in order {
            let (addr, buf) = &mut reqs[i];
            out[i] = self.read(*addr, buf);
        }
        out
    }

    fn holds(&self, addr: u64, len: usize) -> Option<bool> {
        let Some(end) = addr.checked_add(len as u64) else {
            return Some(false);
        };
        let mut at = addr;
        while at < end {
            match self.held_from(at, end - at) {
                Some(n) => at += n,
                None => return Some(false),
            }
        }
        Some(true)
    }

    fn pause_reads(&self) {
        self.core.pause_reads();
    }

    fn done_reading(&self) {
        self.core.done_reading();
    }

    /// Only for goat's own copy of a process (read through a map): a
    /// user's core is read as it is cached.
    fn read_ahead(&self, ranges: &[(u64, usize)]) -> Option<ReadAhead> {
        if ranges.len() < readahead::MIN_RANGES {
            return None;
        }
        let file = self.core.direct()?;
        let planned: Vec<Planned> = ranges
            .iter()
            .filter_map(|&(addr, len)| {
                let seg = self.segment_at(addr)?;
                let rel = addr - seg.vaddr;
                let end = rel.checked_add(len as u64)?;
                (end <= seg.filesz).then_some(Planned {
                    addr,
                    len: len as u64,
                    file_offset: seg.offset.checked_add(rel)?,
                })
            })
            .collect();
        ReadAhead::start(file, &planned)
    }

    /// Only for goat's own copy of a process, as [`Self::read_ahead`].
    fn prefetch(&self, ranges: &[(u64, u64)]) {
        let mut file_ranges: Vec<(u64, u64)> = Vec::new();
        for &(start, end) in ranges {
            let mut at = start;
            // A range may cross segments; each piece is the file's part.
            while at < end {
                let Some(seg) = self.segment_at(at) else {
                    break;
                };
                let piece_end = end.min(seg.end());
                let rel = at - seg.vaddr;
                let file_end = (piece_end - seg.vaddr).min(seg.filesz);
                if rel < file_end {
                    if let (Some(lo), Some(hi)) = (
                        seg.offset.checked_add(rel),
                        seg.offset.checked_add(file_end),
                    ) {
                        file_ranges.push((lo, hi));
                    }
                }
                at = piece_end;
            }
        }
        self.core.prefetch(file_ranges);
    }
}

impl Target for CoreFile {
    fn pid(&self) -> Option<i32> {
        self.pid
    }
    fn threads(&self) -> &[Thread] {
        &self.threads
    }
    fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }
}

/// The map of `maps` (sorted by `start`, overlapping little) holding `addr`.
fn map_at(maps: &[FileMap], addr: u64) -> Option<&FileMap> {
    let after = maps.partition_point(|m| m.start <= addr);
    maps[..after].iter().rev().take(4).find(|m| addr < m.end)
}

fn strip_deleted(name: &str) -> &str {
    name.trim_end_matches(" (deleted)")
}

impl CoreFile {
    /// One mapping per `PT_LOAD` (with the path `NT_FILE` gives it), plus any
    /// `NT_FILE` range no `PT_LOAD` covers.
    fn build_mappings(&self) -> Vec<Mapping> {
        let mut out: Vec<Mapping> = self
            .segments
            .iter()
            .map(|s| {
                let file = self.file_map_at(s.vaddr);
                Mapping {
                    start: s.vaddr,
                    end: s.end(),
                    readable: s.flags & PF_R != 0,
                    writable: s.flags & PF_W != 0,
                    executable: s.flags & PF_X != 0,
                    private: true,
                    offset: file.map_or(0, |m| m.offset.wrapping_add(s.vaddr - m.start)),
                    path: file.map(|m| self.files[m.file].name.clone()),
                }
            })
            .collect();
        for m in &self.file_maps {
            if self.segment_at(m.start).is_none() {
                out.push(Mapping {
                    start: m.start,
                    end: m.end,
                    readable: true,
                    writable: false,
                    executable: false,
                    private: true,
                    offset: m.offset,
                    path: Some(self.files[m.file].name.clone()),
                });
            }
        }
        out.sort_by_key(|m| m.start);
        out
    }
}

/// Bounds-checked little-endian field reads from a byte slice.
#[cfg(test)]
mod tests;
