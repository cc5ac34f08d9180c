//! A spilled copy kept raw and written with `O_DIRECT`, for a copy small
//! enough that its disk space does not matter (`goat stacks` on up to a
//! few hundred thousand goroutines).
//!
//! Why: compressing the copy and decompressing it again was a third of
//! the CPU `goat stacks` spent at 100k goroutines (lz4 over 190 MB, twice),
//! on a box with two cores. Kept raw in the page cache instead, the copy
//! cost as much again in the kernel: every page a fresh page frame, which
//! on a VM whose host takes back the guest's free memory costs 2.4-10 µs
//! at its first touch, and at random (wall 0.6-1.3 s over four runs).
//! Written with `O_DIRECT` from a few reused buffers, the bytes touch no
//! new page frame; the disk takes them at over 1 GB/s while the copy goes
//! on, and they come back ahead of the decode through the same kind of
//! read-ahead a live copy's stacks use (`readahead.rs`).
//!
//! The file's layout is the logical space itself: block `k` sits at file
//! offset `k * BLOCK` ([`identity_frames`]), so a range's file offset is
//! its logical offset, and a batch is one aligned write.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use super::frames::{Frame, Packer, BLOCK};
use crate::direct_io::reopen_direct;
pub(super) use crate::direct_io::{AlignedBuf, ALIGN};

/// `file`, opened again for writing with `O_DIRECT`; `None` where its
/// file system keeps files in memory (a raw copy there costs RAM, four
/// times what the compressed one does) or has no direct I/O.
pub(super) fn open_direct_writer(file: &File) -> Option<File> {
    let direct = reopen_direct(file)?;
    // Some file systems take the flag and refuse the writes: one page
    // written and cut off again says before the copy starts.
    let mut page = AlignedBuf::default();
    page.ensure(ALIGN);
    direct.write_all_at(page.bytes(), 0).ok()?;
    file.set_len(0).ok()?;
    Some(direct)
}

/// Raw bytes written before the disk's speed is judged.
const JUDGED_AFTER: u64 = 8 << 20;
/// A disk slower than this makes a raw copy wait on it longer than
/// compressing the copy takes (lz4 on this data: about 750 MB/s a core),
/// and reading it back longer than decompressing.
const RAW_MIN_BYTES_PER_SEC: u64 = 500 << 20;

/// Whether `bytes` written raw in `took` show a disk too slow for a raw
/// copy (judged once [`JUDGED_AFTER`] bytes went).
pub(super) fn disk_too_slow(bytes: u64, took: Duration) -> bool {
    bytes >= JUDGED_AFTER && (bytes as f64) < RAW_MIN_BYTES_PER_SEC as f64 * took.as_secs_f64()
}

/// How a raw file's batches are written: raw with `O_DIRECT` while the
/// disk keeps up, compressed through the page cache once it has not (a
/// network disk, or one shared with a busy neighbour). The page cache
/// takes a compressed batch without waiting for the disk at all, which is
/// why the compressed store never waits on it.
#[derive(Debug, Default)]
pub(super) struct BatchWriter {
    raw_bytes: u64,
    raw_time: Duration,
    compressing: bool,
    packer: Packer,
}

impl BatchWriter {
    /// Writes the first `n` bytes of `buf` at logical offset `at` (a
    /// block boundary), every block at its own logical offset in the
    /// file: raw through `direct`, or compressed through `file`. Returns
    /// the frames and the file's end after them.
    pub(super) fn write(
        &mut self,
        direct: &File,
        file: &File,
        buf: &AlignedBuf,
        n: usize,
        at: u64,
    ) -> io::Result<(Vec<Frame>, u64)> {
        if !self.compressing {
            let started = Instant::now();
            let written = write_batch(direct, buf, n, at);
            self.raw_time += started.elapsed();
            self.raw_bytes = self.raw_bytes.saturating_add(n as u64);
            self.compressing = disk_too_slow(self.raw_bytes, self.raw_time);
            match written {
                Ok(w) => return Ok(w),
                // A file system that took the first page and refuses a
                // later write (or a disk error): the page cache may not.
                Err(_) => self.compressing = true,
            }
        }
        let bytes = buf
            .bytes()
            .get(..n)
            .ok_or_else(|| io::Error::other("a staging buffer shorter than its batch"))?;
        self.packer.push_blocks(bytes);
        self.packer.write_each_at(file, at, BLOCK as u64)
    }

    /// Compresses every later batch, as if the disk had fallen behind.
    #[cfg(test)]
    pub(super) fn compress_from_now(&mut self) {
        self.compressing = true;
    }

    /// Whether it went over to compressing.
    pub(super) fn compressed(&self) -> bool {
        self.compressing
    }
}

/// Writes the first `n` bytes of `buf` at logical (and file) offset `at`,
/// a multiple of [`BLOCK`], in one `O_DIRECT` write of whole pages (the
/// rest of the last page is padding inside the batch's last block, which
/// nothing reads); returns the batch's frames and the file's new end.
pub(super) fn write_batch(
    direct: &File,
    buf: &AlignedBuf,
    n: usize,
    at: u64,
) -> io::Result<(Vec<Frame>, u64)> {
    let padded = n.saturating_add(ALIGN - 1) / ALIGN * ALIGN;
    let bytes = buf
        .bytes()
        .get(..padded)
        .ok_or_else(|| io::Error::other("a staging buffer shorter than its batch"))?;
    direct.write_all_at(bytes, at)?;
    let end = at
        .checked_add(padded as u64)
        .ok_or_else(|| io::Error::other("the spill file would pass 2^64 bytes"))?;
    Ok((identity_frames(at, n), end))
}

/// The frames of `n` raw bytes stored at logical offset `at`, each block
/// at its own logical offset in the file.
pub(super) fn identity_frames(at: u64, n: usize) -> Vec<Frame> {
    (0..n.div_ceil(BLOCK))
        .map(|k| {
            let len = (n - k * BLOCK).min(BLOCK) as u32;
            Frame {
                at: at.saturating_add((k * BLOCK) as u64),
                stored: len,
                len,
            }
        })
        .collect()
}
