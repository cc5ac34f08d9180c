//! Bytes copied out of a target, readable after it has resumed.
//!
//! The bytes live in one of two stores: an arena on goat's heap (a stop-mode
//! capture fills it while the target is stopped, where a page fault, a
//! compression or a `pwrite` would lengthen the pause), or an unlinked
//! temporary file ([`CapturedMemory::spilled`]: captures copied while the
//! target runs, and cores), so that a million goroutines' 1.9 GB do not
//! become goat's RSS. The file holds them lz4-compressed, block by block
//! (`frames.rs`), about 4x smaller: less to write while the copy runs,
//! less disk. Either way the ranges sit in one sorted in-memory index of
//! offsets into the store (logical offsets, for the file), and decoding
//! threads read through a [`CaptureReader`] each, which remembers the last
//! range it hit and keeps a small cache of decoded blocks (`cache.rs`).
//! Overwrites of the file's bytes stay in memory as patches
//! (`patched.rs`): the final stop of a pre-copy capture makes them, and
//! must neither compress nor write.

mod cache;
mod direct;
#[cfg(test)]
mod direct_tests;
mod frames;
mod patched;
mod pipelined;
mod reader;
mod spill;
#[cfg(test)]
mod spill_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::memory::{Memory, ReadFault};
use super::readahead::{reopen_direct, Planned, ReadAhead};
use cache::BlockCache;
pub use reader::CaptureReader;
pub use spill::temporary_dir;
use spill::{SpillFile, STAGING_BYTES};

/// Ranges to read ahead from which their look-up is shared among the CPUs.
const PLAN_PARALLEL_MIN: usize = 20_000;

/// One copied range: `len` bytes of target memory at `addr`, kept at
/// `offset` in the store (the arena's, or the file's logical offset: where
/// the bytes are once decompressed).
#[derive(Debug, Clone, Copy)]
struct Span {
    addr: u64,
    len: u64,
    offset: u64,
}

impl Span {
    /// `addr + len`; spans that would pass 2^64 are never recorded.
    fn end(&self) -> u64 {
        self.addr + self.len
    }
}

enum Store {
    Ram(Vec<u8>),
    /// Nothing copied: the ranges are read again from `source` (a core,
    /// which does not change), through a staging buffer while the capture
    /// is made. Copying a core's million stacks into a spill file was
    /// half of `goat why`'s decoding time, for bytes already on disk.
    Through {
        source: Arc<dyn Memory + Send + Sync>,
        staging: Vec<u8>,
        /// The decode's stacks fetched ahead of it, where the source can
        /// ([`CapturedMemory::read_ahead`]).
        ahead: Option<ReadAhead>,
    },
    /// The file, and the cache [`Memory::read`] on the capture itself uses
    /// (a [`CaptureReader`] has its own, lock-free).
    Spill {
        file: Box<SpillFile>,
        cache: Mutex<BlockCache>,
        /// A raw file's stacks, in the order the decode will read them
        /// ([`CapturedMemory::will_read`]), and their read-ahead once
        /// [`CapturedMemory::begin_reads`] started it.
        will_read: Vec<(u64, usize)>,
        ahead: Option<ReadAhead>,
    },
}

/// A sparse copy of target memory: the ranges read from it. Decoding runs
/// against this after the target resumes, so the pause covers only the
/// copy. Also the fake memory of unit tests.
///
/// All bytes live in one store and the ranges in one sorted index: a dump of
/// 100k goroutines copies 200k ranges, and one allocation per range would
/// cost more than the copy itself. Ranges may overlap (a `g` copied alone
/// and inside a larger run); overlapping ranges hold the same bytes, as
/// they were copied at the same stop, and [`Self::rewrite_from`] keeps it so.
#[derive(Debug)]
pub struct CapturedMemory {
    store: Store,
    index: Vec<Span>,
    /// The longest span's length: how far back a range that overlaps an
    /// address can start.
    longest: u64,
    /// The first write to the spill file that failed (a full disk): the
    /// ranges it held are missing, and the caller must say why.
    spill_error: Option<io::Error>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Ram(arena) => f.debug_tuple("Ram").field(&arena.len()).finish(),
            Store::Spill { file, .. } => f.debug_tuple("Spill").field(file).finish(),
            Store::Through { .. } => f.write_str("Through"),
        }
    }
}

impl Default for CapturedMemory {
    fn default() -> Self {
        CapturedMemory {
            store: Store::Ram(Vec::new()),
            index: Vec::new(),
            longest: 0,
            spill_error: None,
        }
    }
}

impl CapturedMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty copy whose arena already holds `bytes` of faulted-in memory,
    /// so that filling it while the target is stopped costs no page faults.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut arena = vec![0u8; bytes];
        // vec! of zeros maps pages lazily; touch one byte a page to fault
        // them in now, outside the pause.
        for b in arena.iter_mut().step_by(4096) {
            *b = 1;
        }
        arena.clear();
        CapturedMemory {
            store: Store::Ram(arena),
            ..Self::default()
        }
    }

    /// An empty copy kept in an unlinked temporary file in
    /// [`temporary_dir`] (`$TMPDIR`, else `/var/tmp`).
    pub fn spilled() -> io::Result<Self> {
        Self::spilled_in(&temporary_dir())
    }

    /// An empty copy kept in an unlinked temporary file in `dir`.
    pub fn spilled_in(dir: &Path) -> io::Result<Self> {
        Ok(Self::spilled_as(SpillFile::create_in(dir)?))
    }

    /// [`Self::spilled`], its bytes kept raw and written with `O_DIRECT`
    /// where the file system allows it (`direct.rs`): less CPU, four
    /// times the disk space. For a copy of a few hundred MB at most.
    pub fn spilled_raw() -> io::Result<Self> {
        Self::spilled_raw_in(&temporary_dir())
    }

    /// [`Self::spilled_raw`] in `dir`.
    pub fn spilled_raw_in(dir: &Path) -> io::Result<Self> {
        Ok(Self::spilled_as(SpillFile::create_direct_in(dir)?))
    }

    fn spilled_as(file: SpillFile) -> Self {
        CapturedMemory {
            store: Store::Spill {
                file: Box::new(file),
                cache: Mutex::new(BlockCache::default()),
                will_read: Vec::new(),
                ahead: None,
            },
            ..Self::default()
        }
    }

    /// Where the bytes are kept, in words (`--stats`).
    pub fn kept(&self) -> &'static str {
        match &self.store {
            Store::Ram(_) => "in memory",
            Store::Through { .. } => "not copied (read from the core)",
            Store::Spill { file, .. } if file.went_compressed() => {
                "in a temporary file, raw until the disk fell behind, then lz4-compressed"
            }
            Store::Spill { file, .. } if file.is_direct() => {
                "raw in a temporary file, written and read back with O_DIRECT"
            }
            Store::Spill { .. } => "lz4-compressed in a temporary file",
        }
    }

    /// Whether a spilled copy keeps its bytes raw (see [`Self::spilled_raw`]).
    pub fn is_raw(&self) -> bool {
        matches!(&self.store, Store::Spill { file, .. } if file.is_direct())
    }

    /// An empty copy that copies nothing: what it captures is read again
    /// from `source` whenever it is read, for a source that never changes
    /// (a core). Reads outside the captured ranges fail, as on any copy.
    pub fn through(source: Arc<dyn Memory + Send + Sync>) -> Self {
        CapturedMemory {
            store: Store::Through {
                source,
                staging: Vec::new(),
                ahead: None,
            },
            ..Self::default()
        }
    }

    /// The captured `ranges` will be read in about this order (a
    /// decode's stacks): a pass-through capture whose source can fetch
    /// them ahead of the reads has it do so (see `readahead.rs`); a raw
    /// spilled one keeps the list for [`Self::begin_reads`] (the call may
    /// come in a stop).
    pub fn will_read(&mut self, ranges: Vec<(u64, usize)>) {
        match &mut self.store {
            Store::Through { source, ahead, .. } => {
                // The old plan's loaders end before the new one's start.
                *ahead = None;
                *ahead = source.read_ahead(&ranges);
            }
            Store::Spill {
                file,
                will_read,
                ahead,
                ..
            } if file.is_direct() => {
                *ahead = None;
                *will_read = ranges;
            }
            Store::Spill { .. } | Store::Ram(_) => {}
        }
    }

    /// The decode starts (the target runs again): a raw spilled copy
    /// fetches the stacks [`Self::will_read`] named ahead of it, with
    /// `O_DIRECT`, those of them it holds unpatched at least
    /// (`readahead.rs`; a raw file's bytes are in no page cache).
    pub fn begin_reads(&mut self) {
        let Store::Spill {
            file,
            will_read,
            ahead,
            ..
        } = &self.store
        else {
            return;
        };
        if will_read.is_empty() || ahead.is_some() {
            return;
        }
        let direct = file.direct_blocks();
        // 200k ranges (100k goroutines' g and stack) looked up in the
        // index took 18 ms on one CPU: on every CPU.
        let plan_one = |&(a, n): &(u64, usize)| {
            let s = self.index[self.find(a, a.checked_add(n as u64)?)?];
            let at = s.offset + (a - s.addr);
            Some(Planned {
                addr: a,
                len: n as u64,
                file_offset: SpillFile::direct_offset(&direct, at, n as u64)?,
            })
        };
        let threads = crate::ordered::threads_for(will_read.len(), PLAN_PARALLEL_MIN);
        let planned = crate::ordered::fill_in_parts(will_read, threads, |part, slots| {
            for (r, slot) in part.iter().zip(slots) {
                *slot = Some(plan_one(r));
            }
        });
        let planned: Vec<Planned> = planned.into_iter().flatten().collect();
        let started = reopen_direct(file.file()).and_then(|f| ReadAhead::start(f, &planned));
        if let Store::Spill { ahead, .. } = &mut self.store {
            *ahead = started;
        }
    }

    /// Whether the bytes are in a temporary file rather than in memory.
    pub fn is_spilled(&self) -> bool {
        matches!(self.store, Store::Spill { .. })
    }

    /// Why bytes that were read could not be kept (the spill file's first
    /// failed write); those ranges read as faults.
    pub fn spill_error(&self) -> Option<&io::Error> {
        self.spill_error.as_ref()
    }

    /// A reader for one thread: as [`Memory::read`] on the capture, but
    /// with its own cache (no lock), for decoding on many threads.
    pub fn reader(&self) -> CaptureReader<'_> {
        CaptureReader::new(self)
    }

    /// Bytes the arena holds room for (what [`Self::with_capacity`] faulted in).
    #[cfg(test)]
    pub(crate) fn reserved(&self) -> usize {
        match &self.store {
            Store::Ram(arena) => arena.capacity(),
            Store::Spill { .. } | Store::Through { .. } => 0,
        }
    }

    /// The captured ranges' addresses in the order their bytes are stored.
    #[cfg(test)]
    pub(crate) fn stored_order(&self) -> Vec<u64> {
        let mut v: Vec<&Span> = self.index.iter().collect();
        v.sort_by_key(|s| s.offset);
        v.iter().map(|s| s.addr).collect()
    }

    /// Records `bytes` as the contents at `addr`.
    pub fn insert(&mut self, addr: u64, bytes: &[u8]) {
        if let Some(offset) = self.append(bytes) {
            self.push_span(addr, bytes.len(), offset);
            self.sort();
        }
    }

    /// Reads every `(addr, len)` range from `mem` in batches straight into
    /// the store, and returns whether each range could be read.
    /// (The live backend's `read_batch` merges neighbouring ranges and
    /// spreads large batches over threads.)
    pub fn read_from(&mut self, mem: &dyn Memory, ranges: &[(u64, usize)]) -> Vec<bool> {
        self.read_from_seen(mem, ranges, &mut |_, _| {})
    }

    /// [`Self::read_from`], telling `seen` the address and bytes of each
    /// range read, as read: a caller that looks at what it copied needs no
    /// second pass over a spilled store (which would decompress it all).
    /// A pass-through capture ([`Self::through`]) reads from its source,
    /// which must be `mem`; where that knows what it holds
    /// ([`Memory::holds`]), it reads nothing and tells `seen` nothing.
    pub fn read_from_seen(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        self.read_from_telling(mem, ranges, seen, false)
    }

    /// [`Self::read_from_seen`] for a caller that looks at every byte it
    /// is told: a capture that copies nothing ([`Self::through`]) reads
    /// them all the same, to tell them. A million `g`s read back one by one
    /// through a core's map were a second of `goat why`'s capture, waiting
    /// on the disk a few pages at a time; read in runs, they come at the
    /// disk's streaming rate.
    pub fn read_from_told(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        self.read_from_telling(mem, ranges, seen, true)
    }

    fn read_from_telling(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
        always_tell: bool,
    ) -> Vec<bool> {
        let limit = self.batch_limit();
        let total = ranges.iter().fold(0usize, |t, r| t.saturating_add(r.1));
        let ok = if self.is_spilled() && total > limit {
            self.read_pipelined(mem, ranges, seen)
        } else {
            let mut ok = Vec::with_capacity(ranges.len());
            for batch in batches(ranges, limit) {
                ok.extend(self.read_batch_into(mem, batch, seen, always_tell));
            }
            ok
        };
        self.sort();
        ok
    }

    /// Reads every `(addr, len)` range from `mem` again, for a copy made
    /// while the target ran and brought up to date in a final stop: where
    /// captured ranges overlap it, their bytes are replaced in place; a
    /// range no single captured range covers is also added as a new one.
    /// A range that cannot be read is removed from every captured range it
    /// overlaps, so it reads as a fault afterwards, never as its old bytes.
    /// Returns whether each range could be read.
    pub fn rewrite_from(&mut self, mem: &dyn Memory, ranges: &[(u64, usize)]) -> Vec<bool> {
        let mut ok = Vec::with_capacity(ranges.len());
        let mut added = Vec::new();
        let mut scratch = Vec::new();
        for batch in batches(ranges, STAGING_BYTES) {
            let total: usize = batch.iter().map(|r| r.1).sum();
            scratch.clear();
            scratch.resize(total, 0);
            let results = read_into(mem, batch, &mut scratch);
            let mut at = 0;
            for (&(addr, n), res) in batch.iter().zip(results) {
                let bytes = &scratch[at..at + n];
                at += n;
                let good = res && self.replace(addr, bytes, &mut added);
                if !good {
                    self.forget(addr, n as u64);
                }
                ok.push(good);
            }
        }
        // Ranges rewritten in place leave the index as it was: sorting a
        // million spans that are in order already took a millisecond of
        // the final stop.
        if !added.is_empty() {
            self.index.extend(added);
            self.sort();
        }
        if let Store::Spill { cache, .. } = &mut self.store {
            cache.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        }
        ok
    }

    /// Keeps exactly `ranges` of what is held, as a copy that read only
    /// them would hold them: reads outside them fail afterwards, as they
    /// would there. Bytes are not moved (each range points into the span
    /// that holds it), except for a range that lies across several
    /// adjacent spans, which is put together once. Returns whether each
    /// range was held.
    pub fn restrict_to(&mut self, ranges: &[(u64, usize)]) -> Vec<bool> {
        let mut index = Vec::with_capacity(ranges.len());
        let mut joined = Vec::new();
        let ok = ranges
            .iter()
            .map(|&(addr, n)| {
                let Some(end) = addr.checked_add(n as u64) else {
                    return false;
                };
                if n == 0 {
                    return true;
                }
                if let Some(i) = self.find(addr, end) {
                    let s = self.index[i];
                    index.push(Span {
                        addr,
                        len: n as u64,
                        offset: s.offset + (addr - s.addr),
                    });
                    return true;
                }
                let mut buf = vec![0u8; n];
                let whole = self.read_pieced(addr, &mut buf);
                if whole {
                    joined.push((addr, buf));
                }
                whole
            })
            .collect();
        self.longest = index.iter().map(|s| s.len).max().unwrap_or(0);
        self.index = index;
        for (addr, bytes) in joined {
            if let Some(offset) = self.append(&bytes) {
                self.push_span(addr, bytes.len(), offset);
            }
        }
        self.sort();
        if let Store::Spill { cache, .. } = &mut self.store {
            cache.get_mut().unwrap_or_else(|e| e.into_inner()).clear();
        }
        ok
    }

    /// Reads `[addr, addr + buf.len())` from spans that together hold all
    /// of it (a stack copied in two parts); whether they did.
    fn read_pieced(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        let mut hit = self.overlapping(addr, end);
        hit.sort_by_key(|&i| self.index[i].addr);
        let mut at = addr;
        for i in hit {
            let s = self.index[i];
            if s.addr > at {
                return false;
            }
            if s.end() <= at {
                continue;
            }
            let upto = s.end().min(end);
            let piece = &mut buf[(at - addr) as usize..(upto - addr) as usize];
            if self.copy_out(i, at, piece, None).is_err() {
                return false;
            }
            at = upto;
            if at == end {
                return true;
            }
        }
        at == end
    }

    /// Total bytes held.
    pub fn len_bytes(&self) -> usize {
        self.index.iter().map(|s| s.len as usize).sum()
    }

    /// Writes `bytes` (the contents at `addr`) over every captured range
    /// they overlap; when none covers them whole, also appends them as a
    /// new span (into `added`, sorted in later). False if the store failed.
    fn replace(&mut self, addr: u64, bytes: &[u8], added: &mut Vec<Span>) -> bool {
        let Some(end) = addr.checked_add(bytes.len() as u64) else {
            return false;
        };
        let mut covered = false;
        for i in self.overlapping(addr, end) {
            let s = self.index[i];
            let lo = addr.max(s.addr);
            let hi = end.min(s.end());
            let src = &bytes[(lo - addr) as usize..(hi - addr) as usize];
            if !self.overwrite(s.offset + (lo - s.addr), src) {
                return false;
            }
            covered |= s.addr <= addr && end <= s.end();
        }
        if !covered && !bytes.is_empty() {
            let Some(offset) = self.append(bytes) else {
                return false;
            };
            self.longest = self.longest.max(bytes.len() as u64);
            added.push(Span {
                addr,
                len: bytes.len() as u64,
                offset,
            });
        }
        true
    }

    /// Cuts `[addr, addr + len)` out of every span that overlaps it.
    fn forget(&mut self, addr: u64, len: u64) {
        let end = addr.saturating_add(len);
        let hit = self.overlapping(addr, end);
        if hit.is_empty() {
            return;
        }
        let mut pieces = Vec::new();
        for &i in &hit {
            let s = self.index[i];
            if s.addr < addr {
                pieces.push(Span {
                    len: addr - s.addr,
                    ..s
                });
            }
            if end < s.end() {
                pieces.push(Span {
                    addr: end,
                    len: s.end() - end,
                    offset: s.offset + (end - s.addr),
                });
            }
        }
        // `hit` is in descending order: removing from the back first keeps
        // the other indices valid.
        for i in hit {
            self.index.remove(i);
        }
        self.index.extend(pieces);
        self.sort();
    }

    /// Indices (descending) of the spans that overlap `[addr, end)`.
    fn overlapping(&self, addr: u64, end: u64) -> Vec<usize> {
        let below = self.index.partition_point(|s| s.addr < end);
        let reach = addr.saturating_sub(self.longest);
        (0..below)
            .rev()
            .take_while(|&i| self.index[i].addr >= reach)
            .filter(|&i| self.index[i].end() > addr)
            .collect()
    }

    /// How many bytes one batch reads at most before they are stored.
    fn batch_limit(&self) -> usize {
        match self.store {
            Store::Ram(_) => usize::MAX,
            Store::Spill { .. } | Store::Through { .. } => STAGING_BYTES,
        }
    }

    /// Reads `batch` into the store (the arena, or the staging buffer then,
    /// compressed, the file) and indexes what was readable.
    fn read_batch_into(
        &mut self,
        mem: &dyn Memory,
        batch: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
        always_tell: bool,
    ) -> Vec<bool> {
        let total: usize = batch.iter().map(|r| r.1).sum();
        let (base, ok) = match &mut self.store {
            Store::Ram(arena) => {
                let base = arena.len();
                arena.resize(base + total, 0);
                let ok = read_into(mem, batch, &mut arena[base..]);
                tell(batch, &ok, &arena[base..], seen);
                (base as u64, ok)
            }
            Store::Spill { file, .. } => {
                if file.staging.len() < total {
                    file.staging.resize(total, 0);
                }
                let mut staging = std::mem::take(&mut file.staging);
                let ok = read_into(mem, batch, &mut staging[..total]);
                tell(batch, &ok, &staging, seen);
                file.staging = staging;
                match file.append_staged(total) {
                    Ok(base) => (base, ok),
                    Err(e) => {
                        self.spill_error.get_or_insert(e);
                        return vec![false; batch.len()];
                    }
                }
            }
            Store::Through {
                source, staging, ..
            } => {
                // Nothing to copy where the source knows what it holds:
                // the ranges are only indexed, and `seen` told nothing
                // (its caller reads what it needs back, see `Fetch`),
                // unless it asked to be told.
                let held: Option<Vec<bool>> = match always_tell {
                    true => None,
                    false => batch.iter().map(|&(a, n)| source.holds(a, n)).collect(),
                };
                let ok = held.unwrap_or_else(|| {
                    staging.clear();
                    staging.resize(total, 0);
                    let ok = read_into_together(source.as_ref(), batch, staging);
                    tell(batch, &ok, staging, seen);
                    ok
                });
                // Each range's offset is its own address (see copy_out).
                for (&(addr, n), &good) in batch.iter().zip(&ok) {
                    if good {
                        self.push_span(addr, n, addr);
                    }
                }
                return ok;
            }
        };
        let mut offset = base;
        for (&(addr, n), &good) in batch.iter().zip(&ok) {
            if good {
                self.push_span(addr, n, offset);
            }
            offset += n as u64;
        }
        ok
    }

    /// Stores `bytes` after everything else; their offset, or `None` when
    /// the spill file could not be written.
    fn append(&mut self, bytes: &[u8]) -> Option<u64> {
        match &mut self.store {
            Store::Ram(arena) => {
                let at = arena.len() as u64;
                arena.extend_from_slice(bytes);
                Some(at)
            }
            Store::Spill { file, .. } => match file.append(bytes) {
                Ok(at) => Some(at),
                Err(e) => {
                    self.spill_error.get_or_insert(e);
                    None
                }
            },
            // Holds only what its source holds: bytes from elsewhere
            // (never given to one) are not kept, so they read as faults.
            Store::Through { .. } => None,
        }
    }

    /// Replaces stored bytes at `offset` (in a spilled store, as patches
    /// kept in memory, `patched.rs`: the final stop neither compresses nor
    /// writes).
    fn overwrite(&mut self, offset: u64, bytes: &[u8]) -> bool {
        if let Store::Spill { ahead, .. } = &mut self.store {
            // Its windows may hold the bytes replaced.
            *ahead = None;
        }
        match &mut self.store {
            Store::Ram(arena) => {
                let at = offset as usize;
                arena[at..at + bytes.len()].copy_from_slice(bytes);
                true
            }
            Store::Spill { file, .. } => match file.overwrite(offset, bytes) {
                Ok(()) => true,
                Err(e) => {
                    self.spill_error.get_or_insert(e);
                    false
                }
            },
            // Its source does not change (see append).
            Store::Through { .. } => false,
        }
    }

    fn push_span(&mut self, addr: u64, len: usize, offset: u64) {
        // A range past 2^64 (target bytes) was never readable anyway.
        if len > 0 && addr.checked_add(len as u64).is_some() {
            self.longest = self.longest.max(len as u64);
            self.index.push(Span {
                addr,
                len: len as u64,
                offset,
            });
        }
    }

    fn sort(&mut self) {
        // Nearly sorted in practice (each batch is appended in address
        // order), which the stable sort handles in close to linear time.
        self.index.sort_by_key(|s| s.addr);
    }

    /// The index of a span holding all of `[addr, end)`.
    fn find(&self, addr: u64, end: u64) -> Option<usize> {
        let after = self.index.partition_point(|s| s.addr <= addr);
        // Ranges may overlap (a g copied alone and inside a larger run):
        // try the nearest few that start at or below addr.
        (after.saturating_sub(8)..after)
            .rev()
            .find(|&i| end <= self.index[i].end())
    }

    /// Copies the bytes at `addr` out of span `i`, which holds them all.
    fn copy_out(
        &self,
        i: usize,
        addr: u64,
        buf: &mut [u8],
        cache: Option<&mut BlockCache>,
    ) -> Result<(), ReadFault> {
        let s = self.index[i];
        let from = s.offset + (addr - s.addr);
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let mut cache = cache;
        if let Store::Spill { ahead: Some(a), .. } = &self.store {
            let served = match cache.as_deref_mut() {
                Some(c) => a.read_near(addr, buf, &mut c.ahead_hint),
                None => a.read(addr, buf),
            };
            if served {
                return Ok(());
            }
        }
        match (&self.store, cache) {
            (Store::Ram(arena), _) => {
                let from = from as usize;
                buf.copy_from_slice(&arena[from..from + buf.len()]);
                Ok(())
            }
            (Store::Spill { file, .. }, Some(cache)) => {
                cache.read(file, from, buf).map_err(|_| fault)
            }
            (Store::Spill { file, cache, .. }, None) => {
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                cache.read(file, from, buf).map_err(|_| fault)
            }
            (Store::Through { source, ahead, .. }, _) => match ahead {
                Some(a) if a.read(from, buf) => Ok(()),
                _ => source.read(from, buf),
            },
        }
    }
}

impl Memory for CapturedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let end = addr.checked_add(buf.len() as u64).ok_or(fault)?;
        let i = self.find(addr, end).ok_or(fault)?;
        self.copy_out(i, addr, buf, None)
    }
}

/// `ranges` cut into runs of at most `limit` bytes (a range longer than
/// that is a run of its own).
fn batches(ranges: &[(u64, usize)], limit: usize) -> impl Iterator<Item = &[(u64, usize)]> {
    let mut rest = ranges;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut total = 0usize;
        let n = rest
            .iter()
            .take_while(|r| {
                total = total.saturating_add(r.1);
                total <= limit
            })
            .count()
            .max(1);
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

/// Tells `seen` each range of `batch` that was read (`ok`), with its bytes
/// from `buf`, where [`read_into`] put them.
fn tell(batch: &[(u64, usize)], ok: &[bool], buf: &[u8], seen: &mut dyn FnMut(u64, &[u8])) {
    let mut at = 0usize;
    for (&(addr, n), &good) in batch.iter().zip(ok) {
        let end = at.saturating_add(n);
        if let (true, Some(bytes)) = (good, buf.get(at..end)) {
            seen(addr, bytes);
        }
        at = end;
    }
}

/// Readers [`read_into_together`] runs at once: a core's reads are
/// mostly waits on the disk, and four in flight kept `goat why`'s capture
/// near the disk's streaming rate where one at a time was a third of it.
const READERS_TOGETHER: usize = 4;

/// Consecutive ranges and the part of the buffer their bytes go to.
type Part<'b> = (&'b [(u64, usize)], &'b mut [u8]);

/// Bytes below which [`read_into_together`] reads on this thread alone:
/// four threads started for a few `g`s would cost more than the reads.
const TOGETHER_MIN: usize = 1 << 20;

/// [`read_into`] on [`READERS_TOGETHER`] threads, each reading a run of
/// consecutive ranges of about the same total length (from
/// [`TOGETHER_MIN`] bytes).
fn read_into_together(
    mem: &(dyn Memory + Send + Sync),
    ranges: &[(u64, usize)],
    buf: &mut [u8],
) -> Vec<bool> {
    let total = buf.len();
    if total < TOGETHER_MIN {
        return read_into(mem, ranges, buf);
    }
    let share = total.div_ceil(READERS_TOGETHER).max(1);
    // Cut `ranges` (and `buf` with them) where a share's bytes are full.
    let mut parts: Vec<Part<'_>> = Vec::new();
    let (mut rest_ranges, mut rest_buf) = (ranges, buf);
    while !rest_ranges.is_empty() {
        let mut take = 0;
        let mut bytes = 0usize;
        while take < rest_ranges.len() && (take == 0 || bytes < share) {
            bytes = bytes.saturating_add(rest_ranges[take].1);
            take += 1;
        }
        let (here, later) = rest_ranges.split_at(take);
        let whole = std::mem::take(&mut rest_buf);
        let (head, tail) = whole.split_at_mut(bytes.min(whole.len()));
        parts.push((here, head));
        (rest_ranges, rest_buf) = (later, tail);
    }
    if parts.len() <= 1 {
        return parts
            .pop()
            .map_or_else(Vec::new, |(r, b)| read_into(mem, r, b));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(r, b)| (r.len(), s.spawn(move || read_into(mem, r, b))))
            .collect();
        handles
            .into_iter()
            // A reader that panicked read nothing that can be trusted.
            .flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![false; n]))
            .collect()
    })
}

/// Reads `ranges` from `mem` into consecutive pieces of `buf` (exactly
/// their total length) in one batch; whether each could be read.
fn read_into(mem: &dyn Memory, ranges: &[(u64, usize)], buf: &mut [u8]) -> Vec<bool> {
    let mut rest = buf;
    let mut reqs = Vec::with_capacity(ranges.len());
    for &(addr, n) in ranges {
        let (head, tail) = rest.split_at_mut(n);
        reqs.push((addr, head));
        rest = tail;
    }
    mem.read_batch(&mut reqs)
        .iter()
        .map(Result::is_ok)
        .collect()
}
