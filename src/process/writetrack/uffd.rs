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
    /// Bytes one write-protect or unregister call covers ([`PIECE`]).
    piece: u64,
}

/// Bytes of the target's memory one write-protect or unregister call
/// covers. The kernel walks the range's page tables in one go under the
/// target's mmap lock (unregistering, for writing: the target's page
/// faults and its mmap calls wait): a million goroutines' 1.5 GB heap was
/// 70 ms unregistered in one call, 40 ms protected, each a pause the
/// target's heartbeat saw. 16 MiB is under a millisecond.
const PIECE: u64 = 16 << 20;

/// `[start, end)` in consecutive pieces of at most `piece` bytes.
fn pieces(start: u64, end: u64, piece: u64) -> impl Iterator<Item = (u64, u64)> {
    let piece = piece.max(1);
    let mut at = start;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let from = at;
            at = at.saturating_add(piece).min(end);
            (from, at)
        })
    })
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
            piece: PIECE,
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

    /// Starts tracking writes to the parts of `[start, end)` not tracked
    /// yet, and returns them: a part tracked already keeps the written
    /// state of its pages. A mapping tracked whole can show up again at
    /// another start (Go 1.19 advises huge pages on and off over parts of
    /// its heap, which splits the mapping); protecting such a piece again
    /// would mark as unwritten the pages written since the last scan, and
    /// a copy of them would stay stale with nothing to say so.
    pub fn track_new(&mut self, start: u64, end: u64) -> io::Result<Vec<(u64, u64)>> {
        let parts = self.uncovered(start, end);
        for (i, &(s, e)) in parts.iter().enumerate() {
            if let Err(err) = self.track(s, e) {
                // What was tracked before the failure stays tracked.
                return match i {
                    0 => Err(err),
                    _ => Ok(parts[..i].to_vec()),
                };
            }
        }
        Ok(parts)
    }

    /// The parts of `[start, end)` that no registered range holds, in order.
    fn uncovered(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut held: Vec<(u64, u64)> = self
            .registered
            .iter()
            .copied()
            .filter(|&(s, e)| s < end && e > start)
            .collect();
        held.sort_unstable();
        let mut out = Vec::new();
        let mut at = start;
        for (s, e) in held {
            if s > at {
                out.push((at, s));
            }
            at = at.max(e);
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// Whether the ranges registered here cover all of `[start, end)`
    /// (mappings registered apart may have merged since).
    pub fn covers(&self, start: u64, end: u64) -> bool {
        self.uncovered(start, end).is_empty()
    }

    /// Write-protects `[start, end)` of a range already tracked (a part
    /// that was not copied yet, say after the mapping grew).
    /// A piece at a time ([`PIECE`]).
    pub fn protect(&self, start: u64, end: u64) -> io::Result<()> {
        for (from, to) in pieces(start, end, self.piece) {
            let mut wp = [from, to - from, WRITEPROTECT_MODE_WP];
            ioctl(&self.fd, UFFDIO_WRITEPROTECT, &mut wp)?;
        }
        Ok(())
    }

    /// Ends the tracking: unregistering clears the write protection of every
    /// page (else each would take one more minor fault on its next write).
    /// A piece at a time ([`PIECE`]): each splits the mapping, and the
    /// kernel merges the part done with the one before. A piece the target
    /// unmapped meanwhile is skipped; where splitting is refused (the
    /// target at its limit of mappings) the rest goes in one call.
    pub fn release(self) {
        // The protection is lifted first: that takes the target's mmap
        // lock for reading, so its page faults go on meanwhile. The
        // unregistering after it then changes no page (no TLB flush), and
        // holds the lock for writing only to split and merge the mapping.
        for &(start, end) in &self.registered {
            for (from, to) in pieces(start, end, self.piece) {
                let mut wp = [from, to - from, 0];
                let _ = ioctl(&self.fd, UFFDIO_WRITEPROTECT, &mut wp);
            }
        }
        for &(start, end) in &self.registered {
            for (from, to) in pieces(start, end, self.piece) {
                let mut r = [from, to - from];
                let Err(e) = ioctl(&self.fd, UFFDIO_UNREGISTER, &mut r) else {
                    continue;
                };
                if e.raw_os_error() == Some(libc::ENOMEM) {
                    let mut rest = [from, end - from];
                    let _ = ioctl(&self.fd, UFFDIO_UNREGISTER, &mut rest);
                    break;
                }
            }
        }
    }

    /// Calls of [`Self::protect`] and [`Self::release`] cover `bytes`.
    #[cfg(test)]
    fn set_piece(&mut self, bytes: u64) {
        self.piece = bytes;
    }
}

#[cfg(test)]
#[path = "uffd_tests.rs"]
mod tests;
