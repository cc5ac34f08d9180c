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
//! found through `NT_FILE`, as gdb does.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use thiserror::Error;

use super::memory::{Memory, ReadFault};
use super::{Mapping, Regs, Target, Thread};

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
const AT_ENTRY: u64 = 9;
const PHDR_SIZE: u64 = 56;
/// Offsets inside the kernel's `struct elf_prstatus` (x86-64).
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
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
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

/// A file read with `pread` through a small cache of blocks.
#[derive(Debug)]
struct Source {
    data: Data,
    len: u64,
    cache: Mutex<BlockCache>,
}

#[derive(Debug)]
enum Data {
    File(File),
    /// Held in memory (tests, fuzzing).
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
struct BlockCache {
    blocks: HashMap<u64, Arc<Vec<u8>>>,
    order: VecDeque<u64>,
}

impl Source {
    fn open(path: &Path) -> std::io::Result<Source> {
        // Non-blocking, and regular files only: a hostile core can name a
        // FIFO or a device, and reading one must not hang.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = meta.len();
        Ok(Source {
            data: Data::File(file),
            len,
            cache: Mutex::new(BlockCache::default()),
        })
    }

    fn from_bytes(bytes: Vec<u8>) -> Source {
        Source {
            len: bytes.len() as u64,
            data: Data::Bytes(bytes),
            cache: Mutex::new(BlockCache::default()),
        }
    }

    fn pread(&self, buf: &mut [u8], off: u64) -> bool {
        match &self.data {
            Data::File(f) => f.read_exact_at(buf, off).is_ok(),
            Data::Bytes(b) => {
                let Ok(start) = usize::try_from(off) else {
                    return false;
                };
                match b.get(start..start.saturating_add(buf.len())) {
                    Some(src) if src.len() == buf.len() => {
                        buf.copy_from_slice(src);
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// Fills `buf` from byte `off`, or fails (nothing past the end is read).
    fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        let Some(end) = off.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.len {
            return false;
        }
        if buf.len() as u64 >= BLOCK || matches!(self.data, Data::Bytes(_)) {
            return self.pread(buf, off);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let index = pos / BLOCK;
            let Some(block) = self.block(index) else {
                return false;
            };
            let within = (pos - index * BLOCK) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(within));
            if n == 0 {
                return false;
            }
            buf[done..done + n].copy_from_slice(&block[within..within + n]);
            done += n;
        }
        true
    }

    fn block(&self, index: u64) -> Option<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.blocks.get(&index) {
            return Some(b.clone());
        }
        let start = index * BLOCK;
        let n = BLOCK.min(self.len.checked_sub(start)?) as usize;
        let mut bytes = vec![0u8; n];
        if !self.pread(&mut bytes, start) {
            return None;
        }
        let bytes = Arc::new(bytes);
        cache.blocks.insert(index, bytes.clone());
        cache.order.push_back(index);
        if cache.order.len() > CACHE_BLOCKS {
            if let Some(old) = cache.order.pop_front() {
                cache.blocks.remove(&old);
            }
        }
        Some(bytes)
    }
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
    threads: Vec<Thread>,
    mappings: Vec<Mapping>,
    pid: Option<i32>,
    command: Option<String>,
    args: Option<String>,
    entry: Option<u64>,
}

impl CoreFile {
    /// Opens and indexes the core at `path` (headers and notes only; memory
    /// is read on demand).
    pub fn open(path: &Path) -> Result<CoreFile, CoreError> {
        let core = Source::open(path).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
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

    /// The process id the core was taken of.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The command name (`comm`, at most 15 bytes), from `NT_PRPSINFO`.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The start of the command line (at most 80 bytes), from `NT_PRPSINFO`.
    pub fn args(&self) -> Option<&str> {
        self.args.as_deref()
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
        let after = self.file_maps.partition_point(|m| m.start <= addr);
        self.file_maps[..after]
            .iter()
            .rev()
            .take(4)
            .find(|m| addr < m.end)
    }

    /// Fills a prefix of `buf` (at least one byte) from what covers `addr`;
    /// returns how much.
    fn read_some(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let Some(seg) = self.segment_at(addr) else {
            // gdb's gcore leaves read-only file mappings out altogether.
            return self.read_mapped_file(addr, buf);
        };
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
        if self.file_map_at(addr).is_some() {
            return self.read_mapped_file(addr, &mut buf[..n]);
        }
        // Anonymous and not dumped (MADV_DONTDUMP, or never touched): zeros,
        // unless it was not even readable (a PROT_NONE reservation).
        if seg.flags & (PF_R | PF_W | PF_X) == 0 {
            return None;
        }
        buf[..n].fill(0);
        Some(n)
    }

    /// Fills a prefix of `buf` from the file `NT_FILE` says is mapped at `addr`.
    fn read_mapped_file(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let m = self.file_map_at(addr)?;
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

fn strip_deleted(name: &str) -> &str {
    name.trim_end_matches(" (deleted)")
}

/// What the headers and notes say, before it becomes a [`CoreFile`].
#[derive(Default)]
struct Parsed {
    segments: Vec<Segment>,
    file_maps: Vec<(u64, u64, u64, String)>,
    threads: Vec<Thread>,
    pid: Option<i32>,
    command: Option<String>,
    args: Option<String>,
    entry: Option<u64>,
}

impl Parsed {
    fn into_core(mut self, path: PathBuf, core: Source) -> CoreFile {
        self.segments.sort_by_key(|s| s.vaddr);
        let mut files: Vec<Backing> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut file_maps: Vec<FileMap> = self
            .file_maps
            .into_iter()
            .map(|(start, end, offset, name)| {
                let file = *index.entry(name.clone()).or_insert_with(|| {
                    files.push(Backing {
                        name,
                        local: None,
                        source: OnceLock::new(),
                    });
                    files.len() - 1
                });
                FileMap {
                    start,
                    end,
                    offset,
                    file,
                }
            })
            .collect();
        file_maps.sort_by_key(|m| m.start);
        let mut core = CoreFile {
            path,
            core,
            segments: self.segments,
            file_maps,
            files,
            threads: self.threads,
            mappings: Vec::new(),
            pid: self.pid,
            command: self.command,
            args: self.args,
            entry: self.entry,
        };
        core.mappings = core.build_mappings();
        core
    }
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
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

struct Parser<'a> {
    path: PathBuf,
    src: &'a Source,
}

impl Parser<'_> {
    fn not_core(&self, why: impl Into<String>) -> CoreError {
        CoreError::NotCore {
            path: self.path.clone(),
            why: why.into(),
        }
    }

    fn malformed(&self, what: &'static str, offset: u64) -> CoreError {
        CoreError::Malformed {
            path: self.path.clone(),
            what,
            offset,
        }
    }

    fn bytes(&self, off: u64, len: u64, what: &'static str) -> Result<Vec<u8>, CoreError> {
        // Checked before allocating: a hostile length must not cost memory.
        let fits = off.checked_add(len).is_some_and(|end| end <= self.src.len);
        if !fits || len > MAX_NOTES_BYTES {
            return Err(self.malformed(what, off));
        }
        let len_usize = usize::try_from(len).map_err(|_| self.malformed(what, off))?;
        let mut v = vec![0u8; len_usize];
        if self.src.read_at(off, &mut v) {
            Ok(v)
        } else {
            Err(self.malformed(what, off))
        }
    }

    fn parse(&self) -> Result<Parsed, CoreError> {
        let mut eh = [0u8; 64];
        if !self.src.read_at(0, &mut eh) {
            return Err(self.not_core("too short for an ELF header"));
        }
        if &eh[..4] != b"\x7fELF" {
            return Err(self.not_core("no ELF magic"));
        }
        if eh[4] != 2 || eh[5] != 1 {
            return Err(self.not_core("not 64-bit little-endian"));
        }
        let e_type = u16_at(&eh, 16).unwrap_or(0);
        if e_type != ET_CORE {
            return Err(self.not_core(format!("ELF type {e_type}, not a core (4)")));
        }
        let machine = u16_at(&eh, 18).unwrap_or(0);
        if machine != EM_X86_64 {
            return Err(self.not_core(format!("machine {machine}, not x86-64 (62)")));
        }
        let phoff = u64_at(&eh, 32).unwrap_or(0);
        let shoff = u64_at(&eh, 40).unwrap_or(0);
        let phentsize = u64::from(u16_at(&eh, 54).unwrap_or(0));
        let mut phnum = u64::from(u16_at(&eh, 56).unwrap_or(0));
        if phnum == u64::from(PN_XNUM) {
            // The real count is in section header 0's sh_info.
            let sh = self.bytes(shoff, 64, "section header 0")?;
            phnum = u64::from(u32_at(&sh, 44).unwrap_or(0));
        }
        if phentsize < PHDR_SIZE || phnum > MAX_PHDRS {
            return Err(self.malformed("program header table", phoff));
        }
        let table = self.bytes(
            phoff,
            phnum * phentsize,
            "program header table (past the end of the file)",
        )?;

        let mut parsed = Parsed::default();
        let mut notes: Vec<(u64, u64)> = Vec::new();
        let mut want = 0u64;
        for i in 0..phnum as usize {
            let ph = &table[i * phentsize as usize..][..PHDR_SIZE as usize];
            let field = |off| u64_at(ph, off).unwrap_or(0);
            let p_type = u32_at(ph, 0).unwrap_or(0);
            let seg = Segment {
                flags: u32_at(ph, 4).unwrap_or(0),
                offset: field(8),
                vaddr: field(16),
                filesz: field(32),
                memsz: field(40),
            };
            let ph_off = phoff + i as u64 * phentsize;
            let end = seg
                .offset
                .checked_add(seg.filesz)
                .ok_or_else(|| self.malformed("segment offset", ph_off))?;
            match p_type {
                PT_LOAD => {
                    if seg.vaddr.checked_add(seg.memsz).is_none() || seg.filesz > seg.memsz {
                        return Err(self.malformed("PT_LOAD segment", ph_off));
                    }
                    want = want.max(end);
                    parsed.segments.push(seg);
                }
                PT_NOTE => {
                    want = want.max(end);
                    notes.push((seg.offset, seg.filesz));
                }
                _ => {}
            }
        }
        if want > self.src.len {
            return Err(CoreError::Truncated {
                path: self.path.clone(),
                have: self.src.len,
                want,
            });
        }
        if notes.iter().map(|n| n.1).sum::<u64>() > MAX_NOTES_BYTES {
            return Err(self.malformed("note segments (too large)", phoff));
        }
        for (off, len) in notes {
            let data = self.bytes(off, len, "note segment")?;
            self.notes(&data, off, &mut parsed)?;
        }
        if parsed.segments.is_empty() {
            return Err(self.not_core("it has no memory segments"));
        }
        Ok(parsed)
    }

    fn notes(&self, data: &[u8], base: u64, out: &mut Parsed) -> Result<(), CoreError> {
        let mut pos = 0usize;
        let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
        while pos + 12 <= data.len() {
            let at = base + pos as u64;
            let bad = || self.malformed("note header", at);
            let namesz = u32_at(data, pos).ok_or_else(bad)? as usize;
            let descsz = u32_at(data, pos + 4).ok_or_else(bad)? as usize;
            let kind = u32_at(data, pos + 8).ok_or_else(bad)?;
            let name_at = pos + 12;
            let desc_at = name_at
                .checked_add(pad(namesz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let next = desc_at
                .checked_add(pad(descsz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let desc = data
                .get(desc_at..desc_at.checked_add(descsz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let name = data.get(name_at..name_at + namesz).ok_or_else(bad)?;
            if c_string(name) == "CORE" {
                self.note(kind, desc, at, out)?;
            }
            pos = next.min(data.len());
        }
        Ok(())
    }

    fn note(&self, kind: u32, desc: &[u8], at: u64, out: &mut Parsed) -> Result<(), CoreError> {
        match kind {
            NT_PRSTATUS => {
                let bad = || self.malformed("NT_PRSTATUS note", at);
                let tid = u32_at(desc, PRSTATUS_PID).ok_or_else(bad)? as i32;
                let mut r = [0u64; 27];
                for (i, v) in r.iter_mut().enumerate() {
                    *v = u64_at(desc, PRSTATUS_REG + i * 8).ok_or_else(bad)?;
                }
                out.threads.push(Thread {
                    tid,
                    regs: regs_from(&r),
                });
            }
            NT_PRPSINFO => {
                if let Some(pid) = u32_at(desc, PRPSINFO_PID) {
                    out.pid = Some(pid as i32);
                }
                out.command = desc.get(PRPSINFO_FNAME..PRPSINFO_FNAME + 16).map(c_string);
                out.args = desc
                    .get(PRPSINFO_PSARGS..PRPSINFO_PSARGS + 80)
                    .map(c_string);
            }
            NT_AUXV => {
                out.entry = desc
                    .chunks_exact(16)
                    .find(|kv| u64_at(kv, 0) == Some(AT_ENTRY))
                    .and_then(|kv| u64_at(kv, 8));
            }
            NT_FILE => out.file_maps = self.nt_file(desc, at)?,
            _ => {}
        }
        Ok(())
    }

    /// `count, page_size, count × (start, end, page offset), count × path\0`.
    fn nt_file(&self, desc: &[u8], at: u64) -> Result<Vec<(u64, u64, u64, String)>, CoreError> {
        let bad = || self.malformed("NT_FILE note", at);
        let count = u64_at(desc, 0).ok_or_else(bad)?;
        let page = u64_at(desc, 8).ok_or_else(bad)?;
        // Each entry takes 24 bytes plus at least a NUL: the note bounds the count.
        if count > desc.len() as u64 / 25 {
            return Err(bad());
        }
        let count = count as usize;
        let mut names = desc
            .get(16 + count * 24..)
            .ok_or_else(bad)?
            .split(|&c| c == 0);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let e = 16 + i * 24;
            let start = u64_at(desc, e).ok_or_else(bad)?;
            let end = u64_at(desc, e + 8).ok_or_else(bad)?;
            let pgoff = u64_at(desc, e + 16).ok_or_else(bad)?;
            let name = names.next().ok_or_else(bad)?;
            if end < start {
                return Err(bad());
            }
            let offset = pgoff.checked_mul(page).ok_or_else(bad)?;
            out.push((
                start,
                end,
                offset,
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        Ok(out)
    }
}

/// `pr_reg`: the kernel's `user_regs_struct`, in [`Regs`] field order.
fn regs_from(r: &[u64; 27]) -> Regs {
    Regs {
        r15: r[0],
        r14: r[1],
        r13: r[2],
        r12: r[3],
        rbp: r[4],
        rbx: r[5],
        r11: r[6],
        r10: r[7],
        r9: r[8],
        r8: r[9],
        rax: r[10],
        rcx: r[11],
        rdx: r[12],
        rsi: r[13],
        rdi: r[14],
        orig_rax: r[15],
        rip: r[16],
        cs: r[17],
        eflags: r[18],
        rsp: r[19],
        ss: r[20],
        fs_base: r[21],
        gs_base: r[22],
        ds: r[23],
        es: r[24],
        fs: r[25],
        gs: r[26],
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
