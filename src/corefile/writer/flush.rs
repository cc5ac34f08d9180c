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
//! own files out of the page cache on a machine already in trouble.
//!
//! Everything here is a hint: errors are ignored, and the final `fsync`
//! reports any that matter (a full disk, an I/O error).

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Chunks (of `elf::CHUNK` bytes) kept in flight before waiting for the
/// oldest: enough to keep a disk busy, little enough to stay out of the way.
const IN_FLIGHT: usize = 8;

/// Follows the writer through the file.
pub struct Flusher<'f> {
    file: &'f File,
    in_flight: VecDeque<(u64, u64)>,
}

impl<'f> Flusher<'f> {
    pub fn new(file: &'f File) -> Flusher<'f> {
        Flusher {
            file,
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

    /// Waits for the range to be on disk, then drops it from the cache.
    fn settle(&self, offset: u64, len: u64) {
        sync_range(
            self.file,
            offset,
            len,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
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
    /// wait for them anyway) and dropped from the cache like the others.
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
