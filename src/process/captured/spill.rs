//! A capture's bytes in an unlinked temporary file instead of goat's heap:
//! at a million goroutines the copy is 1.7 GB, which must not become goat's
//! RSS on a box already short of memory. Written in large batches with
//! `pwrite`, read back with `pread` through a small block cache per reader
//! (`cache.rs`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes staged in memory before one `pwrite`: large enough that the
/// syscalls cost nothing next to the copy, small enough to stay out of RSS.
pub(super) const STAGING_BYTES: usize = 4 << 20;
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
