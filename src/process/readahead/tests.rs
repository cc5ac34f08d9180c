use super::*;

/// A file on disk (where goat keeps its copies) whose every 8-byte word
/// holds its own offset, `len` bytes long.
fn numbered_file(len: u64) -> File {
    let dir = crate::process::temporary_dir();
    let file = tempfile::tempfile_in(&dir).expect("a temporary file where goat keeps its copies");
    let mut bytes = Vec::with_capacity(len as usize);
    for word in 0..len / 8 {
        bytes.extend_from_slice(&(word * 8).to_le_bytes());
    }
    file.write_all_at(&bytes, 0)
        .expect("write the numbered file");
    file
}

fn expected(offset: u64, len: usize) -> Vec<u8> {
    (offset / 8 * 8..)
        .step_by(8)
        .flat_map(|w: u64| w.to_le_bytes())
        .skip((offset % 8) as usize)
        .take(len)
        .collect()
}

const BASE: u64 = 0xc000_0000_0000;

/// Ranges like a decode's stacks: a few KiB each, scattered, in an order
/// that is not the file's.
fn stacks(n: u64, file_len: u64) -> Vec<Planned> {
    (0..n)
        .map(|i| {
            let slot = (i * 7919) % (file_len / 8192 - 1);
            let len = 200 + (i * 131) % 3000;
            let file_offset = slot * 8192 + 8192 - len;
            Planned {
                addr: BASE + file_offset,
                len,
                file_offset,
            }
        })
        .collect()
}

fn direct(file: &File) -> File {
    reopen_direct(file).unwrap_or_else(|| {
        panic!(
            "{} has no O_DIRECT (a tmpfs?): set TMPDIR to a directory on disk",
            crate::process::temporary_dir().display()
        )
    })
}

#[test]
fn windows_hold_their_ranges_within_the_buffer() {
    let planned = stacks(20_000, 256 << 20);
    let window_bytes = window_bytes(&planned);
    assert!((WINDOW_BYTES_MIN..=WINDOW_BYTES).contains(&window_bytes));
    assert_eq!(window_bytes as u64 % ALIGN, 0);
    let (windows, entries) = plan(&planned, window_bytes);
    assert_eq!(entries.len(), planned.len());
    assert!(windows.len() >= planned.len() / WINDOW_RANGES);
    for runs in &windows {
        let used: usize = runs.iter().map(|r| r.len).sum();
        assert!(used <= window_bytes, "a window's runs fill {used} bytes");
        for r in runs {
            assert_eq!(r.file_offset % ALIGN, 0);
            assert_eq!(r.len as u64 % ALIGN, 0);
            assert_eq!(r.at as u64 % ALIGN, 0);
            assert!(r.need <= r.len);
        }
    }
    // Every entry's bytes lie in a run of its window, where the file has them.
    for (p, e) in planned.iter().zip(sorted_like(&planned, &entries)) {
        let run = windows[e.window]
            .iter()
            .find(|r| r.at <= e.at && e.at < r.at + r.len)
            .expect("a run holds the entry");
        assert_eq!(
            run.file_offset + (e.at - run.at) as u64,
            p.file_offset,
            "entry of {:#x}",
            p.addr
        );
        assert!(e.at + p.len as usize <= run.at + run.need);
    }
}

/// `entries` in the order of `planned` (by address: the planned
/// addresses are distinct).
fn sorted_like<'e>(planned: &[Planned], entries: &'e [Entry]) -> Vec<&'e Entry> {
    planned
        .iter()
        .map(|p| entries.iter().find(|e| e.addr == p.addr).expect("an entry"))
        .collect()
}

/// `n` stacks planned over a numbered file of 64 MiB, their read-ahead
/// started.
fn started_over_64_mib(n: u64) -> (Vec<Planned>, ReadAhead) {
    let len = 64 << 20;
    let file = numbered_file(len);
    let planned = stacks(n, len);
    let ahead = ReadAhead::start(direct(&file), &planned).expect("a read-ahead");
    (planned, ahead)
}

#[test]
fn reads_in_plan_order_come_from_the_windows_and_are_right() {
    let (planned, ahead) = started_over_64_mib(30_000);
    let mut served = 0;
    for p in &planned {
        // The whole range, and a piece inside it, as a decode reads.
        let mut buf = vec![0u8; p.len as usize];
        if ahead.read(p.addr, &mut buf) {
            served += 1;
            assert_eq!(buf, expected(p.file_offset, buf.len()), "at {:#x}", p.addr);
        }
        let mut word = [0u8; 8];
        if ahead.read(p.addr + 16, &mut word) {
            assert_eq!(word.to_vec(), expected(p.file_offset + 16, 8));
        }
    }
    assert_eq!(served, planned.len(), "every range read in order is served");
}

/// Reads with a hint find what reads without find: in plan order (the
/// hint moving along), and wherever the hint points.
#[test]
fn a_hint_finds_the_same_ranges_wherever_it_points() {
    let (planned, ahead) = started_over_64_mib(30_000);
    let mut hint = 0;
    for (i, p) in planned.iter().enumerate() {
        let mut buf = vec![0u8; p.len as usize];
        assert!(ahead.read_near(p.addr, &mut buf, &mut hint), "range {i}");
        assert_eq!(buf, expected(p.file_offset, buf.len()), "range {i}");
        assert_eq!(hint, i, "the hint follows the plan");
    }
    for (i, wrong) in [(5, 29_000), (29_999, 0), (10, usize::MAX), (11, 11)] {
        let p = planned[i];
        let mut hint = wrong;
        let mut word = [0u8; 8];
        if ahead.read_near(p.addr + 8, &mut word, &mut hint) {
            assert_eq!(word.to_vec(), expected(p.file_offset + 8, 8), "range {i}");
            assert_eq!(hint, i);
        }
        // Past the range's end: refused, however near.
        let mut hint = i;
        assert!(!ahead.read_near(p.addr + p.len - 4, &mut word, &mut hint));
    }
}

#[test]
fn reads_out_of_order_or_outside_the_plan_are_right_or_refused() {
    let (planned, ahead) = started_over_64_mib(30_000);
    let mut buf = vec![0u8; 64];
    // Far ahead of the loaders, then long behind the decode.
    for i in [29_000, 0, 15_000, 1, 2] {
        let p = planned[i];
        let mut b = vec![0u8; p.len as usize];
        if ahead.read(p.addr, &mut b) {
            assert_eq!(b, expected(p.file_offset, b.len()), "range {i}");
        }
    }
    // Past a range's end, and where nothing is planned.
    let p = planned[3];
    assert!(!ahead.read(p.addr + p.len - 8, &mut buf));
    assert!(!ahead.read(BASE - 4096, &mut buf));
    assert!(!ahead.read(u64::MAX - 8, &mut buf));
}

#[test]
fn a_file_shorter_than_the_plan_is_refused_not_made_up() {
    let file = numbered_file(8 << 20);
    // Planned as if the file were 64 MiB: most windows cannot be read.
    let planned = stacks(20_000, 64 << 20);
    let ahead = ReadAhead::start(direct(&file), &planned).expect("a read-ahead");
    for p in &planned {
        let mut buf = vec![0u8; p.len as usize];
        if ahead.read(p.addr, &mut buf) {
            assert!(p.file_offset + p.len <= 8 << 20);
            assert_eq!(buf, expected(p.file_offset, buf.len()));
        }
    }
}

#[test]
fn dropped_halfway_it_stops_its_loaders() {
    let (planned, ahead) = started_over_64_mib(30_000);
    let mut buf = vec![0u8; 16];
    assert!(ahead.read(planned[0].addr, &mut buf));
    drop(ahead);
}

#[test]
fn too_few_ranges_are_not_planned() {
    let file = numbered_file(1 << 20);
    let planned = stacks(10, 1 << 20);
    assert!(ReadAhead::start(direct(&file), &planned).is_none());
}
