//! The one required memory operation and the typed helpers built on it.

use thiserror::Error;

/// A read of target memory that could not be satisfied in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("cannot read {len} bytes of target memory at {addr:#x}")]
pub struct ReadFault {
    pub addr: u64,
    pub len: usize,
}

/// Target memory: one required method, `read`, which fills the whole buffer or fails.
pub trait Memory {
    /// Reads exactly `buf.len()` bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault>;

    /// The little-endian word at `addr` (`MemoryExt::read_u64`). A backend
    /// that holds the bytes in one slice answers without a copy through
    /// `read`: unwinding and argument printing read a stack a word at a
    /// time, tens of millions of words in a large dump.
    fn read_word(&self, addr: u64) -> Result<u64, ReadFault> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Many reads at once. Backends override this to batch (a live process
    /// turns it into a few `process_vm_readv` calls); results are in order.
    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        reqs.iter_mut()
            .map(|(addr, buf)| self.read(*addr, buf))
            .collect()
    }

    /// No read comes for a while (an analysis computes over what it
    /// read): a backend holding pages it can read again gives them back.
    /// Nothing by default.
    fn pause_reads(&self) {}

    /// No read is expected any more (an analysis has read all it needs):
    /// a backend may give back what it holds, in the background. A read
    /// that comes anyway is still answered, only more slowly. Nothing by
    /// default.
    fn done_reading(&self) {}

    /// Whether a read of `len` bytes at `addr` would succeed, known
    /// without reading (a core knows from its segments); `None` when only
    /// a read can tell.
    fn holds(&self, _addr: u64, _len: usize) -> Option<bool> {
        None
    }

    /// Reads of `ranges` will come, in about this order (a decode's
    /// stacks): a backend that can fetch them ahead of the reads (goat's
    /// own copy of a process, on disk) starts doing so and returns what
    /// serves them. `None` by default: reads come as they are asked.
    fn read_ahead(&self, _ranges: &[(u64, usize)]) -> Option<super::readahead::ReadAhead> {
        None
    }

    /// What is read from here on lies mostly in `ranges` (`[start, end)`,
    /// the heap's spans), read at random: a backend that reads from disk
    /// may fetch them now, in the background, and read little else
    /// around a miss. Nothing by default.
    fn prefetch(&self, _ranges: &[(u64, u64)]) {}
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        (**self).read(addr, buf)
    }
    fn read_word(&self, addr: u64) -> Result<u64, ReadFault> {
        (**self).read_word(addr)
    }
    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        (**self).read_batch(reqs)
    }
    fn pause_reads(&self) {
        (**self).pause_reads()
    }
    fn done_reading(&self) {
        (**self).done_reading()
    }
    fn holds(&self, addr: u64, len: usize) -> Option<bool> {
        (**self).holds(addr, len)
    }
    fn read_ahead(&self, ranges: &[(u64, usize)]) -> Option<super::readahead::ReadAhead> {
        (**self).read_ahead(ranges)
    }
    fn prefetch(&self, ranges: &[(u64, u64)]) {
        (**self).prefetch(ranges)
    }
}

/// Typed little-endian helpers over [`Memory`] (x86-64 only).
pub trait MemoryExt: Memory {
    fn read_u64(&self, addr: u64) -> Result<u64, ReadFault> {
        self.read_word(addr)
    }
    fn read_u32(&self, addr: u64) -> Result<u32, ReadFault> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, ReadFault> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
    /// Reads a Go `string` header at `addr` and its bytes, at most `max` of them.
    fn read_go_string(&self, addr: u64, max: usize) -> Result<String, ReadFault> {
        let ptr = self.read_u64(addr)?;
        let len_at = addr.checked_add(8).ok_or(ReadFault { addr, len: 16 })?;
        let len = self.read_u64(len_at)?;
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(max);
        let bytes = self.read_vec(ptr, take)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl<M: Memory + ?Sized> MemoryExt for M {}

/// Memory that cannot be read at all, for tests of what reads none.
#[cfg(test)]
pub(crate) struct Unreadable;

#[cfg(test)]
impl Memory for Unreadable {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        Err(ReadFault {
            addr,
            len: buf.len(),
        })
    }
}
