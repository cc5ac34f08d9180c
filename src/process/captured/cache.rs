//! A reader's cache of a spilled capture's decoded blocks.

use std::io;

use super::frames::BLOCK;
use super::spill::SpillFile;

/// Memory one reader's cache holds (1 MiB, 32 blocks): the stacks region
/// and the `g` region are read at two moving places, plus a few hot blocks
/// (the `m`s). Decoding goroutines in `allgs` order reads the file nearly
/// front to back, so a block serves several goroutines before it is
/// replaced: a 100k dump's reads missed as often with 4 MiB as with 1.
const CACHE_BYTES: usize = 1 << 20;
const CACHED_BLOCKS: usize = CACHE_BYTES / BLOCK;

/// A few recently decoded blocks of a [`SpillFile`]. Not shared: each
/// decoding thread has its own, so reads take no lock. Cleared whenever
/// the capture's blocks change (an overwrite); appends only add blocks.
#[derive(Debug, Default)]
pub(super) struct BlockCache {
    /// (block number, its bytes as readers see them); a block at a
    /// batch's end is short.
    blocks: Vec<(u64, Vec<u8>)>,
    /// The slot the next miss replaces (round robin: the access pattern is
    /// two sequential sweeps, for which it does as well as LRU).
    next: usize,
    /// The slot of the last hit, tried first.
    last: usize,
    /// A frame's compressed bytes, read before they are decoded.
    scratch: Vec<u8>,
    /// Where in a raw file's read-ahead this reader read last
    /// (`ReadAhead::read_near`).
    pub(super) ahead_hint: usize,
}

impl BlockCache {
    /// Copies `buf.len()` bytes at logical offset `at` into `buf`, block
    /// by block. Bytes never stored (a batch's padding, or past the end)
    /// are an error.
    pub(super) fn read(&mut self, file: &SpillFile, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let pos = at
                .checked_add(done as u64)
                .ok_or(io::ErrorKind::UnexpectedEof)?;
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

    /// The slot holding block `no`, decoded into it on a miss.
    fn slot(&mut self, file: &SpillFile, no: u64) -> io::Result<usize> {
        if self.blocks.get(self.last).is_some_and(|b| b.0 == no) {
            return Ok(self.last);
        }
        if let Some(i) = self.blocks.iter().position(|b| b.0 == no) {
            self.last = i;
            return Ok(i);
        }
        let slot = if self.blocks.len() < CACHED_BLOCKS {
            self.blocks.push((no, Vec::new()));
            self.blocks.len() - 1
        } else {
            let s = self.next;
            self.next = (self.next + 1) % CACHED_BLOCKS;
            s
        };
        let entry = &mut self.blocks[slot];
        // Not a block until it is read whole.
        entry.0 = u64::MAX;
        file.load_block(no, &mut entry.1, &mut self.scratch)?;
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
