//! Writing a core back to disk while it is being written, not all at the end.
//!
//! The kernel starts writing dirty pages back only past
//! `dirty_background_ratio` of memory (gigabytes on a big machine), so a
//! core written with plain `write`s sits in the page cache until the final
//! `fsync`, which then waits for the whole disk transfer: copy time plus
//! disk time. Starting the writeback of each chunk as soon as it is written
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`) overlaps the two. Once a chunk
//! a few chunks back is on disk, its pages are dropped from the cache
//! (`POSIX_FADV_DONTNEED`): a multi-GiB core must not push the service's
//! own files out of the page cache on a machine already in trouble. A copy
//! that is read back at once (`goat why`, `goat heap`) keeps its pages,
//! clean: dropped, every one of them would be read from the disk again.
//!
//! Everything here is a hint: errors are ignored, and the final `fsync`
//! reports any that matter (a full disk, an I/O error).

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Chunks (of `elf::CHUNK` bytes) kept in flight before waiting for the
/// oldest: enough to keep a disk busy, little enough to stay out of the way.
const IN_FLIGHT: usize = 8;

/// What becomes of a core's pages once they are on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AfterWrite {
    /// Dropped from the page cache: a user's core, kept for later.
    #[default]
    Uncache,
    /// Left in the page cache: a copy read back as soon as it is written.
    /// Written back all the same, so that they are clean (the kernel can
    /// take them whenever it needs memory) and the writer is never held
    /// back by the kernel's limit on dirty pages, which, with gigabytes
    /// left dirty, made a million goroutines' copy take 8 s, not 3 s.
    KeepCached,
}

/// Follows the writer through the file.
pub struct Flusher<'f> {
    file: &'f File,
    after: AfterWrite,
    in_flight: VecDeque<(u64, u64)>,
}

impl<'f> Flusher<'f> {
    pub fn new(file: &'f File, after: AfterWrite) -> Flusher<'f> {
        Flusher {
            file,
            after,
            in_flight: VecDeque::new(),
        }
    }

    /// `len` bytes at `offset` were just written.
    pub fn written(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        sync_range(self.file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
        self.in_flight.push_back((offset, len));
        while self.in_flight.len() > IN_FLIGHT {
            if let Some((off, len)) = self.in_flight.pop_front() {
                self.settle(off, len);
            }
        }
    }

    /// Waits for the range to be on disk, then drops it from the cache
    /// unless it is to be kept.
    fn settle(&self, offset: u64, len: u64) {
        sync_range(
            self.file,
            offset,
            len,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
        if self.after == AfterWrite::KeepCached {
            return;
        }
        let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a hint on a valid descriptor; no memory is passed.
        unsafe {
            libc::posix_fadvise(self.file.as_raw_fd(), off, n, libc::POSIX_FADV_DONTNEED);
        }
    }
}

impl Drop for Flusher<'_> {
    /// The chunks still in flight are waited for (the final `fsync` would
    /// wait for them anyway) and settled like the others.
    fn drop(&mut self) {
        while let Some((off, len)) = self.in_flight.pop_front() {
            self.settle(off, len);
        }
    }
}

fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) {
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a request about a valid descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), off, n, flags);
    }
}
