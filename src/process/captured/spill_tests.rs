//! The spilled store's compressed blocks: reads and overwrites across
//! block edges, patches and their flushing, raw frames, damaged files.

use std::os::unix::fs::FileExt;

use super::frames::BLOCK;
use super::*;
use crate::process::MemoryExt;

/// Bytes that compress well but differ at every offset.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 8) as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Bytes lz4 cannot shrink (xorshift64).
fn random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub(super) fn file_of(m: &CapturedMemory) -> &SpillFile {
    match &m.store {
        Store::Spill { file, .. } => file,
        _ => panic!("not spilled"),
    }
}

pub(super) fn file_mut(m: &mut CapturedMemory) -> &mut SpillFile {
    match &mut m.store {
        Store::Spill { file, .. } => file,
        _ => panic!("not spilled"),
    }
}

/// A spilled copy of `bytes` at `addr`, and a source holding them.
fn spilled_with(addr: u64, bytes: &[u8]) -> (CapturedMemory, CapturedMemory) {
    let mut src = CapturedMemory::new();
    src.insert(addr, bytes);
    let mut m = CapturedMemory::spilled().unwrap();
    assert_eq!(m.read_from(&src, &[(addr, bytes.len())]), vec![true]);
    (m, src)
}

#[test]
fn reads_cross_block_edges_and_each_append_starts_a_block() {
    let bytes = pattern(3 * BLOCK + 500, 3);
    let (mut m, _) = spilled_with(0x10_0000, &bytes);
    m.insert(0x90_0000, &[5; 10]);
    assert_eq!(file_of(&m).len(), 5 * BLOCK as u64, "4 blocks, then 1");
    let r = m.reader();
    for (at, n) in [
        (BLOCK - 3, 8),
        (BLOCK - 100, 2 * BLOCK + 200),
        (0, bytes.len()),
    ] {
        let addr = 0x10_0000 + at as u64;
        assert_eq!(m.read_vec(addr, n).unwrap(), bytes[at..at + n]);
        assert_eq!(r.read_vec(addr, n).unwrap(), bytes[at..at + n]);
    }
    assert_eq!(r.read_vec(0x90_0000, 10).unwrap(), [5; 10]);
    // Compressed: the file holds far fewer bytes than it was given.
    assert!(file_of(&m).stored() < bytes.len() as u64 / 4);
}

#[test]
fn overwrites_across_block_edges_stay_in_memory_until_read() {
    let bytes = pattern(4 * BLOCK, 9);
    let (mut m, _) = spilled_with(0x10_0000, &bytes);
    let stored = file_of(&m).stored();
    let mut now = bytes.clone();
    let (from, n) = (BLOCK - 40, 2 * BLOCK + 80);
    now[from..from + n].copy_from_slice(&random(n, 1));
    let mut src = CapturedMemory::new();
    src.insert(0x10_0000, &now);
    let _ = m.read_u64(0x10_0000 + BLOCK as u64).unwrap(); // cached before
    let at = 0x10_0000 + from as u64;
    assert_eq!(m.rewrite_from(&src, &[(at, n)]), vec![true]);
    // Nothing compressed or written: the final stop's re-read costs a copy.
    assert_eq!(file_of(&m).stored(), stored);
    assert_eq!(file_of(&m).patched_bytes(), n);
    assert_eq!(m.read_vec(0x10_0000, now.len()).unwrap(), now);
    let r = m.reader();
    assert_eq!(r.read_vec(at - 8, 16).unwrap(), now[from - 8..from + 8]);
    assert_eq!(r.read_vec(0x10_0000, now.len()).unwrap(), now);
    // Overwritten again (a later patch wins).
    drop(r);
    let again = random(64, 2);
    now[from..from + 64].copy_from_slice(&again);
    src.insert(at, &again);
    assert_eq!(m.rewrite_from(&src, &[(at, 64)]), vec![true]);
    assert_eq!(m.reader().read_vec(0x10_0000, now.len()).unwrap(), now);
}

#[test]
fn patches_past_the_bound_go_to_the_file_as_new_frames() {
    let blocks = 12;
    let bytes = pattern(blocks * BLOCK, 1);
    let (mut m, _) = spilled_with(0x10_0000, &bytes);
    let limit = 3 * BLOCK;
    file_mut(&mut m).set_patch_limit(limit);
    let before: Vec<_> = file_of(&m).frames().to_vec();
    let mut now = bytes.clone();
    let mut src = CapturedMemory::new();
    // Half of every block, in order: the first ones are the oldest.
    for b in 0..blocks {
        let at = b * BLOCK + 100;
        now[at..at + BLOCK / 2].copy_from_slice(&random(BLOCK / 2, b as u64 + 1));
        src.insert(0x10_0000 + at as u64, &now[at..at + BLOCK / 2]);
        let addr = 0x10_0000 + at as u64;
        assert_eq!(m.rewrite_from(&src, &[(addr, BLOCK / 2)]), vec![true]);
        assert!(file_of(&m).patched_bytes() <= limit);
    }
    let f = file_of(&m);
    let after = f.frames();
    assert!(after[0] != before[0], "the oldest were written again");
    assert_eq!(after[blocks - 1], before[blocks - 1], "the newest are not");
    assert!(f.patched_bytes() > 0);
    assert_eq!(m.read_vec(0x10_0000, now.len()).unwrap(), now);
    assert_eq!(m.reader().read_vec(0x10_0000, now.len()).unwrap(), now);
    // A flushed block patched again.
    now[10..20].copy_from_slice(&[0xee; 10]);
    src.insert(0x10_000a, &[0xee; 10]);
    assert_eq!(m.rewrite_from(&src, &[(0x10_000a, 10)]), vec![true]);
    assert_eq!(m.reader().read_vec(0x10_0000, now.len()).unwrap(), now);
}

#[test]
fn random_bytes_are_stored_raw() {
    let noise = random(2 * BLOCK + 300, 7);
    let tame = pattern(BLOCK, 0);
    let (mut m, _) = spilled_with(0x10_0000, &noise);
    m.insert(0x20_0000, &tame);
    let f = file_of(&m);
    let frames = f.frames();
    assert!(
        frames[..3].iter().all(|fr| fr.stored == fr.len),
        "{frames:?}"
    );
    assert_eq!(frames[2].len, 300);
    assert!(frames[3].stored < frames[3].len);
    assert_eq!(f.stored(), noise.len() as u64 + frames[3].stored as u64);
    let r = m.reader();
    assert_eq!(r.read_vec(0x10_0000, noise.len()).unwrap(), noise);
    assert_eq!(r.read_vec(0x20_0000, tame.len()).unwrap(), tame);
}

#[test]
fn padding_and_blocks_never_stored_do_not_read() {
    let mut file = SpillFile::create_in(&temporary_dir()).unwrap();
    file.append(&[1; 100]).unwrap();
    let claimed = file.claim(10);
    assert_eq!(claimed, BLOCK as u64);
    let mut cache = BlockCache::default();
    let mut buf = [0u8; 8];
    cache.read(&file, 92, &mut buf).unwrap();
    assert_eq!(buf, [1; 8]);
    for at in [
        93,
        100,
        BLOCK as u64 - 8,
        claimed,
        2 * BLOCK as u64,
        u64::MAX - 4,
    ] {
        assert!(cache.read(&file, at, &mut buf).is_err(), "{at}");
    }
    // Nor can they be overwritten.
    assert!(file.overwrite(96, &[2; 8]).is_err());
    assert!(file.overwrite(claimed, &[2; 8]).is_err());
}

#[test]
fn a_damaged_frame_reads_as_a_fault() {
    let bytes = pattern(3 * BLOCK, 5);
    let (m, _) = spilled_with(0x10_0000, &bytes);
    let f = file_of(&m);
    let frame = f.frames()[1];
    let original = {
        let mut b = vec![0u8; frame.stored as usize];
        f.file().read_exact_at(&mut b, frame.at).unwrap();
        b
    };
    let mid = 0x10_0000 + BLOCK as u64 + 8;
    let clear = |m: &CapturedMemory| {
        if let Store::Spill { cache, .. } = &m.store {
            cache.lock().unwrap().clear();
        }
    };
    for garbage in [vec![0xff; original.len()], vec![0; original.len()]] {
        f.file().write_all_at(&garbage, frame.at).unwrap();
        clear(&m);
        assert_eq!(m.read_u64(mid), Err(ReadFault { addr: mid, len: 8 }));
        assert!(m.reader().read_vec(0x10_0000, bytes.len()).is_err());
        // Its neighbours are untouched.
        assert_eq!(m.reader().read_vec(0x10_0000, 64).unwrap(), bytes[..64]);
    }
    // Any damage is either caught or reads as some bytes: never a panic.
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x5a;
        f.file().write_all_at(&bad, frame.at).unwrap();
        let _ = m.reader().read_vec(mid, 64);
    }
    // A truncated file.
    f.file().set_len(frame.at + 10).unwrap();
    clear(&m);
    assert!(m.read_u64(mid).is_err());
    assert!(m.reader().read_u64(0x10_0000 + 2 * BLOCK as u64).is_err());
}
