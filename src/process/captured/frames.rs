//! How a spilled capture's bytes sit in its file: cut into logical blocks
//! of [`BLOCK`] bytes, each stored as one frame of its own, lz4-compressed
//! (lz4_flex's block format, no framing) or raw where lz4 would not shrink
//! it. Goroutine stacks and `g`s compress about 4x: the file a 100k dump
//! writes shrinks from 190 to 46 MB, which is what the dump mostly spent
//! its time on (filling fresh page cache), and what a box short of disk
//! has to hold (1.9 GB at a million goroutines). Independent frames let a
//! reader decode any block alone.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of one logical block, the unit of compression and of the readers'
/// caches. Measured on a 100k-goroutine dump (190 MB), 16, 32 and 64 KiB
/// blocks compress 3.9x, 4.1x and 4.2x, in about the same time. Decoding
/// is where they differ: each cache miss reads a frame (a `pread`) and
/// decodes a whole block, and the two decoding threads' chunks of
/// goroutines share more than half their blocks (a chunk's stacks are
/// spread wider than its share of the file). Replaying the reads of that dump, 16 KiB blocks decode
/// 1.7x the data with 21k misses, 32 KiB 2.0x with 12k, 64 KiB 2.5x with
/// 7.6k: 16 and 32 KiB cost about the same, 64 KiB more (and was slower
/// end to end). 32 KiB for the better ratio and half the frames.
pub(super) const BLOCK: usize = 32 << 10;

/// Where one logical block is in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Frame {
    /// The file offset of its first byte.
    pub(super) at: u64,
    /// Bytes it takes in the file: fewer than `len` when compressed, `len`
    /// when stored raw (lz4 never leaves the bytes as long as they were).
    pub(super) stored: u32,
    /// Bytes of the block it holds: [`BLOCK`], or fewer for a batch's last
    /// block (the rest of the block is padding, never stored). 0: nothing
    /// was stored (its batch's write failed), and nothing reads there.
    pub(super) len: u32,
}

impl Frame {
    fn is_raw(&self) -> bool {
        self.stored == self.len
    }
}

/// Blocks compressed into one buffer, to be written with one `pwrite`.
/// The buffer is kept between batches: with the two staging buffers, it
/// is all the memory a large copy uses.
#[derive(Debug, Default)]
pub(super) struct Packer {
    /// Frames put together so far, `out[..used]`; `out` only grows.
    out: Vec<u8>,
    used: usize,
    /// Their places, as offsets into `out`.
    frames: Vec<Frame>,
}

impl Packer {
    /// Adds `bytes` (a batch, starting at a block boundary) as one frame
    /// per [`BLOCK`], the last one short.
    pub(super) fn push_blocks(&mut self, bytes: &[u8]) {
        let worst = lz4_flex::block::get_maximum_output_size(BLOCK);
        let need = bytes.len().div_ceil(BLOCK).saturating_mul(worst);
        self.room(need);
        for block in bytes.chunks(BLOCK) {
            self.push(block);
        }
    }

    /// Adds `block` (at most [`BLOCK`] bytes) as one frame.
    pub(super) fn push(&mut self, block: &[u8]) {
        let worst = lz4_flex::block::get_maximum_output_size(block.len());
        self.room(worst);
        let dst = &mut self.out[self.used..];
        let stored = match lz4_flex::block::compress_into(block, dst) {
            Ok(n) if n < block.len() => n,
            // Random bytes (a buffer of key material, compressed data):
            // lz4 would make them longer. `dst` holds the worst case,
            // which is longer than the block.
            _ => {
                dst[..block.len()].copy_from_slice(block);
                block.len()
            }
        };
        // At most BLOCK (and its worst case) bytes: fits in u32.
        self.frames.push(Frame {
            at: self.used as u64,
            stored: stored as u32,
            len: block.len() as u32,
        });
        self.used += stored;
    }

    /// The frames pushed so far, moved to a packer of their own (their
    /// bytes copied into a buffer just their size, a quarter of the batch);
    /// this one is emptied and keeps its buffer for the next batch.
    pub(super) fn take(&mut self) -> Packer {
        let used = std::mem::take(&mut self.used);
        Packer {
            out: self.out[..used].to_vec(),
            used,
            frames: std::mem::take(&mut self.frames),
        }
    }

    /// Bytes of buffer it holds.
    pub(super) fn capacity(&self) -> usize {
        self.out.len()
    }

    /// Makes room for `n` more bytes after `used`.
    fn room(&mut self, n: usize) {
        let need = self.used.saturating_add(n);
        if self.out.len() < need {
            self.out.resize(need, 0);
        }
    }

    /// Writes the frames pushed so far to `file` at `at` in one `pwrite`
    /// and returns them, placed there, and the bytes written. Empties the
    /// packer, also when the write fails.
    pub(super) fn write_at(&mut self, file: &File, at: u64) -> io::Result<(Vec<Frame>, u64)> {
        let used = std::mem::take(&mut self.used);
        let mut frames = std::mem::take(&mut self.frames);
        file.write_all_at(&self.out[..used], at)?;
        for f in &mut frames {
            f.at = f.at.checked_add(at).ok_or_else(past_end)?;
        }
        Ok((frames, used as u64))
    }
}

impl Packer {
    /// Writes each frame pushed so far to `file` at `at + k * stride`
    /// (frame `k`): compressed blocks at their logical offsets in a raw
    /// file (`direct.rs`), the rest of each block a hole. Returns them,
    /// placed there, and the file's end after the last. Empties the
    /// packer, also when a write fails.
    pub(super) fn write_each_at(
        &mut self,
        file: &File,
        at: u64,
        stride: u64,
    ) -> io::Result<(Vec<Frame>, u64)> {
        let used = std::mem::take(&mut self.used);
        let mut frames = std::mem::take(&mut self.frames);
        let mut end = at;
        for (k, f) in frames.iter_mut().enumerate() {
            let from = f.at as usize;
            let bytes = self
                .out
                .get(from..from + f.stored as usize)
                .filter(|_| from + f.stored as usize <= used)
                .ok_or_else(past_end)?;
            let to = (k as u64)
                .checked_mul(stride)
                .and_then(|o| o.checked_add(at))
                .ok_or_else(past_end)?;
            file.write_all_at(bytes, to)?;
            f.at = to;
            end = to.checked_add(u64::from(f.stored)).ok_or_else(past_end)?;
        }
        Ok((frames, end))
    }
}

/// Reads the block `frame` holds into `out` (resized to its length),
/// with `scratch` for its compressed bytes. A frame that does not decode
/// to exactly its length (a damaged or truncated file) is an error.
pub(super) fn read_frame(
    file: &File,
    frame: Frame,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    if frame.len == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let len = frame.len as usize;
    out.resize(len, 0);
    if frame.is_raw() {
        return file.read_exact_at(out, frame.at);
    }
    scratch.resize(frame.stored as usize, 0);
    file.read_exact_at(scratch, frame.at)?;
    match lz4_flex::block::decompress_into(scratch, out) {
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(damaged("a frame decoded short")),
        Err(e) => Err(damaged(&e.to_string())),
    }
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the spill file is damaged: {why}"),
    )
}

fn past_end() -> io::Error {
    io::Error::other("the spill file would pass 2^64 bytes")
}
