//! A large copy into a spilled capture, with the reading and the writing
//! overlapped: while one staging buffer is compressed and written to the
//! file, the next batch is read from the target into the other. Copying
//! 100k goroutines (190 MB) is a `process_vm_readv` per 4 MiB batch, and
//! for the writer an lz4 compression (about 1.3 ms a MiB) and a `pwrite` of
//! a quarter of the bytes; one after the other they would add up, on a
//! thread that otherwise waits on the target's memory.

use std::io;

use super::frames::{Frame, Packer};
use super::spill::{whole_blocks, STAGING_BYTES};
use super::{batches, read_into, CapturedMemory, Store};
use crate::process::memory::Memory;

/// Staging buffers in flight: one being read into, one being written.
const BUFFERS: usize = 2;

/// One batch read: its ranges, which of them were read, and where its
/// bytes go in the logical space.
struct Staged<'r> {
    ranges: &'r [(u64, usize)],
    ok: Vec<bool>,
    at: u64,
}

/// What the writer thread did: each batch's frames (or why not), where
/// the file ends now, and the compression buffer, to be kept.
type Written = (Vec<io::Result<Vec<Frame>>>, u64, Packer);

impl CapturedMemory {
    /// [`Self::read_from`] for a spilled capture of more than one batch.
    /// Bounded like the serial copy: [`BUFFERS`] staging buffers of
    /// [`STAGING_BYTES`], and one compression buffer.
    pub(super) fn read_pipelined(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
    ) -> Vec<bool> {
        let Store::Spill { file, .. } = &mut self.store else {
            unreachable!("read_pipelined is only called on a spilled capture")
        };
        let mut spare = vec![std::mem::take(&mut file.staging)];
        let packer = std::mem::take(&mut file.packer);
        let start = file.len();
        let (raw, end) = file.raw();
        let mut staged = Vec::new();
        let mut at = start;
        let (written, end, packer) = std::thread::scope(|s| {
            let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(1);
            let (empty_tx, empty_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
            let writer = s.spawn(move || -> Written {
                let (mut packer, mut end) = (packer, end);
                let mut results = Vec::new();
                for (buf, n) in full_rx {
                    // Block by block from a block boundary: each batch
                    // starts one in the logical space.
                    packer.push_blocks(&buf[..n]);
                    // The reader may be gone already: then the buffer goes.
                    let _ = empty_tx.send(buf);
                    let frames = packer.write_at(raw, end).map(|(frames, n)| {
                        end = end.saturating_add(n);
                        frames
                    });
                    results.push(frames);
                }
                (results, end, packer)
            });
            let mut made = 1;
            for batch in batches(ranges, STAGING_BYTES) {
                let total: usize = batch.iter().map(|r| r.1).sum();
                let mut buf = match spare.pop() {
                    Some(b) => b,
                    None if made < BUFFERS => {
                        made += 1;
                        Vec::new()
                    }
                    // The writer sends every buffer back unless it died,
                    // and then the send below fails too.
                    None => empty_rx.recv().unwrap_or_default(),
                };
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                let ok = read_into(mem, batch, &mut buf[..total]);
                staged.push(Staged {
                    ranges: batch,
                    ok,
                    at,
                });
                if full_tx.send((buf, total)).is_err() {
                    break;
                }
                at = at.saturating_add(whole_blocks(total));
            }
            drop(full_tx);
            let written = writer
                .join()
                .unwrap_or_else(|_| (Vec::new(), end, Packer::default()));
            spare.extend(empty_rx.try_iter());
            written
        });
        if let Store::Spill { file, .. } = &mut self.store {
            file.wrote(end);
            file.packer = packer;
            file.claim(at - start);
            file.staging = spare.into_iter().max_by_key(Vec::len).unwrap_or_default();
        }
        let mut ok = Vec::with_capacity(ranges.len());
        let mut results = written.into_iter();
        for batch in staged {
            match results.next() {
                Some(Ok(frames)) => {
                    if let Store::Spill { file, .. } = &mut self.store {
                        file.place(batch.at, frames);
                    }
                    let mut offset = batch.at;
                    for (&(addr, n), &good) in batch.ranges.iter().zip(&batch.ok) {
                        if good {
                            self.push_span(addr, n, offset);
                        }
                        offset += n as u64;
                    }
                    ok.extend(batch.ok);
                }
                failed => {
                    let e = failed
                        .and_then(Result::err)
                        .unwrap_or_else(|| io::Error::other("the spill file's writer stopped"));
                    self.spill_error.get_or_insert(e);
                    ok.extend(std::iter::repeat_n(false, batch.ranges.len()));
                }
            }
        }
        // Ranges never staged (the writer died): not read.
        ok.resize(ranges.len(), false);
        ok
    }
}
