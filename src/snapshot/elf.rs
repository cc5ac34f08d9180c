//! The ELF64 `ET_CORE` layout and the streaming writer: headers and notes
//! first, then every `PT_LOAD`'s bytes, page-aligned, with pages that read as
//! zero (or cannot be read) left as holes in a sparse file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::target::Memory;

use super::maps::{Dump, Vma};

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
pub const PAGE: u64 = 4096;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// Bytes read from the target per `read_batch` call.
const CHUNK: usize = 8 << 20;
/// Size of each request in a chunk (the live backend merges neighbours).
const PIECE: usize = 256 << 10;

/// One `PT_LOAD`: a mapping and how many of its bytes the file holds.
#[derive(Debug, Clone)]
pub struct Segment {
    pub vma: Vma,
    pub filesz: u64,
    pub offset: u64,
}

/// Where everything goes in the file.
#[derive(Debug, Clone)]
pub struct Layout {
    pub notes: Vec<u8>,
    pub notes_offset: u64,
    pub segments: Vec<Segment>,
    /// The file's length.
    pub end: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Decides each mapping's size in the file (`ElfHeader` needs a look at the
/// first four bytes) and lays the file out like the kernel does.
pub fn plan(vmas: &[Vma], rules: &[Dump], mem: &dyn Memory, notes: Vec<u8>) -> io::Result<Layout> {
    let phnum = vmas.len() + 1;
    if phnum >= 0xffff {
        return Err(io::Error::other(format!(
            "{} mappings: more than an ELF header can count",
            vmas.len()
        )));
    }
    let notes_offset = EHDR_SIZE + PHDR_SIZE * phnum as u64;
    let mut off = align_up(notes_offset + notes.len() as u64, PAGE);
    let mut segments = Vec::with_capacity(vmas.len());
    for (vma, rule) in vmas.iter().zip(rules) {
        let filesz = match rule {
            Dump::None => 0,
            Dump::Whole => vma.len(),
            Dump::ElfHeader => {
                let mut magic = [0u8; 4];
                if mem.read(vma.start, &mut magic).is_ok() && magic == *b"\x7fELF" {
                    PAGE.min(vma.len())
                } else {
                    0
                }
            }
        };
        segments.push(Segment {
            vma: vma.clone(),
            filesz,
            offset: if filesz > 0 { off } else { 0 },
        });
        off += filesz;
    }
    Ok(Layout {
        notes,
        notes_offset,
        segments,
        end: off,
    })
}

/// The ELF header, program headers and notes (everything before the data).
pub fn headers(layout: &Layout) -> Vec<u8> {
    let phnum = layout.segments.len() as u16 + 1;
    let mut b = Vec::with_capacity(layout.notes_offset as usize + layout.notes.len());
    b.extend_from_slice(b"\x7fELF");
    b.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little-endian, EV_CURRENT, SYSV
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    b.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    b.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    b.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    b.extend_from_slice(&phnum.to_le_bytes());
    b.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    let mut phdr = |ty: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64, align| {
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        for w in [off, vaddr, 0, filesz, memsz, align] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    };
    let n = layout.notes.len() as u64;
    phdr(PT_NOTE, 0, layout.notes_offset, 0, n, 0, 0);
    for s in &layout.segments {
        let v = &s.vma;
        let flags = u32::from(v.read) << 2 | u32::from(v.write) << 1 | u32::from(v.exec);
        phdr(PT_LOAD, flags, s.offset, v.start, s.filesz, v.len(), PAGE);
    }
    b.extend_from_slice(&layout.notes);
    b
}

/// What writing the data cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    /// Bytes of memory written (holes excluded), headers included.
    pub bytes_written: u64,
    /// Pages that could not be read and became holes.
    pub unreadable_pages: u64,
}

fn is_zero(page: &[u8]) -> bool {
    page.chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
}

/// Bytes of memory a core of `layout` copies (for progress reports).
pub fn dump_bytes(layout: &Layout) -> u64 {
    layout.segments.iter().map(|s| s.filesz).sum()
}

/// Writes the whole core to `file`: headers, then each segment's bytes read
/// from `mem`. Zero and unreadable pages are skipped (holes). `progress` is
/// told how many segment bytes are done after each chunk. `stats` counts
/// what was written, also when writing fails (to say how far it got).
///
/// Reading and writing overlap: one thread fills chunks from `mem` while
/// this one writes the previous chunk, so the time is that of the slower of
/// the two rather than their sum.
pub fn write_core(
    file: &File,
    layout: &Layout,
    mem: &(dyn Memory + Sync),
    progress: &mut dyn FnMut(u64),
    stats: &mut WriteStats,
) -> io::Result<()> {
    let head = headers(layout);
    file.write_all_at(&head, 0)?;
    stats.bytes_written = head.len() as u64;
    // Each piece of work: where the chunk goes in the file, and its bytes.
    let (filled_tx, filled_rx) = crossbeam_channel::bounded::<(u64, Vec<u8>, u64)>(2);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    let written = std::thread::scope(|s| -> io::Result<()> {
        let reader = s.spawn(move || {
            for seg in layout.segments.iter().filter(|s| s.filesz > 0) {
                let mut done = 0u64;
                while done < seg.filesz {
                    let n = (seg.filesz - done).min(CHUNK as u64) as usize;
                    let Ok(mut buf) = empty_rx.recv() else { return };
                    let mut unreadable = WriteStats::default();
                    read_tolerant(mem, seg.vma.start + done, &mut buf[..n], &mut unreadable);
                    buf.truncate(n);
                    if filled_tx
                        .send((seg.offset + done, buf, unreadable.unreadable_pages))
                        .is_err()
                    {
                        return;
                    }
                    done += n as u64;
                }
            }
        });
        // The writer: on an error, stop taking chunks (the reader then ends
        // when its channel closes) and report it.
        let mut result = Ok(());
        for (offset, mut buf, unreadable) in filled_rx.iter() {
            stats.unreadable_pages += unreadable;
            if result.is_ok() {
                result = write_nonzero(file, offset, &buf, stats);
                progress(buf.len() as u64);
            }
            if result.is_err() {
                break;
            }
            buf.resize(CHUNK, 0);
            let _ = empty_tx.send(buf);
        }
        drop(empty_tx);
        drop(filled_rx);
        let _ = reader.join();
        result
    });
    written?;
    file.set_len(layout.end)
}

/// Fills `buf` from `addr`: big batched reads; a piece that fails is retried
/// page by page, and pages that still fail read as zero.
fn read_tolerant(mem: &dyn Memory, addr: u64, buf: &mut [u8], stats: &mut WriteStats) {
    let results = {
        let mut reqs: Vec<(u64, &mut [u8])> = buf
            .chunks_mut(PIECE)
            .enumerate()
            .map(|(i, c)| (addr + (i * PIECE) as u64, c))
            .collect();
        mem.read_batch(&mut reqs)
    };
    for (i, res) in results.iter().enumerate() {
        if res.is_ok() {
            continue;
        }
        let start = i * PIECE;
        let end = (start + PIECE).min(buf.len());
        for page in buf[start..end].chunks_mut(PAGE as usize).enumerate() {
            let (k, bytes) = page;
            let a = addr + (start + k * PAGE as usize) as u64;
            if mem.read(a, bytes).is_err() {
                bytes.fill(0);
                stats.unreadable_pages += 1;
            }
        }
    }
}

/// Writes the runs of non-zero pages of `buf` at `offset`.
fn write_nonzero(file: &File, offset: u64, buf: &[u8], stats: &mut WriteStats) -> io::Result<()> {
    let page = PAGE as usize;
    let mut run: Option<usize> = None;
    let pages = buf.len().div_ceil(page);
    for k in 0..=pages {
        let nonzero = k < pages && !is_zero(&buf[k * page..((k + 1) * page).min(buf.len())]);
        match (nonzero, run) {
            (true, None) => run = Some(k),
            (false, Some(s)) => {
                let bytes = &buf[s * page..(k * page).min(buf.len())];
                file.write_all_at(bytes, offset + (s * page) as u64)?;
                stats.bytes_written += bytes.len() as u64;
                run = None;
            }
            _ => {}
        }
    }
    Ok(())
}
