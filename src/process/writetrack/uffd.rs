//! Write tracking with a userfaultfd in asynchronous write-protect mode
//! (Linux 6.7+): goat write-protects the target's memory, the kernel
//! lifts the protection of a page on its first write (a minor fault; the
//! target never waits for goat), and `PAGEMAP_SCAN` reports and protects
//! again the pages written since. Closing the descriptor ends it all;
//! [`WriteTracker::release`] also clears the protection first, so no
//! extra faults are left behind.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

const UFFD_API: u64 = 0xaa;
const FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const FEATURE_WP_ASYNC: u64 = 1 << 15;
const REGISTER_MODE_WP: u64 = 1 << 1;
const WRITEPROTECT_MODE_WP: u64 = 1 << 0;

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (0xaa << 8) | nr
}
const fn ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0xaa << 8) | nr
}
const UFFDIO_API: u64 = iowr(0x3f, 24);
const UFFDIO_REGISTER: u64 = iowr(0x00, 32);
const UFFDIO_UNREGISTER: u64 = ior(0x01, 16);
const UFFDIO_WRITEPROTECT: u64 = iowr(0x06, 24);

/// A userfaultfd of the target, handshaken for asynchronous write
/// protection.
pub struct WriteTracker {
    fd: OwnedFd,
    /// Ranges registered so far (to unregister on release).
    registered: Vec<(u64, u64)>,
}

/// The argument size a request's encoding names (its 14 size bits).
const fn request_size(req: u64) -> usize {
    ((req >> 16) & 0x3fff) as usize
}

fn ioctl(fd: &OwnedFd, req: u64, arg: &mut [u64]) -> io::Result<()> {
    // The kernel reads and writes as many bytes as the request's size bits
    // say; an `arg` of any other size would let it past the slice's end.
    if std::mem::size_of_val(arg) != request_size(req) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "userfaultfd request {req:#x} takes {} bytes, given {}",
                request_size(req),
                std::mem::size_of_val(arg)
            ),
        ));
    }
    // SAFETY: every request here takes a struct of u64 fields (no padding,
    // any bit pattern valid), and `arg`, exclusively borrowed for the call,
    // is exactly the size the request's size bits give (checked above): the
    // kernel touches no byte outside it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::c_ulong, arg.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl WriteTracker {
    /// Handshakes `fd` (see `tracer/borrow_fd.rs`); fails when the kernel
    /// lacks asynchronous write protection.
    pub fn new(fd: OwnedFd) -> io::Result<WriteTracker> {
        let want = FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED;
        let mut api = [UFFD_API, want, 0];
        ioctl(&fd, UFFDIO_API, &mut api)?;
        if api[1] & want != want {
            return Err(io::Error::other(
                "the kernel's userfaultfd has no asynchronous write protection (Linux 6.7+)",
            ));
        }
        Ok(WriteTracker {
            fd,
            registered: Vec::new(),
        })
    }

    /// Starts tracking writes to `[start, end)` (whole mappings): registers
    /// the range and write-protects every page of it.
    pub fn track(&mut self, start: u64, end: u64) -> io::Result<()> {
        let mut reg = [start, end - start, REGISTER_MODE_WP, 0];
        ioctl(&self.fd, UFFDIO_REGISTER, &mut reg)?;
        self.registered.push((start, end));
        self.protect(start, end)
    }

    /// Whether the ranges registered here cover all of `[start, end)`
    /// (mappings registered apart may have merged since).
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        // Each pass moves `at` forward or ends the loop.
        for _ in 0..=self.registered.len() {
            match self.registered.iter().find(|&&(s, e)| s <= at && at < e) {
                Some(&(_, e)) if e >= end => return true,
                Some(&(_, e)) => at = e,
                None => return false,
            }
        }
        false
    }

    /// Write-protects `[start, end)` of a range already tracked (a part
    /// that was not copied yet, say after the mapping grew).
    pub fn protect(&self, start: u64, end: u64) -> io::Result<()> {
        let mut wp = [start, end - start, WRITEPROTECT_MODE_WP];
        ioctl(&self.fd, UFFDIO_WRITEPROTECT, &mut wp)
    }

    /// Ends the tracking: unregistering clears the write protection of every
    /// page (else each would take one more minor fault on its next write).
    /// A range the target unmapped meanwhile is skipped.
    pub fn release(self) {
        for &(start, end) in &self.registered {
            let mut r = [start, end - start];
            let _ = ioctl(&self.fd, UFFDIO_UNREGISTER, &mut r);
        }
    }
}

#[cfg(test)]
#[path = "uffd_tests.rs"]
mod tests;
