//! A reader's cache of a spilled capture's blocks.

use std::io;

use super::spill::SpillFile;

/// The cache's granule. A goroutine's stack (about a KiB used) and its `g`
/// sit in a block or two; decoding goroutines in `allgs` order reads the
/// file nearly front to back, so a block serves several goroutines.
pub(super) const BLOCK: usize = 16 << 10;
/// Blocks one reader keeps (1 MiB): the stacks region and the `g` region
/// are read at two moving places, plus a few hot blocks (the `m`s).
const CACHED_BLOCKS: usize = 64;

/// A few recently read blocks of a [`SpillFile`]. Not shared: each decoding
/// thread has its own, so reads take no lock.
#[derive(Debug, Default)]
pub(super) struct BlockCache {
    /// (block number, bytes); a block at the file's end may be short.
    blocks: Vec<(u64, Vec<u8>)>,
    /// The slot the next miss replaces (round robin: the access pattern is
    /// two sequential sweeps, for which it does as well as LRU).
    next: usize,
    /// The slot of the last hit, tried first.
    last: usize,
}

impl BlockCache {
    /// Copies `buf.len()` bytes at file offset `at` into `buf`.
    pub(super) fn read(&mut self, file: &SpillFile, at: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > BLOCK {
            return file.read_at(at, buf);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = at + done as u64;
            let slot = self.slot(file, pos / BLOCK as u64)?;
            let block = &self.blocks[slot].1;
            let from = (pos % BLOCK as u64) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(from));
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        Ok(())
    }

    /// The slot holding block `no`, read in on a miss.
    fn slot(&mut self, file: &SpillFile, no: u64) -> io::Result<usize> {
        if self.blocks.get(self.last).is_some_and(|b| b.0 == no) {
            return Ok(self.last);
        }
        if let Some(i) = self.blocks.iter().position(|b| b.0 == no) {
            self.last = i;
            return Ok(i);
        }
        let start = no * BLOCK as u64;
        let len = (file.len().saturating_sub(start) as usize).min(BLOCK);
        let slot = if self.blocks.len() < CACHED_BLOCKS {
            self.blocks.push((no, Vec::new()));
            self.blocks.len() - 1
        } else {
            let s = self.next;
            self.next = (self.next + 1) % CACHED_BLOCKS;
            s
        };
        let entry = &mut self.blocks[slot];
        entry.0 = u64::MAX;
        entry.1.resize(len, 0);
        file.read_at(start, &mut entry.1)?;
        entry.0 = no;
        self.last = slot;
        Ok(slot)
    }

    pub(super) fn clear(&mut self) {
        self.blocks.clear();
        self.next = 0;
        self.last = 0;
    }
}
