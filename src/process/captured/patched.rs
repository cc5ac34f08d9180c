//! Overwrites of a spilled capture's blocks, kept in memory beside the
//! file. A pre-copy capture re-reads the pages the target wrote since
//! they were copied twice: once while it runs, and in the final stop,
//! where every microsecond is the target's pause. A block's frame is
//! compressed: writing a few bytes into it in the file would mean reading
//! and decoding it, then compressing and writing it again. So an
//! overwrite is only recorded here (its bytes and where they go), and
//! applied to the block each time a reader decodes it.
//!
//! Bounded: a busy target may write over most of what was copied while
//! the copy ran, and patches of a million goroutines' stacks would put
//! back in memory what the file is there to keep out. Past the bound the
//! oldest patched blocks are decoded, patched, compressed again and
//! appended to the file as new frames (`SpillFile::overwrite`). That
//! happens where the patches pile up, in the running round (it re-reads
//! everything written during the copy); the final stop re-reads only what
//! was written in the few milliseconds since, far less than the bound.

use std::collections::{HashMap, VecDeque};
use std::io;

/// Bytes of patches kept before the oldest are written to the file.
pub(super) const PATCH_LIMIT: usize = 16 << 20;

/// The overwrites of one block, in the order made (a later one wins).
#[derive(Debug, Default)]
pub(super) struct Patch {
    /// Where each goes in the block, and its length.
    runs: Vec<(u32, u32)>,
    /// Their bytes, one after the other.
    bytes: Vec<u8>,
}

impl Patch {
    /// Writes the patch over `block` (the block as its frame holds it).
    pub(super) fn apply(&self, block: &mut [u8]) -> io::Result<()> {
        let mut from = 0usize;
        for &(at, n) in &self.runs {
            let (at, n) = (at as usize, n as usize);
            let src = self.bytes.get(from..from + n);
            let dst = block.get_mut(at..at + n);
            match (src, dst) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                // Checked against the block's length when recorded.
                _ => return Err(io::Error::other("a patch lies past its block")),
            }
            from += n;
        }
        Ok(())
    }
}

/// Every patched block's [`Patch`], and which were patched first.
#[derive(Debug)]
pub(super) struct Patches {
    blocks: HashMap<u64, Patch>,
    /// Block numbers in the order first patched: the oldest go first.
    order: VecDeque<u64>,
    /// Bytes the patches hold.
    bytes: usize,
    limit: usize,
    /// A flush failed (a full disk): patches stay in memory from then on,
    /// past the bound, rather than be lost.
    stuck: bool,
}

impl Default for Patches {
    fn default() -> Self {
        Patches::with_limit(PATCH_LIMIT)
    }
}

impl Patches {
    pub(super) fn with_limit(limit: usize) -> Self {
        Patches {
            blocks: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            limit,
            stuck: false,
        }
    }

    /// Records `bytes` as the new contents of block `no` at `at`; the
    /// caller checked that they lie inside the block's stored bytes.
    pub(super) fn record(&mut self, no: u64, at: u32, bytes: &[u8]) {
        let patch = self.blocks.entry(no).or_insert_with(|| {
            self.order.push_back(no);
            Patch::default()
        });
        // A block is at most `BLOCK` bytes: `bytes` fits in u32.
        patch.runs.push((at, bytes.len() as u32));
        patch.bytes.extend_from_slice(bytes);
        self.bytes = self.bytes.saturating_add(bytes.len());
    }

    /// Writes block `no`'s patch, if any, over `block`.
    pub(super) fn apply(&self, no: u64, block: &mut [u8]) -> io::Result<()> {
        match self.blocks.get(&no) {
            Some(p) => p.apply(block),
            None => Ok(()),
        }
    }

    /// Whether block `no` has a patch.
    pub(super) fn has(&self, no: u64) -> bool {
        self.blocks.contains_key(&no)
    }

    /// Whether the oldest patches should go to the file now.
    pub(super) fn over_limit(&self) -> bool {
        self.bytes > self.limit && !self.stuck
    }

    /// Takes out the oldest patches until at most half the bound is left:
    /// one flush makes room for many overwrites, in one `pwrite`.
    pub(super) fn take_oldest(&mut self) -> Vec<(u64, Patch)> {
        let mut out = Vec::new();
        while self.bytes > self.limit / 2 {
            let Some(no) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.blocks.remove(&no) {
                self.bytes = self.bytes.saturating_sub(p.bytes.len());
                out.push((no, p));
            }
        }
        out
    }

    /// Puts back patches [`Self::take_oldest`] took, which could not be
    /// written, and stops flushing.
    pub(super) fn put_back(&mut self, taken: Vec<(u64, Patch)>) {
        self.stuck = true;
        for (no, p) in taken.into_iter().rev() {
            self.bytes = self.bytes.saturating_add(p.bytes.len());
            self.order.push_front(no);
            self.blocks.insert(no, p);
        }
    }

    /// Bytes the patches hold.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.bytes
    }
}
