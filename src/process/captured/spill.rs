//! A capture's bytes in an unlinked temporary file instead of goat's heap:
//! at a million goroutines the copy is 1.7 GB, which must not become goat's
//! RSS on a box already short of memory. Written in large batches with
//! `pwrite`, read back with `pread` through a small block cache per reader.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes staged in memory before one `pwrite`: large enough that the
/// syscalls cost nothing next to the copy, small enough to stay out of RSS.
pub(super) const STAGING_BYTES: usize = 4 << 20;
/// The cache's granule. A goroutine's stack (about a KiB used) and its `g`
/// sit in a block or two; decoding goroutines in `allgs` order reads the
/// file nearly front to back, so a block serves several goroutines.
pub(super) const BLOCK: usize = 16 << 10;
/// Blocks one reader keeps (1 MiB): the stacks region and the `g` region
/// are read at two moving places, plus a few hot blocks (the `m`s).
const CACHED_BLOCKS: usize = 64;

/// Where spilled captures go: `$TMPDIR`, else `/var/tmp` (on disk on most
/// systems, where `/tmp` is often memory), else the system's temporary
/// directory.
pub fn temporary_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ if Path::new("/var/tmp").is_dir() => PathBuf::from("/var/tmp"),
        _ => std::env::temp_dir(),
    }
}

/// The file: unlinked from its creation (`O_TMPFILE` where the filesystem
/// has it), so it vanishes with goat however goat ends.
#[derive(Debug)]
pub(super) struct SpillFile {
    file: File,
    /// Bytes written so far; the next append goes here.
    len: u64,
    /// Where batches are read into before their `pwrite` (reused).
    pub(super) staging: Vec<u8>,
}

impl SpillFile {
    pub(super) fn create_in(dir: &Path) -> io::Result<SpillFile> {
        Ok(SpillFile {
            file: tempfile::tempfile_in(dir)?,
            len: 0,
            staging: Vec::new(),
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Appends the first `n` staged bytes; returns their offset.
    pub(super) fn append_staged(&mut self, n: usize) -> io::Result<u64> {
        let at = self.len;
        self.file.write_all_at(&self.staging[..n], at)?;
        self.len += n as u64;
        Ok(at)
    }

    /// Appends `bytes`; returns their offset.
    pub(super) fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let at = self.len;
        self.file.write_all_at(bytes, at)?;
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Sets aside the next `n` bytes of the file, to be written with
    /// [`Self::overwrite`] (from another thread, say); their offset.
    pub(super) fn claim(&mut self, n: u64) -> u64 {
        let at = self.len;
        self.len += n;
        at
    }

    /// Replaces bytes already written at `at`.
    pub(super) fn overwrite(&self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, at)
    }

    /// Reads `buf.len()` bytes at `at`, uncached.
    pub(super) fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, at)
    }
}

/// A few recently read blocks of a [`SpillFile`]. Not shared: each decoding
/// thread has its own, so reads take no lock.
#[derive(Debug, Default)]
pub(super) struct BlockCache {
    /// (block number, bytes); a block at the file's end may be short.
    blocks: Vec<(u64, Vec<u8>)>,
    /// The slot the next miss replaces (round robin: the access pattern is
    /// two sequential sweeps, for which it does as well as LRU).
    next: usize,
    /// The slot of the last hit, tried first.
    last: usize,
}

impl BlockCache {
    /// Copies `buf.len()` bytes at file offset `at` into `buf`.
    pub(super) fn read(&mut self, file: &SpillFile, at: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > BLOCK {
            return file.read_at(at, buf);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = at + done as u64;
            let slot = self.slot(file, pos / BLOCK as u64)?;
            let block = &self.blocks[slot].1;
            let from = (pos % BLOCK as u64) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(from));
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(())
    }

    /// The slot holding block `no`, read in on a miss.
    fn slot(&mut self, file: &SpillFile, no: u64) -> io::Result<usize> {
        if self.blocks.get(self.last).is_some_and(|b| b.0 == no) {
            return Ok(self.last);
        }
        if let Some(i) = self.blocks.iter().position(|b| b.0 == no) {
            self.last = i;
            return Ok(i);
        }
        let start = no * BLOCK as u64;
        let len = (file.len().saturating_sub(start) as usize).min(BLOCK);
        let slot = if self.blocks.len() < CACHED_BLOCKS {
            self.blocks.push((no, Vec::new()));
            self.blocks.len() - 1
        } else {
            let s = self.next;
            self.next = (self.next + 1) % CACHED_BLOCKS;
            s
        };
        let entry = &mut self.blocks[slot];
        entry.0 = u64::MAX;
        entry.1.resize(len, 0);
        file.read_at(start, &mut entry.1)?;
        entry.0 = no;
        self.last = slot;
        Ok(slot)
    }

    pub(super) fn clear(&mut self) {
        self.blocks.clear();
        self.next = 0;
        self.last = 0;
    }
}
