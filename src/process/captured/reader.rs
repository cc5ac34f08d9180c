//! One decoding thread's view of a [`CapturedMemory`].

use std::cell::{Cell, RefCell};

use super::cache::BlockCache;
use super::CapturedMemory;
use crate::process::memory::{Memory, ReadFault};

/// Reads a capture like [`Memory::read`] on it, faster for one thread: it
/// tries the range of its last read first (a goroutine's reads mostly fall
/// in its own stack), and keeps its own cache of a spilled capture's
/// blocks, so threads never wait on each other. Not `Sync`: one per thread.
pub struct CaptureReader<'a> {
    mem: &'a CapturedMemory,
    /// The spans of its last two reads: a decode reads a goroutine's `g`
    /// and its stack in turn, which lie in two spans.
    last: [Cell<usize>; 2],
    cache: RefCell<BlockCache>,
}

impl<'a> CaptureReader<'a> {
    pub(super) fn new(mem: &'a CapturedMemory) -> Self {
        CaptureReader {
            mem,
            last: [Cell::new(0), Cell::new(0)],
            cache: RefCell::new(BlockCache::default()),
        }
    }
}

impl Memory for CaptureReader<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let end = addr.checked_add(buf.len() as u64).ok_or(fault)?;
        let holds = |i: usize| {
            self.mem
                .index
                .get(i)
                .is_some_and(|s| s.addr <= addr && end <= s.end())
        };
        let (a, b) = (self.last[0].get(), self.last[1].get());
        let i = if holds(a) {
            a
        } else if holds(b) {
            // The most recent first.
            self.last[0].set(b);
            self.last[1].set(a);
            b
        } else {
            let i = self.mem.find(addr, end).ok_or(fault)?;
            // The older of the two goes.
            self.last[1].set(a);
            self.last[0].set(i);
            i
        };
        // Never borrowed twice: `read` does not call back into itself.
        let mut cache = self.cache.try_borrow_mut().map_err(|_| fault)?;
        self.mem.copy_out(i, addr, buf, Some(&mut cache))
    }
}
