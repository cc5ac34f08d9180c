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
    last: Cell<usize>,
    cache: RefCell<BlockCache>,
}

impl<'a> CaptureReader<'a> {
    pub(super) fn new(mem: &'a CapturedMemory) -> Self {
        CaptureReader {
            mem,
            last: Cell::new(0),
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
        let last = self.last.get();
        let i = match self.mem.index.get(last) {
            Some(s) if s.addr <= addr && end <= s.end() => last,
            _ => {
                let i = self.mem.find(addr, end).ok_or(fault)?;
                self.last.set(i);
                i
            }
        };
        // Never borrowed twice: `read` does not call back into itself.
        let mut cache = self.cache.try_borrow_mut().map_err(|_| fault)?;
        self.mem.copy_out(i, addr, buf, Some(&mut cache))
    }
}
