//! The core writer's pipeline against a fake memory.

use super::*;
use crate::process::ReadFault;

/// Memory whose byte at `a` is a hash of `a` (zero on one page, unreadable
/// on another), read with a delay that varies by address so parallel
/// readers finish out of order.
struct Patterned;

const HOLE: u64 = 0x10_0000 + 5 * PAGE;
const BAD: u64 = 0x10_0000 + 9 * PAGE;

fn byte_at(a: u64) -> u8 {
    if (HOLE..HOLE + PAGE).contains(&a) || (BAD..BAD + PAGE).contains(&a) {
        0
    } else {
        (a.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 | 1
    }
}

impl Memory for Patterned {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let end = addr + buf.len() as u64;
        if addr < BAD + PAGE && BAD < end {
            return Err(ReadFault {
                addr,
                len: buf.len(),
            });
        }
        std::thread::sleep(std::time::Duration::from_micros((addr >> 12) % 7 * 50));
        for (k, b) in buf.iter_mut().enumerate() {
            *b = byte_at(addr + k as u64);
        }
        Ok(())
    }
}

fn vma(start: u64, len: u64) -> Vma {
    Vma {
        start,
        end: start + len,
        read: true,
        write: true,
        exec: false,
        shared: false,
        offset: 0,
        path: None,
        anonymous_kb: len >> 10,
        vm_flags: Vec::new(),
    }
}

#[test]
fn parallel_readers_write_the_same_file_as_one() {
    // Several chunks per segment, a short tail, a hole and a bad page.
    let vmas = [
        vma(0x10_0000, 2 * CHUNK as u64 + 3 * PAGE),
        vma(0x400_0000, 5 * PAGE),
    ];
    let rules = [Dump::Whole, Dump::Whole];
    let dir = std::env::temp_dir().join(format!("goat-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for readers in [1, 3, 8] {
        let layout = plan(&vmas, &rules, &Patterned, vec![1, 2, 3, 4]).unwrap();
        let path = dir.join(format!("core.{readers}"));
        let file = File::create(&path).unwrap();
        let mut stats = WriteStats::default();
        let mut done = 0;
        write_core_with(
            readers,
            &file,
            &layout,
            &Patterned,
            &mut |n| done += n,
            &mut stats,
        )
        .unwrap();
        assert_eq!(done, dump_bytes(&layout));
        assert_eq!(stats.unreadable_pages, 1, "{readers}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, layout.end);
        for seg in &layout.segments {
            let got = &bytes[seg.offset as usize..(seg.offset + seg.filesz) as usize];
            let want: Vec<u8> = (0..seg.filesz)
                .map(|k| byte_at(seg.vma.start + k))
                .collect();
            assert!(
                got == want,
                "{readers} readers: segment {:#x}",
                seg.vma.start
            );
        }
        files.push(bytes);
    }
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    std::fs::remove_dir_all(&dir).unwrap();
}
