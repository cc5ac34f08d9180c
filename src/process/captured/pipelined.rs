//! A large copy into a spilled capture, with reading, compressing and
//! writing overlapped: while batches already read are compressed on two
//! threads and written to the file in order, the next batch is read from
//! the target. Copying 100k goroutines (190 MB) is a `process_vm_readv` per
//! 4 MiB batch, an lz4 compression (about 1.3 ms a MiB) and a `pwrite` of
//! a quarter of the bytes. With one compressing thread, compression was
//! the copy's bottleneck (at a million goroutines that thread was busy the
//! whole stacks phase while the reader waited half the time): with two,
//! both cores of a small box are kept busy.

use std::collections::BTreeMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::direct::{AlignedBuf, BatchWriter};
use super::frames::{Frame, Packer};
use super::spill::{whole_blocks, STAGING_BYTES};
use super::{batches, read_into, tell, CapturedMemory, Store};
use crate::direct_io::next_buffer;
use crate::process::memory::Memory;

/// Threads compressing batches.
const PACKERS: usize = 2;
/// Staging buffers: one being read into, one per packing thread.
const BUFFERS: usize = PACKERS + 1;
/// A raw file's staging buffers: one being read into, one being written,
/// one waiting between them.
const DIRECT_BUFFERS: usize = 3;
/// Batches read but not yet written, at most: what bounds the compressed
/// batches waiting for an earlier one to be written first.
const IN_FLIGHT: usize = BUFFERS + PACKERS;

/// One batch read: its ranges, which of them were read, and where its
/// bytes go in the logical space.
struct Staged<'r> {
    ranges: &'r [(u64, usize)],
    ok: Vec<bool>,
    at: u64,
}

/// Reads `batch` into `bytes` (exactly its length), tells `seen` what
/// was read, and returns the batch as staged at logical offset `at`.
fn stage<'r>(
    mem: &dyn Memory,
    batch: &'r [(u64, usize)],
    bytes: &mut [u8],
    at: u64,
    seen: &mut dyn FnMut(u64, &[u8]),
) -> Staged<'r> {
    let ok = read_into(mem, batch, bytes);
    tell(batch, &ok, bytes, seen);
    Staged {
        ranges: batch,
        ok,
        at,
    }
}

/// What the writer thread did: each batch's frames (or why not), in
/// order, and where the file ends now.
type Written = (Vec<io::Result<Vec<Frame>>>, u64);

impl CapturedMemory {
    /// [`Self::read_from_seen`] for a spilled capture of more than one
    /// batch (`seen` is told each batch's ranges on this thread, before
    /// they are compressed).
    /// Bounded: [`BUFFERS`] staging buffers of [`STAGING_BYTES`], a
    /// compression buffer per packing thread, and at most [`IN_FLIGHT`]
    /// compressed batches waiting to be written.
    pub(super) fn read_pipelined(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        let Store::Spill { file, .. } = &mut self.store else {
            unreachable!("read_pipelined is only called on a spilled capture")
        };
        if file.is_direct() {
            return self.read_pipelined_direct(mem, ranges, seen);
        }
        let mut spare = vec![std::mem::take(&mut file.staging)];
        let mut packers = vec![std::mem::take(&mut file.packer)];
        packers.resize_with(PACKERS, Packer::default);
        let start = file.len();
        let (raw, end) = file.raw();
        let mut staged = Vec::new();
        let mut at = start;
        let ((written, end), packer) = std::thread::scope(|s| {
            // (batch number, buffer, bytes used) read, to compress.
            let (full_tx, full_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>, usize)>(1);
            let (empty_tx, empty_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
            // (batch number, its frames compressed into a buffer of their
            // own, or none if that failed).
            let (packed_tx, packed_rx) = crossbeam_channel::unbounded::<(usize, Option<Packer>)>();
            // One credit per batch in flight, given back once it is written.
            let (credit_tx, credit_rx) = crossbeam_channel::unbounded::<()>();
            for _ in 0..IN_FLIGHT {
                let _ = credit_tx.send(());
            }
            let workers: Vec<_> = packers
                .into_iter()
                .map(|mut packer| {
                    let (full_rx, empty_tx, packed_tx) =
                        (full_rx.clone(), empty_tx.clone(), packed_tx.clone());
                    s.spawn(move || {
                        // Compressing is goat's CPU work alone: it yields
                        // to the target's threads (the reader, which holds
                        // the target's mmap lock in its reads, does not).
                        crate::background::lower_this_thread();
                        for (no, buf, n) in full_rx {
                            // Block by block from a block boundary: each
                            // batch starts one in the logical space. A
                            // panic (a bug) fails the batch, and no other:
                            // the writer is told, so nothing waits for it.
                            let batch = catch_unwind(AssertUnwindSafe(|| {
                                packer.push_blocks(&buf[..n]);
                                packer.take()
                            }));
                            if batch.is_err() {
                                packer = Packer::default();
                            }
                            // The reader may be gone already: then the buffer goes.
                            let _ = empty_tx.send(buf);
                            if packed_tx.send((no, batch.ok())).is_err() {
                                break;
                            }
                        }
                        packer
                    })
                })
                .collect();
            drop((full_rx, empty_tx, packed_tx));
            let writer = s.spawn(move || -> Written {
                let mut end = end;
                let mut results = Vec::new();
                let mut waiting = BTreeMap::new();
                for (no, batch) in packed_rx {
                    waiting.insert(no, batch);
                    while let Some(batch) = waiting.remove(&results.len()) {
                        let frames = match batch {
                            Some(mut b) => b.write_at(raw, end).map(|(frames, n)| {
                                end = end.saturating_add(n);
                                frames
                            }),
                            None => Err(io::Error::other("compressing a batch failed")),
                        };
                        results.push(frames);
                        let _ = credit_tx.send(());
                    }
                }
                (results, end)
            });
            let mut made = 1;
            for (no, batch) in batches(ranges, STAGING_BYTES).enumerate() {
                // The writer gives every credit back unless it died: then
                // nothing more is read.
                if credit_rx.recv().is_err() {
                    break;
                }
                let total: usize = batch.iter().map(|r| r.1).sum();
                let mut buf =
                    next_buffer(&mut spare, &mut made, BUFFERS, &empty_rx).unwrap_or_default();
                if buf.len() < total {
                    buf.resize(total, 0);
                }
                staged.push(stage(mem, batch, &mut buf[..total], at, seen));
                if full_tx.send((no, buf, total)).is_err() {
                    break;
                }
                at = at.saturating_add(whole_blocks(total));
            }
            drop(full_tx);
            // The compression buffer kept for the next copy: the largest.
            let packer = workers
                .into_iter()
                .filter_map(|w| w.join().ok())
                .max_by_key(Packer::capacity)
                .unwrap_or_default();
            let written = writer.join().unwrap_or_else(|_| (Vec::new(), end));
            spare.extend(empty_rx.try_iter());
            (written, packer)
        });
        if let Store::Spill { file, .. } = &mut self.store {
            file.packer = packer;
            file.staging = spare.into_iter().max_by_key(Vec::len).unwrap_or_default();
        }
        self.index_staged(staged, written, end, at - start, ranges.len())
    }

    /// After a pipelined copy: the file's new end and the logical bytes
    /// claimed, each batch's frames placed and its ranges indexed (or,
    /// where its write failed, not read); whether each range was read.
    fn index_staged(
        &mut self,
        staged: Vec<Staged<'_>>,
        written: Vec<io::Result<Vec<Frame>>>,
        end: u64,
        claimed: u64,
        ranges: usize,
    ) -> Vec<bool> {
        if let Store::Spill { file, .. } = &mut self.store {
            file.wrote(end);
            file.claim(claimed);
        }
        let mut ok = Vec::with_capacity(ranges);
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
        ok.resize(ranges, false);
        ok
    }

    /// [`Self::read_pipelined`] for a raw file (`direct.rs`): no packing
    /// threads; one writer writes each batch's buffer with `O_DIRECT` at
    /// its logical offset, then hands it back, while the next batch is read.
    fn read_pipelined_direct(
        &mut self,
        mem: &dyn Memory,
        ranges: &[(u64, usize)],
        seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        let Store::Spill { file, .. } = &mut self.store else {
            unreachable!("read_pipelined is only called on a spilled capture")
        };
        let mut spare = std::mem::take(&mut file.direct_staging);
        let mut batch_writer = std::mem::take(&mut file.batch_writer);
        let start = file.len();
        let (buffered, end) = file.raw();
        let Some(direct) = file.direct.as_ref() else {
            unreachable!("read_pipelined_direct is only called on a raw file")
        };
        let mut staged = Vec::new();
        let mut at = start;
        let ((written, end), batch_writer) = std::thread::scope(|s| {
            // (buffer, bytes used, logical offset) read, to write.
            let (full_tx, full_rx) = crossbeam_channel::bounded::<(AlignedBuf, usize, u64)>(1);
            let (empty_tx, empty_rx) = crossbeam_channel::unbounded::<AlignedBuf>();
            let writer = s.spawn(move || -> (Written, BatchWriter) {
                // It may go over to compressing: goat's CPU work, which
                // yields to the target's threads.
                crate::background::lower_this_thread();
                let mut end = end;
                let mut results = Vec::new();
                for (buf, n, at) in full_rx {
                    let frames =
                        batch_writer
                            .write(direct, buffered, &buf, n, at)
                            .map(|(frames, to)| {
                                end = end.max(to);
                                frames
                            });
                    results.push(frames);
                    // The reader may be gone already: then the buffer goes.
                    let _ = empty_tx.send(buf);
                }
                ((results, end), batch_writer)
            });
            let mut made = spare.len();
            for batch in batches(ranges, STAGING_BYTES) {
                let total: usize = batch.iter().map(|r| r.1).sum();
                let mut buf = next_buffer(&mut spare, &mut made, DIRECT_BUFFERS, &empty_rx)
                    .unwrap_or_default();
                // Batches vary in length around the staging size: room
                // for a whole one at once, so that a batch a little longer
                // than the last does not fault in a fresh buffer.
                buf.ensure(total.max(STAGING_BYTES));
                staged.push(stage(mem, batch, &mut buf.bytes_mut()[..total], at, seen));
                if full_tx.send((buf, total, at)).is_err() {
                    break;
                }
                at = at.saturating_add(whole_blocks(total));
            }
            drop(full_tx);
            let written = writer
                .join()
                .unwrap_or_else(|_| ((Vec::new(), end), BatchWriter::default()));
            spare.extend(empty_rx.try_iter());
            written
        });
        if let Store::Spill { file, .. } = &mut self.store {
            spare.truncate(DIRECT_BUFFERS);
            file.direct_staging = spare;
            file.batch_writer = batch_writer;
        }
        self.index_staged(staged, written, end, at - start, ranges.len())
    }
}
