//! A capture's bytes in an unlinked temporary file instead of goat's heap:
//! at a million goroutines the copy is 1.9 GB, which must not become
//! goat's RSS on a box already short of memory.
//!
//! The capture's index points at *logical* offsets; the file holds the
//! logical bytes block by block, each block a frame of its own, lz4-
//! compressed (`frames.rs`: why, and the block size), found through a
//! frame table kept in memory. Bytes are appended in batches (4 MiB while
//! copying, or one range), each starting at a block boundary, so a block
//! is compressed exactly once, and a batch's last block is stored only as
//! far as the batch goes. Overwrites stay in memory as patches
//! (`patched.rs`) until too many pile up. Readers decode blocks through a
//! cache of their own (`cache.rs`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::direct::{identity_frames, open_direct_writer, AlignedBuf, BatchWriter};
use super::frames::{read_frame, Frame, Packer, BLOCK};
use super::patched::Patches;

/// Bytes staged in memory before one `pwrite`: large enough that the
/// syscalls cost nothing next to the copy, small enough to stay out of RSS.
pub(super) const STAGING_BYTES: usize = 4 << 20;

/// Where spilled captures go: `$TMPDIR`, else `/var/tmp` (on disk on most
/// systems, where `/tmp` is often memory), else the system's temporary
/// directory.
pub fn temporary_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ if Path::new("/var/tmp").is_dir() => PathBuf::from("/var/tmp"),
        _ => std::env::temp_dir(),
    }
}

/// `n` logical bytes rounded up to whole blocks: what a batch of `n`
/// bytes takes of the logical space.
pub(super) fn whole_blocks(n: usize) -> u64 {
    (n.div_ceil(BLOCK) as u64).saturating_mul(BLOCK as u64)
}

/// The file: unlinked from its creation (`O_TMPFILE` where the filesystem
/// has it), so it vanishes with goat however goat ends.
#[derive(Debug)]
pub(super) struct SpillFile {
    file: File,
    /// Bytes written to the file; the next frame goes here.
    end: u64,
    /// Each logical block's frame, by block number: the logical length
    /// is `frames.len()` blocks.
    frames: Vec<Frame>,
    patches: Patches,
    /// The compression buffer (reused).
    pub(super) packer: Packer,
    /// Where batches are read into before they are compressed (reused).
    pub(super) staging: Vec<u8>,
    /// The file opened for `O_DIRECT` writes when the copy is kept raw
    /// (`direct.rs`): then every block sits at its logical offset.
    pub(super) direct: Option<File>,
    /// A raw file's staging buffers, aligned for `O_DIRECT` (reused).
    pub(super) direct_staging: Vec<AlignedBuf>,
    /// How a raw file's batches are written, and whether the disk kept up.
    pub(super) batch_writer: BatchWriter,
}

impl SpillFile {
    pub(super) fn create_in(dir: &Path) -> io::Result<SpillFile> {
        Ok(SpillFile {
            file: tempfile::tempfile_in(dir)?,
            end: 0,
            frames: Vec::new(),
            patches: Patches::default(),
            packer: Packer::default(),
            staging: Vec::new(),
            direct: None,
            direct_staging: Vec::new(),
            batch_writer: BatchWriter::default(),
        })
    }

    /// [`Self::create_in`], kept raw and written with `O_DIRECT` where
    /// `dir`'s file system allows it (`direct.rs`), compressed where not.
    pub(super) fn create_direct_in(dir: &Path) -> io::Result<SpillFile> {
        let mut spill = Self::create_in(dir)?;
        spill.direct = open_direct_writer(&spill.file);
        Ok(spill)
    }

    /// Whether a raw file's disk was too slow, and its later batches
    /// were compressed (each still at its logical offset).
    pub(super) fn went_compressed(&self) -> bool {
        self.batch_writer.compressed()
    }

    /// Whether blocks are kept raw, each at its logical offset.
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The file, for reads that bypass the page cache.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Which blocks a direct read of the file gets right: raw at their
    /// own logical offset and unpatched (see [`Self::direct_offset`]).
    pub(super) fn direct_blocks(&self) -> Vec<bool> {
        if !self.is_direct() {
            return Vec::new();
        }
        (0u64..)
            .zip(&self.frames)
            .map(|(no, f)| {
                let raw = f.len > 0 && f.stored == f.len && f.at == no * BLOCK as u64;
                raw && !self.patches.has(no)
            })
            .collect()
    }

    /// Where logical `[at, at + len)` starts in the file, when every block
    /// of it is one of `direct` ([`Self::direct_blocks`]): bytes that a
    /// direct read of the file gets right.
    pub(super) fn direct_offset(direct: &[bool], at: u64, len: u64) -> Option<u64> {
        let end = at.checked_add(len)?;
        if len == 0 {
            return None;
        }
        let first = usize::try_from(at / BLOCK as u64).ok()?;
        let last = usize::try_from((end - 1) / BLOCK as u64).ok()?;
        direct
            .get(first..=last)
            .is_some_and(|blocks| blocks.iter().all(|&d| d))
            .then_some(at)
    }

    /// The logical length: where the next batch starts.
    pub(super) fn len(&self) -> u64 {
        (self.frames.len() as u64).saturating_mul(BLOCK as u64)
    }

    /// The file itself, for a writer on another thread, and where its
    /// frames go; [`Self::wrote`] says what it wrote.
    pub(super) fn raw(&self) -> (&File, u64) {
        (&self.file, self.end)
    }

    /// Records that frames were written up to `end` (by a writer handed
    /// [`Self::raw`]).
    pub(super) fn wrote(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// Appends the first `n` staged bytes; returns their logical offset.
    pub(super) fn append_staged(&mut self, n: usize) -> io::Result<u64> {
        let staging = std::mem::take(&mut self.staging);
        let at = self.append(&staging[..n]);
        self.staging = staging;
        at
    }

    /// Appends `bytes` from the next block boundary; returns their
    /// logical offset.
    pub(super) fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let at = self.len();
        if self.is_direct() {
            // Few and small (a final stop's new ranges): through the page
            // cache, raw at their logical offset like the batches.
            self.file.write_all_at(bytes, at)?;
            let frames = identity_frames(at, bytes.len());
            self.end = self.end.max(at.saturating_add(bytes.len() as u64));
            self.frames.resize(
                self.frames.len().saturating_add(frames.len()),
                Frame::default(),
            );
            self.place(at, frames);
            return Ok(at);
        }
        self.packer.push_blocks(bytes);
        let (frames, written) = self.packer.write_at(&self.file, self.end)?;
        self.end = self.end.saturating_add(written);
        self.frames.extend(frames);
        Ok(at)
    }

    /// Sets aside the next `n` logical bytes (whole blocks), their frames
    /// to be written by another thread ([`Self::place`]); their offset.
    pub(super) fn claim(&mut self, n: u64) -> u64 {
        let at = self.len();
        let blocks = n.div_ceil(BLOCK as u64) as usize;
        self.frames
            .resize(self.frames.len().saturating_add(blocks), Frame::default());
        at
    }

    /// Records the frames of the claimed blocks from logical offset `at`.
    pub(super) fn place(&mut self, at: u64, frames: Vec<Frame>) {
        let first = (at / BLOCK as u64) as usize;
        for (slot, f) in self.frames.iter_mut().skip(first).zip(frames) {
            *slot = f;
        }
    }

    /// Replaces bytes already written at logical offset `at`: recorded as
    /// patches (see `patched.rs`), the oldest written out as new frames
    /// when there are too many.
    pub(super) fn overwrite(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let pos = at
                .checked_add(done as u64)
                .ok_or(io::ErrorKind::InvalidInput)?;
            let no = pos / BLOCK as u64;
            let within = (pos % BLOCK as u64) as usize;
            let stored = self.frame(no)?.len as usize;
            let n = (bytes.len() - done).min(stored.saturating_sub(within));
            if n == 0 {
                // Padding, or a block never stored: nothing reads there.
                return Err(io::ErrorKind::InvalidInput.into());
            }
            self.patches
                .record(no, within as u32, &bytes[done..done + n]);
            done += n;
        }
        if self.patches.over_limit() {
            self.flush_patches();
        }
        Ok(())
    }

    /// Writes the oldest patched blocks out as new frames, patched, in one
    /// `pwrite`. A block whose frame cannot be read loses its patch (it
    /// reads as a fault anyway); if the write fails the patches stay.
    fn flush_patches(&mut self) {
        if self.is_direct() {
            return self.flush_patches_in_place();
        }
        let taken = self.patches.take_oldest();
        let mut block = Vec::new();
        let mut scratch = Vec::new();
        let mut kept = Vec::with_capacity(taken.len());
        for (no, patch) in taken {
            let Ok(frame) = self.frame(no) else {
                continue;
            };
            if read_frame(&self.file, frame, &mut block, &mut scratch).is_ok()
                && patch.apply(&mut block).is_ok()
            {
                self.packer.push(&block);
                kept.push((no, patch));
            }
        }
        match self.packer.write_at(&self.file, self.end) {
            Ok((frames, written)) => {
                self.end = self.end.saturating_add(written);
                for ((no, _), f) in kept.iter().zip(frames) {
                    // Each `no` was just looked up by `frame`.
                    if let Some(slot) = usize::try_from(*no)
                        .ok()
                        .and_then(|i| self.frames.get_mut(i))
                    {
                        *slot = f;
                    }
                }
            }
            Err(_) => self.patches.put_back(kept),
        }
    }

    /// [`Self::flush_patches`] of a raw file: each patched block written
    /// back over itself, so it stays at its logical offset.
    fn flush_patches_in_place(&mut self) {
        let taken = self.patches.take_oldest();
        let mut block = Vec::new();
        let mut scratch = Vec::new();
        let mut failed = Vec::new();
        for (no, patch) in taken {
            let Ok(frame) = self.frame(no) else {
                continue;
            };
            // A block that cannot be read loses its patch: it reads as a
            // fault anyway.
            if read_frame(&self.file, frame, &mut block, &mut scratch).is_err()
                || patch.apply(&mut block).is_err()
            {
                continue;
            }
            if self.file.write_all_at(&block, frame.at).is_err() {
                failed.push((no, patch));
                continue;
            }
            // Raw now, where it may have been compressed (a batch written
            // once the disk fell behind): its logical place holds a whole
            // block. Left as it was, its frame would decompress raw bytes.
            if let Some(slot) = usize::try_from(no)
                .ok()
                .and_then(|i| self.frames.get_mut(i))
            {
                slot.stored = slot.len;
            }
        }
        if !failed.is_empty() {
            self.patches.put_back(failed);
        }
    }

    /// Block `no` as readers see it, into `out`: its frame decoded, then
    /// its patches applied; `scratch` holds the compressed bytes.
    pub(super) fn load_block(
        &self,
        no: u64,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> io::Result<()> {
        read_frame(&self.file, self.frame(no)?, out, scratch)?;
        self.patches.apply(no, out)
    }

    fn frame(&self, no: u64) -> io::Result<Frame> {
        usize::try_from(no)
            .ok()
            .and_then(|i| self.frames.get(i))
            .copied()
            .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    #[cfg(test)]
    pub(super) fn set_patch_limit(&mut self, limit: usize) {
        self.patches = Patches::with_limit(limit);
    }

    #[cfg(test)]
    pub(super) fn patched_bytes(&self) -> usize {
        self.patches.held()
    }

    /// Bytes in the file (compressed).
    #[cfg(test)]
    pub(super) fn stored(&self) -> u64 {
        self.end
    }

    #[cfg(test)]
    pub(super) fn frames(&self) -> &[Frame] {
        &self.frames
    }
}
