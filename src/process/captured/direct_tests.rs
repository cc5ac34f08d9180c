//! The raw spilled store (`direct.rs`): batches written with `O_DIRECT`
//! at their logical offsets, appends and patches kept there, and the
//! decode's stacks read ahead only where the file holds them unpatched.

use std::os::unix::fs::FileExt;

use super::frames::BLOCK;
use super::spill_tests::{file_mut, file_of};
use super::*;
use crate::process::readahead::MIN_RANGES;
use crate::process::MemoryExt;

/// A raw copy in the spill directory, which must allow direct I/O: the
/// fallback (compressed) would pass these tests for the wrong reason.
fn raw() -> CapturedMemory {
    let m = CapturedMemory::spilled_raw().unwrap();
    assert!(
        m.is_raw(),
        "{} has no direct I/O (a tmpfs?): run the tests with TMPDIR on a disk",
        temporary_dir().display()
    );
    m
}

fn reading_ahead(m: &CapturedMemory) -> bool {
    matches!(&m.store, Store::Spill { ahead: Some(_), .. })
}

/// `n` "stacks" of different lengths, 64 bytes apart, each filled with
/// its own number: a source and the ranges.
fn stacks(n: usize) -> (CapturedMemory, Vec<(u64, usize)>) {
    let mut src = CapturedMemory::new();
    let mut ranges = Vec::new();
    let mut addr = 0xc000_0000u64;
    for i in 0..n {
        let len = 200 + (i * 37) % 1800;
        let bytes: Vec<u8> = (0..len).map(|k| (i as u8) ^ (k as u8)).collect();
        src.insert(addr, &bytes);
        ranges.push((addr, len));
        addr += len as u64 + 64;
    }
    (src, ranges)
}

/// Every `step`th range written over with `byte` in `src`, and read again
/// into `m` (patches); the ranges written.
fn write_every(
    m: &mut CapturedMemory,
    src: &mut CapturedMemory,
    ranges: &[(u64, usize)],
    step: usize,
    byte: u8,
) -> Vec<(u64, usize)> {
    let written: Vec<(u64, usize)> = ranges.iter().copied().step_by(step).collect();
    for &(addr, len) in &written {
        src.insert(addr, &vec![byte; len]);
    }
    assert!(m.rewrite_from(src, &written).iter().all(|&ok| ok));
    written
}

fn expected(src: &CapturedMemory, (addr, len): (u64, usize)) -> Vec<u8> {
    src.read_vec(addr, len).unwrap()
}

#[test]
fn a_raw_copy_keeps_every_block_at_its_logical_offset() {
    let (src, ranges) = stacks(10_000);
    let mut m = raw();
    let total: usize = ranges.iter().map(|r| r.1).sum();
    assert!(total > 2 * STAGING_BYTES, "several pipelined batches");
    assert!(m.read_from(&src, &ranges).iter().all(|&ok| ok));
    m.insert(0x10_0000, &[7; 100]);
    let f = file_of(&m);
    for (no, fr) in f.frames().iter().enumerate() {
        assert_eq!(fr.at, (no * BLOCK) as u64, "block {no}");
        assert_eq!(fr.stored, fr.len, "raw");
    }
    // Through the file itself, with no cache: the bytes sit where the
    // index says.
    let r = m.reader();
    for &range in ranges.iter().step_by(97) {
        assert_eq!(r.read_vec(range.0, range.1).unwrap(), expected(&src, range));
        let s = m.index[m.find(range.0, range.0 + range.1 as u64).unwrap()];
        let mut on_disk = vec![0u8; range.1];
        f.file()
            .read_exact_at(&mut on_disk, s.offset + (range.0 - s.addr))
            .unwrap();
        assert_eq!(on_disk, expected(&src, range));
    }
    assert_eq!(m.read_vec(0x10_0000, 100).unwrap(), [7; 100]);
}

#[test]
fn stacks_are_read_ahead_unless_patched_and_always_read_right() {
    let (mut src, ranges) = stacks(MIN_RANGES + 500);
    let mut m = raw();
    assert!(m.read_from(&src, &ranges).iter().all(|&ok| ok));
    // Named in a stop: nothing starts until the decode does.
    m.will_read(ranges.clone());
    assert!(!reading_ahead(&m));
    m.begin_reads();
    assert!(reading_ahead(&m));
    let r = m.reader();
    for &range in &ranges {
        assert_eq!(r.read_vec(range.0, range.1).unwrap(), expected(&src, range));
    }
    drop(r);

    // A range written again: the read-ahead (whose windows may hold the
    // old bytes) ends, and the new one leaves the patched stack out.
    let patched = ranges[10];
    let new = vec![0xabu8; patched.1];
    src.insert(patched.0, &new);
    assert_eq!(m.rewrite_from(&src, &[patched]), vec![true]);
    assert!(!reading_ahead(&m));
    let at = m.index[m.find(patched.0, patched.0 + 1).unwrap()].offset;
    assert_eq!(
        SpillFile::direct_offset(&file_of(&m).direct_blocks(), at, patched.1 as u64),
        None
    );
    let far = ranges[3000];
    let far_at = m.index[m.find(far.0, far.0 + 1).unwrap()].offset;
    assert_eq!(
        SpillFile::direct_offset(&file_of(&m).direct_blocks(), far_at, 8),
        Some(far_at)
    );
    m.begin_reads();
    assert!(reading_ahead(&m));
    let r = m.reader();
    for &range in &ranges {
        assert_eq!(r.read_vec(range.0, range.1).unwrap(), expected(&src, range));
    }
    assert_eq!(r.read_vec(patched.0, patched.1).unwrap(), new);
}

#[test]
fn patches_past_the_bound_are_written_in_place() {
    let (mut src, ranges) = stacks(3000);
    let mut m = raw();
    assert!(m.read_from(&src, &ranges).iter().all(|&ok| ok));
    file_mut(&mut m).set_patch_limit(2 * BLOCK);
    let frames = file_of(&m).frames().to_vec();
    let written = write_every(&mut m, &mut src, &ranges, 7, 0x5a);
    let f = file_of(&m);
    assert!(f.patched_bytes() <= 2 * BLOCK, "the oldest were flushed");
    assert_eq!(f.frames(), &frames[..], "where they were");
    // Flushed blocks read right through the file, patched ones too.
    for &range in &ranges {
        assert_eq!(m.read_vec(range.0, range.1).unwrap(), expected(&src, range));
    }
    let (addr, len) = written[0];
    let s = m.index[m.find(addr, addr + len as u64).unwrap()];
    let mut on_disk = vec![0u8; len];
    f.file()
        .read_exact_at(&mut on_disk, s.offset + (addr - s.addr))
        .unwrap();
    assert_eq!(on_disk, vec![0x5a; len]);
}

#[test]
fn a_disk_is_judged_by_what_it_took_once_enough_went() {
    use super::direct::disk_too_slow;
    use std::time::Duration;
    let ms = Duration::from_millis;
    assert!(!disk_too_slow(4 << 20, ms(100)), "too little to judge");
    assert!(disk_too_slow(8 << 20, ms(100)), "80 MB/s");
    assert!(!disk_too_slow(8 << 20, ms(5)), "1.6 GB/s");
    assert!(!disk_too_slow(u64::MAX, ms(1)));
    assert!(disk_too_slow(u64::MAX, Duration::MAX));
}

#[test]
fn batches_after_the_disk_fell_behind_are_compressed_in_place_and_read_right() {
    let (src, ranges) = stacks(2 * MIN_RANGES + 2000);
    let mut m = raw();
    let half = ranges.len() / 2;
    assert!(m.read_from(&src, &ranges[..half]).iter().all(|&ok| ok));
    file_mut(&mut m).batch_writer.compress_from_now();
    assert!(m.read_from(&src, &ranges[half..]).iter().all(|&ok| ok));
    let f = file_of(&m);
    assert!(f.went_compressed());
    assert!(m.kept().contains("then lz4-compressed"), "{}", m.kept());
    let frames = f.frames();
    assert!(frames
        .iter()
        .enumerate()
        .all(|(no, fr)| fr.at == (no * BLOCK) as u64));
    let compressed = frames.iter().filter(|fr| fr.stored < fr.len).count();
    assert!(
        compressed > 0 && compressed < frames.len(),
        "{compressed} of {}",
        frames.len()
    );
    // The compressed ones are left to the usual reads; all read right.
    let later = ranges[ranges.len() - 10];
    let at = m.index[m.find(later.0, later.0 + 1).unwrap()].offset;
    assert_eq!(
        SpillFile::direct_offset(&f.direct_blocks(), at, later.1 as u64),
        None
    );
    m.will_read(ranges.clone());
    m.begin_reads();
    assert!(reading_ahead(&m));
    let r = m.reader();
    for &range in &ranges {
        assert_eq!(r.read_vec(range.0, range.1).unwrap(), expected(&src, range));
    }
}

#[test]
fn a_raw_write_refused_is_written_compressed_instead() {
    use super::direct::{AlignedBuf, BatchWriter};
    let file = tempfile::tempfile_in(temporary_dir()).unwrap();
    // A descriptor that cannot write: every raw write fails.
    let refusing = std::fs::File::open("/dev/null").unwrap();
    let mut w = BatchWriter::default();
    let mut buf = AlignedBuf::default();
    let n = 3 * BLOCK + 100;
    buf.ensure(n);
    for (i, b) in buf.bytes_mut()[..n].iter_mut().enumerate() {
        *b = (i / 64) as u8;
    }
    let at = 4 * BLOCK as u64;
    let (frames, _) = w.write(&refusing, &file, &buf, n, at).unwrap();
    assert!(w.compressed());
    assert_eq!(frames.len(), 4);
    let (mut block, mut scratch) = (Vec::new(), Vec::new());
    for (k, f) in frames.iter().enumerate() {
        assert_eq!(f.at, at + (k * BLOCK) as u64, "at its logical offset");
        assert!(f.stored < f.len, "compressed");
        super::frames::read_frame(&file, *f, &mut block, &mut scratch).unwrap();
        assert_eq!(
            block[..],
            buf.bytes()[k * BLOCK..k * BLOCK + f.len as usize]
        );
    }
}

/// A compressed block (written once the disk fell behind) patched past
/// the bound is written back raw in its place, and its frame says so.
#[test]
fn patched_compressed_blocks_are_written_back_raw_and_read_right() {
    let (mut src, ranges) = stacks(6000);
    let mut m = raw();
    file_mut(&mut m).batch_writer.compress_from_now();
    assert!(m.read_from(&src, &ranges).iter().all(|&ok| ok));
    assert!(file_of(&m).frames().iter().any(|f| f.stored < f.len));
    file_mut(&mut m).set_patch_limit(2 * BLOCK);
    write_every(&mut m, &mut src, &ranges, 5, 0xc3);
    let f = file_of(&m);
    assert!(f.patched_bytes() <= 2 * BLOCK, "the oldest were flushed");
    let flushed = f.frames().iter().filter(|f| f.stored == f.len).count();
    assert!(flushed > 0, "flushed blocks are raw");
    for &range in &ranges {
        assert_eq!(m.read_vec(range.0, range.1).unwrap(), expected(&src, range));
        assert_eq!(
            m.reader().read_vec(range.0, range.1).unwrap(),
            expected(&src, range)
        );
    }
    m.will_read(ranges.clone());
    m.begin_reads();
    let r = m.reader();
    for &range in &ranges {
        assert_eq!(r.read_vec(range.0, range.1).unwrap(), expected(&src, range));
    }
}
