use super::frames::BLOCK;
use super::spill::whole_blocks;
use super::*;
use crate::process::MemoryExt;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Both stores, for tests that must hold for each.
fn stores() -> Vec<CapturedMemory> {
    vec![CapturedMemory::new(), CapturedMemory::spilled().unwrap()]
}

#[test]
fn reads_inside_a_range_and_faults_across_its_end() {
    for mut m in stores() {
        m.insert(0x1000, &(0u8..16).collect::<Vec<_>>());
        assert_eq!(
            m.read_u32(0x1004).unwrap(),
            u32::from_le_bytes([4, 5, 6, 7])
        );
        assert_eq!(
            m.read_u64(0x100c),
            Err(ReadFault {
                addr: 0x100c,
                len: 8
            })
        );
        assert!(m.read_u64(0xfff).is_err());
        assert!(m.reader().read_u64(0x100c).is_err());
        assert_eq!(m.reader().read_u32(0x1000).unwrap(), 0x0302_0100);
    }
}

#[test]
fn batch_reads_keep_only_what_was_readable() {
    let mut src = CapturedMemory::new();
    src.insert(0x2000, &[1, 2, 3, 4]);
    src.insert(0x1000, &[9; 8]);
    for mut m in stores() {
        assert_eq!(
            m.read_from(&src, &[(0x2000, 4), (0x3000, 4), (0x1000, 8)]),
            vec![true, false, true]
        );
        assert_eq!(
            m.read_u32(0x2000).unwrap(),
            u32::from_le_bytes([1, 2, 3, 4])
        );
        assert_eq!(m.read_u64(0x1000).unwrap(), u64::from_le_bytes([9; 8]));
        assert!(m.read_u32(0x3000).is_err());
        assert_eq!(m.len_bytes(), 12);
    }
}

#[test]
fn a_spilled_capture_is_an_unlinked_file_that_holds_big_batches() {
    // Several staging buffers' worth (more batches than packing threads,
    // so that they finish out of order), in ranges that straddle blocks.
    let mut src = CapturedMemory::new();
    let mut ranges = Vec::new();
    // Every 97th range is not in the source: unreadable, in whichever
    // batch (they are copied while the previous batch is written).
    let mut missing = Vec::new();
    for i in 0..3000u64 {
        let addr = 0x10_0000 + i * 0x4000;
        let len = 9000 + (i as usize % 7) * 1000;
        match i % 97 == 5 {
            true => missing.push((addr, len)),
            false => {
                src.insert(addr, &pattern(len, i as u8));
                ranges.push((addr, len));
            }
        }
    }
    let mut asked = ranges.clone();
    asked.extend(&missing);
    asked.sort_unstable();
    let mut m = CapturedMemory::spilled().unwrap();
    assert!(m.is_spilled());
    let ok = m.read_from(&src, &asked);
    for (r, ok) in asked.iter().zip(ok) {
        assert_eq!(ok, !missing.contains(r), "{r:x?}");
    }
    assert!(m.spill_error().is_none());
    assert!(m.len_bytes() > 8 * STAGING_BYTES);
    for &(addr, _) in &missing {
        assert!(m.read_u64(addr).is_err());
    }
    let Store::Spill { file, .. } = &m.store else {
        panic!("not spilled")
    };
    // Each batch takes its whole staging length, unreadable ranges too,
    // from a block boundary in the logical space; the file holds them
    // compressed.
    let staged: u64 = batches(&asked, STAGING_BYTES)
        .map(|b| whole_blocks(b.iter().map(|r| r.1).sum()))
        .sum();
    assert_eq!(file.len(), staged);
    assert!(file.stored() < staged / 2, "{} of {staged}", file.stored());
    // Gone from the directory from the start: nothing to leave behind.
    let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        fds.iter()
            .any(|p| p.starts_with(&*temporary_dir().to_string_lossy()) && p.ends_with("(deleted)")),
        "{fds:?}"
    );
    // Every range reads back whole and in pieces that cross block edges,
    // through the shared cache and a reader's own, from several threads.
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (m, src, ranges) = (&m, &src, &ranges);
            s.spawn(move || {
                let r = m.reader();
                for &(addr, len) in ranges.iter().skip(t as usize) {
                    let want = src.read_vec(addr, len).unwrap();
                    assert_eq!(r.read_vec(addr, len).unwrap(), want);
                    assert_eq!(m.read_vec(addr, len).unwrap(), want);
                    let mid = addr + len as u64 / 2 - 3;
                    assert_eq!(r.read_u64(mid).unwrap(), src.read_u64(mid).unwrap());
                    assert!(r.read_u64(addr + len as u64 - 4).is_err());
                }
            });
        }
    });
}

#[test]
fn block_cache_reads_across_block_edges_and_past_its_size() {
    let mut file = SpillFile::create_in(&temporary_dir()).unwrap();
    let bytes = pattern(5 * BLOCK + 100, 7);
    assert_eq!(file.append(&bytes).unwrap(), 0);
    let mut cache = BlockCache::default();
    let mut buf = vec![0u8; 64];
    for at in [0, BLOCK - 10, 2 * BLOCK - 1, 5 * BLOCK + 36] {
        cache.read(&file, at as u64, &mut buf).unwrap();
        assert_eq!(buf, bytes[at..at + 64]);
    }
    let mut big = vec![0u8; 2 * BLOCK + 5];
    cache.read(&file, 3, &mut big).unwrap();
    assert_eq!(big, bytes[3..3 + big.len()]);
    // The last block's padding is not stored: it does not read.
    assert!(cache.read(&file, 5 * BLOCK as u64 + 90, &mut buf).is_err());
}

#[test]
fn rewrite_replaces_bytes_in_place_in_every_overlapping_range() {
    for mut m in stores() {
        m.insert(0x1000, &[1; 0x100]);
        m.insert(0x1080, &[1; 0x10]); // a g alone, inside the run above
        let mut now = CapturedMemory::new();
        now.insert(0x1000, &[2; 0x200]);
        let held = m.len_bytes();
        assert_eq!(m.rewrite_from(&now, &[(0x1078, 0x20)]), vec![true]);
        assert_eq!(m.len_bytes(), held, "in place: no new range");
        assert_eq!(m.read_vec(0x1070, 8).unwrap(), [1; 8]);
        assert_eq!(m.read_vec(0x1078, 0x20).unwrap(), [2; 0x20]);
        assert_eq!(m.read_vec(0x1080, 0x10).unwrap(), [2; 0x10]);
        assert_eq!(m.reader().read_vec(0x1080, 0x10).unwrap(), [2; 0x10]);
        assert_eq!(m.read_vec(0x1098, 8).unwrap(), [1; 8]);
    }
}

#[test]
fn rewrite_adds_what_no_range_covers_whole() {
    for mut m in stores() {
        m.insert(0x1000, &[1; 0x100]);
        let mut now = CapturedMemory::new();
        now.insert(0x1000, &[3; 0x1000]);
        assert_eq!(
            m.rewrite_from(&now, &[(0x10f0, 0x20), (0x1800, 8)]),
            vec![true, true]
        );
        // The part inside the old range was replaced there too, so a read
        // served by either range sees the new bytes.
        assert_eq!(m.read_vec(0x10e8, 0x10).unwrap(), [[1; 8], [3; 8]].concat());
        assert_eq!(m.read_vec(0x10f0, 0x20).unwrap(), [3; 0x20]);
        assert_eq!(m.read_u64(0x1800).unwrap(), u64::from_le_bytes([3; 8]));
        assert!(m.read_u64(0x1808).is_err());
    }
}

#[test]
fn a_range_that_cannot_be_reread_reads_as_a_fault_not_as_old_bytes() {
    for mut m in stores() {
        m.insert(0x1000, &pattern(0x100, 1));
        m.insert(0x1040, &pattern(0x10, 0x41));
        let gone = CapturedMemory::new();
        assert_eq!(m.rewrite_from(&gone, &[(0x1040, 0x20)]), vec![false]);
        assert!(m.read_u64(0x1040).is_err());
        assert!(m.read_u64(0x1058).is_err());
        assert!(m.reader().read_u64(0x1050).is_err());
        // The rest of the range is still there, byte for byte.
        assert_eq!(m.read_vec(0x1000, 0x40).unwrap(), pattern(0x40, 1));
        assert_eq!(m.read_vec(0x1060, 0xa0).unwrap(), pattern(0x100, 1)[0x60..]);
    }
}

#[test]
fn a_restricted_copy_reads_only_its_ranges_and_joins_adjacent_spans() {
    let src = {
        let mut m = CapturedMemory::new();
        m.insert(0x1000, &pattern(0x3000, 7));
        m
    };
    for mut m in stores() {
        // A stack copied in two parts, and a span the restriction drops.
        m.read_from(&src, &[(0x2000, 0x1000), (0x1800, 0x800), (0x3800, 0x100)]);
        let ok = m.restrict_to(&[(0x2100, 0x10), (0x1f00, 0x200), (0x3000, 8), (0x3800, 0)]);
        assert_eq!(ok, vec![true, true, false, true]);
        let expect = |addr: u64, n: usize| {
            let at = (addr - 0x1000) as usize;
            pattern(0x3000, 7)[at..at + n].to_vec()
        };
        assert_eq!(m.read_vec(0x2100, 0x10).unwrap(), expect(0x2100, 0x10));
        assert_eq!(m.read_vec(0x1f00, 0x200).unwrap(), expect(0x1f00, 0x200));
        assert_eq!(m.reader().read_vec(0x1f80, 8).unwrap(), expect(0x1f80, 8));
        // Held before, outside every kept range now.
        assert!(m.read_u64(0x2200).is_err() && m.read_u64(0x3800).is_err());
        assert_eq!(m.len_bytes(), 0x210);
    }
}

/// A source that may know what it holds, and counts the reads it serves.
struct Counting {
    inner: CapturedMemory,
    knows: bool,
    reads: std::sync::atomic::AtomicUsize,
}

impl Memory for Counting {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read(addr, buf)
    }
    fn holds(&self, addr: u64, len: usize) -> Option<bool> {
        let mut buf = vec![0u8; len];
        self.knows.then(|| self.inner.read(addr, &mut buf).is_ok())
    }
}

#[test]
fn a_pass_through_capture_reads_its_source_and_only_what_it_captured() {
    for knows in [true, false] {
        let mut inner = CapturedMemory::new();
        inner.insert(0x1000, &pattern(0x100, 1));
        inner.insert(0x3000, &pattern(0x40, 2));
        let source = Arc::new(Counting {
            inner,
            knows,
            reads: Default::default(),
        });
        let mut m = CapturedMemory::through(source.clone());
        let mut told = Vec::new();
        let ok = m.read_from_seen(
            source.as_ref(),
            &[(0x1010, 0x20), (0x2000, 8), (0x3000, 0x40)],
            &mut |a, b| told.push((a, b.len())),
        );
        assert_eq!(ok, [true, false, true], "knows: {knows}");
        // A source that knows what it holds is not read while capturing,
        // and nothing is told; one that does not is read, and told.
        let reads = source.reads.load(std::sync::atomic::Ordering::Relaxed);
        match knows {
            true => assert!(reads == 0 && told.is_empty(), "{reads} {told:?}"),
            false => assert_eq!(told, [(0x1010, 0x20), (0x3000, 0x40)]),
        }
        assert_eq!(
            m.read_u64(0x1018).unwrap(),
            u64::from_le_bytes(pattern(0x100, 1)[0x18..0x20].try_into().unwrap())
        );
        assert_eq!(m.reader().read_u32(0x3004).unwrap(), {
            let p = pattern(0x40, 2);
            u32::from_le_bytes(p[4..8].try_into().unwrap())
        });
        // The source holds these bytes, but the capture did not take them.
        assert!(m.read_u64(0x1000).is_err());
        assert!(m.read_u64(0x2000).is_err());
        // Bytes from elsewhere are not kept.
        m.insert(0x5000, &[1, 2, 3, 4]);
        assert!(m.read_u32(0x5000).is_err());
    }
}

#[test]
fn a_pass_through_capture_told_reads_and_tells_every_range_in_order() {
    // Enough bytes that the read is cut between several readers, with a
    // hole among them that no reader may paper over.
    let mut inner = CapturedMemory::new();
    let mut want = Vec::new();
    let mut ranges = Vec::new();
    for i in 0..64u64 {
        let addr = 0x10_000 + i * 0x10_000;
        let len = 0x5000 + (i as usize % 7) * 0x40;
        if i != 37 {
            inner.insert(addr, &pattern(len, i as u8));
            want.push((addr, pattern(len, i as u8)));
        }
        ranges.push((addr, len));
    }
    let source = Arc::new(Counting {
        inner,
        knows: true,
        reads: Default::default(),
    });
    let mut m = CapturedMemory::through(source.clone());
    let mut told = Vec::new();
    let ok = m.read_from_told(source.as_ref(), &ranges, &mut |a, b| {
        told.push((a, b.to_vec()))
    });
    assert_eq!(ok.iter().filter(|&&good| !good).count(), 1);
    assert!(!ok[37]);
    // A source that knows what it holds is read all the same, to tell.
    assert_eq!(told, want);
    assert!(m.read_u64(0x10_000 + 37 * 0x10_000).is_err());
    assert_eq!(
        m.read_u64(0x10_000 + 5 * 0x10_000).unwrap(),
        u64::from_le_bytes(pattern(0x5000 + 5 * 0x40, 5)[..8].try_into().unwrap())
    );
}
