//! Writing with `O_DIRECT`, for the large files goat writes as it goes:
//! its own copy of a process (`process/captured/direct.rs`) and a dump to
//! a regular file (`outfile/direct.rs`).
//!
//! Why: through the page cache, every page written is a page frame the
//! kernel hands out afresh, and on a VM whose host takes back the guest's
//! free memory that costs 2.4-10 µs at its first touch (the kernel's copy
//! of a 4 GB dump into the page cache was a third of all `goat stacks`'
//! CPU at a million goroutines, and `cat` of the same bytes is as slow).
//! Written from a few page-aligned buffers that goat reuses, the bytes
//! touch no new page frame, and the disk takes them at its own speed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// What an `O_DIRECT` write's buffer address, offset and length are
/// multiples of (a page: at least any disk's logical block).
pub(crate) const ALIGN: usize = 4096;

/// A buffer whose bytes start at a page boundary, as `O_DIRECT` needs: a
/// `Vec` with a page to spare, so that it comes from (and goes back to)
/// goat's heap like the other buffers.
#[derive(Debug, Default)]
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// Room for at least `len` bytes, rounded up to [`ALIGN`].
    pub(crate) fn ensure(&mut self, len: usize) {
        let want = len.saturating_add(ALIGN - 1) / ALIGN * ALIGN;
        if self.len >= want {
            return;
        }
        self.raw = vec![0u8; want.saturating_add(ALIGN)];
        self.start = self.raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        self.len = want;
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A buffer to fill next, where a thread fills buffers and another
/// writes them and gives them back: a spare one, a new one while fewer
/// than `most` were made, else the next one given back; `None` when the
/// writing thread is gone (it gives every buffer back unless it died, and
/// then the filler's next send fails too).
pub(crate) fn next_buffer<B: Default>(
    spare: &mut Vec<B>,
    made: &mut usize,
    most: usize,
    given_back: &crossbeam_channel::Receiver<B>,
) -> Option<B> {
    match spare.pop() {
        Some(b) => Some(b),
        None if *made < most => {
            *made += 1;
            Some(B::default())
        }
        None => given_back.recv().ok(),
    }
}

/// `file`, opened again for writing with `O_DIRECT` (through
/// `/proc/self/fd`, which reaches an unlinked file too), without
/// truncating it; `None` where its file system keeps files in memory
/// (tmpfs, ramfs: no disk to go to directly) or the open fails. Some file
/// systems take the flag and refuse the writes: the caller finds out at
/// its first write.
pub(crate) fn reopen_direct(file: &File) -> Option<File> {
    use nix::sys::statfs::{fstatfs, FsType, TMPFS_MAGIC};
    // ramfs's magic, which nix does not name (linux/magic.h).
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    let kind = fstatfs(file).ok()?.filesystem_type();
    if kind == TMPFS_MAGIC || kind == RAMFS_MAGIC {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}
