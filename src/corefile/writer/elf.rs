//! The ELF64 `ET_CORE` layout and the streaming writer: headers and notes
//! first, then every `PT_LOAD`'s bytes, page-aligned, with pages that read as
//! zero (or cannot be read) left as holes in a sparse file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::process::Memory;

use super::flush::Flusher;
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

/// Whether the memory at `addr` starts with the ELF magic (what a
/// header-only mapping must hold to be dumped).
pub fn has_elf_header(mem: &dyn Memory, addr: u64) -> bool {
    let mut magic = [0u8; 4];
    mem.read(addr, &mut magic).is_ok() && magic == *b"\x7fELF"
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
            Dump::ElfHeader if has_elf_header(mem, vma.start) => PAGE.min(vma.len()),
            Dump::ElfHeader => 0,
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

/// One program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl Phdr {
    /// A `PT_LOAD` of mapping `v`, `filesz` bytes of it at `offset`.
    pub fn load(v: &Vma, vaddr: u64, memsz: u64, offset: u64, filesz: u64) -> Phdr {
        Phdr {
            kind: PT_LOAD,
            flags: u32::from(v.read) << 2 | u32::from(v.write) << 1 | u32::from(v.exec),
            offset,
            vaddr,
            filesz,
            memsz,
            align: PAGE,
        }
    }

    pub fn note(offset: u64, len: u64) -> Phdr {
        Phdr {
            kind: PT_NOTE,
            flags: 0,
            offset,
            vaddr: 0,
            filesz: len,
            memsz: 0,
            align: 0,
        }
    }
}

/// The ELF header (its program headers at `phoff`) followed by `phdrs`.
pub fn header_and_phdrs(phoff: u64, phdrs: &[Phdr]) -> Vec<u8> {
    let mut b = Vec::with_capacity(EHDR_SIZE as usize + PHDR_SIZE as usize * phdrs.len());
    b.extend_from_slice(b"\x7fELF");
    b.extend_from_slice(&[2, 1, 1, 0]); // ELFCLASS64, little-endian, EV_CURRENT, SYSV
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    b.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    b.extend_from_slice(&phoff.to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    b.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    b.extend_from_slice(&(phdrs.len().min(0xffff) as u16).to_le_bytes());
    b.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    for p in phdrs {
        b.extend_from_slice(&p.kind.to_le_bytes());
        b.extend_from_slice(&p.flags.to_le_bytes());
        for w in [p.offset, p.vaddr, 0, p.filesz, p.memsz, p.align] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    }
    b
}

/// Bytes of an ELF header and `n` program headers.
pub fn header_len(n: usize) -> u64 {
    EHDR_SIZE + PHDR_SIZE * n as u64
}

/// The ELF header, program headers and notes (everything before the data).
pub fn headers(layout: &Layout) -> Vec<u8> {
    let mut phdrs = vec![Phdr::note(layout.notes_offset, layout.notes.len() as u64)];
    for s in &layout.segments {
        phdrs.push(Phdr::load(
            &s.vma,
            s.vma.start,
            s.vma.len(),
            s.offset,
            s.filesz,
        ));
    }
    let mut b = header_and_phdrs(EHDR_SIZE, &phdrs);
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

/// How many threads read the target at once (`GOAT_CORE_READERS`
/// overrides). Reading a frozen copy through `/proc/PID/mem` costs the kernel
/// a page walk and a bounce-buffer copy per page, under the copy's mmap
/// lock taken shared, so readers scale with cores until the disk is the
/// bottleneck.
pub fn reader_count() -> usize {
    let env = std::env::var("GOAT_CORE_READERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    env.unwrap_or(cores.min(4)).clamp(1, 16)
}

/// One chunk of a segment: where it lives in memory and in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub addr: u64,
    pub offset: u64,
    pub len: usize,
}

/// `[addr, addr + len)` at file `offset`, cut in chunks of at most `CHUNK`.
pub fn chunked(addr: u64, offset: u64, len: u64, out: &mut Vec<Job>) {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        out.push(Job {
            addr: addr + done,
            offset: offset + done,
            len: n,
        });
        done += n as u64;
    }
}

fn jobs(layout: &Layout) -> Vec<Job> {
    let mut v = Vec::new();
    for seg in layout.segments.iter().filter(|s| s.filesz > 0) {
        chunked(seg.vma.start, seg.offset, seg.filesz, &mut v);
    }
    v
}

/// Writes the whole core to `file`: headers, then each segment's bytes read
/// from `mem`. Zero and unreadable pages are skipped (holes). `progress` is
/// told how many segment bytes are done after each chunk. `stats` counts
/// what was written, also when writing fails (to say how far it got).
///
/// Reading and writing overlap: reader threads fill chunks from `mem`
/// while this one writes, in file order, the chunks read so far; the time
/// is that of the slower side rather than their sum. A reader takes a
/// buffer before it claims the next chunk, and chunks are claimed in
/// order, so the chunk the writer waits for always has a buffer: the
/// reordering can never starve it.
pub fn write_core(
    file: &File,
    layout: &Layout,
    mem: &(dyn Memory + Sync),
    progress: &mut dyn FnMut(u64),
    stats: &mut WriteStats,
) -> io::Result<()> {
    write_core_with(reader_count(), file, layout, mem, progress, stats)
}

fn write_core_with(
    readers: usize,
    file: &File,
    layout: &Layout,
    mem: &(dyn Memory + Sync),
    progress: &mut dyn FnMut(u64),
    stats: &mut WriteStats,
) -> io::Result<()> {
    let head = headers(layout);
    file.write_all_at(&head, 0)?;
    stats.bytes_written = head.len() as u64;
    copy_jobs(readers, file, &jobs(layout), mem, false, progress, stats)?;
    file.set_len(layout.end)
}

/// Copies each job's bytes from `mem` to its place in `file` (see
/// [`write_core`]). With `overwrite`, pages that read as zero are punched
/// out of the file (they may hold an older copy); else they are skipped.
pub fn copy_jobs(
    readers: usize,
    file: &File,
    jobs: &[Job],
    mem: &(dyn Memory + Sync),
    overwrite: bool,
    progress: &mut dyn FnMut(u64),
    stats: &mut WriteStats,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let readers = readers.clamp(1, jobs.len().max(1));
    let buffers = readers + 2;
    // (job index, bytes, unreadable pages)
    let (filled_tx, filled_rx) = crossbeam_channel::bounded::<(usize, Vec<u8>, u64)>(buffers);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    let next = AtomicUsize::new(0);
    let written = std::thread::scope(|s| -> io::Result<()> {
        for _ in 0..readers {
            let (filled_tx, empty_rx, jobs, next) =
                (filled_tx.clone(), empty_rx.clone(), &jobs, &next);
            s.spawn(move || loop {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                let mut unreadable = WriteStats::default();
                read_tolerant(mem, job.addr, &mut buf[..job.len], &mut unreadable);
                if filled_tx
                    .send((i, buf, unreadable.unreadable_pages))
                    .is_err()
                {
                    return;
                }
            });
        }
        drop(filled_tx);
        // The writer: chunks in job order; on an error, stop taking chunks
        // (the readers then end when their channels close) and report it.
        let mut result = Ok(());
        let mut waiting = std::collections::BTreeMap::new();
        let mut want = 0usize;
        let mut flusher = Flusher::new(file);
        'recv: for (i, buf, unreadable) in filled_rx.iter() {
            stats.unreadable_pages += unreadable;
            waiting.insert(i, buf);
            while let Some(buf) = waiting.remove(&want) {
                // Buffers stay CHUNK long: a live copy's jobs are often a
                // few pages, and growing a buffer back zeroed 8 MiB per
                // job (a million goroutines' copy spent 19 s in memset).
                let Job { offset, len, .. } = jobs[want];
                result = write_nonzero(file, offset, &buf[..len], overwrite, stats);
                flusher.written(offset, len as u64);
                progress(len as u64);
                if result.is_err() {
                    // No reader claims another chunk.
                    next.store(jobs.len(), Ordering::Relaxed);
                    break 'recv;
                }
                want += 1;
                let _ = empty_tx.send(buf);
            }
        }
        drop(empty_tx);
        drop(filled_rx);
        if result.is_ok() && want < jobs.len() {
            return Err(io::Error::other(
                "a reader of the target's memory stopped early",
            ));
        }
        result
    });
    written
}

/// Fills `buf` from `addr`: big batched reads; a piece that fails is retried
/// page by page, and pages that still fail read as zero.
pub fn read_tolerant(mem: &dyn Memory, addr: u64, buf: &mut [u8], stats: &mut WriteStats) {
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

/// Writes the runs of non-zero pages of `buf` at `offset`; with
/// `overwrite`, punches the runs of zero pages out of the file (they may
/// hold an older copy), else leaves them alone (holes already).
pub fn write_nonzero(
    file: &File,
    offset: u64,
    buf: &[u8],
    overwrite: bool,
    stats: &mut WriteStats,
) -> io::Result<()> {
    let page = PAGE as usize;
    let pages = buf.len().div_ceil(page);
    let zero_at = |k: usize| is_zero(&buf[k * page..((k + 1) * page).min(buf.len())]);
    let mut k = 0;
    while k < pages {
        let zero = zero_at(k);
        let mut e = k + 1;
        while e < pages && zero_at(e) == zero {
            e += 1;
        }
        let (from, to) = (k * page, (e * page).min(buf.len()));
        if !zero {
            file.write_all_at(&buf[from..to], offset + from as u64)?;
            stats.bytes_written += (to - from) as u64;
        } else if overwrite {
            punch(file, offset + from as u64, (to - from) as u64)?;
        }
        k = e;
    }
    Ok(())
}

/// Makes `[offset, offset + len)` of `file` a hole (it reads as zero).
pub fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on a file we own, with integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, len as i64) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // No holes on this filesystem: write the zeros.
        return file.write_all_at(&vec![0u8; len as usize], offset);
    }
    Err(e)
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;
