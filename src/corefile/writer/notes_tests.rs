//! Note encodings checked field by field.

use super::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn note_header_name_and_padding() {
    let mut b = Vec::new();
    push_note(&mut b, "LINUX", NT_X86_XSTATE, &[1, 2, 3]);
    assert_eq!(u32_at(&b, 0), 6);
    assert_eq!(u32_at(&b, 4), 3);
    assert_eq!(u32_at(&b, 8), NT_X86_XSTATE);
    assert_eq!(&b[12..18], b"LINUX\0");
    assert_eq!(&b[20..23], &[1, 2, 3]);
    assert_eq!(b.len(), 24);
}

#[test]
fn prstatus_puts_pid_and_registers_where_the_kernel_does() {
    let regs = Regs {
        rip: 0x401000,
        rsp: 0xc000040000,
        fs_base: 0x7f00,
        r15: 15,
        gs: 99,
        ..Regs::default()
    };
    let t = ThreadInfo {
        tid: 1234,
        core_tid: 1234,
        regs,
        utime_us: 2_500_000,
        ..ThreadInfo::default()
    };
    let p = ProcessInfo {
        ppid: 7,
        ..ProcessInfo::default()
    };
    let b = prstatus(&t, &p, 0);
    assert_eq!(b.len(), PRSTATUS_SIZE);
    assert_eq!(u32_at(&b, 32), 1234);
    assert_eq!(u32_at(&b, 36), 7);
    assert_eq!(u64_at(&b, 48), 2);
    assert_eq!(u64_at(&b, 56), 500_000);
    assert_eq!(u64_at(&b, 112), 15); // r15 first
    assert_eq!(u64_at(&b, 112 + 16 * 8), 0x401000); // rip
    assert_eq!(u64_at(&b, 112 + 19 * 8), 0xc000040000); // rsp
    assert_eq!(u64_at(&b, 112 + 21 * 8), 0x7f00); // fs_base
    assert_eq!(u64_at(&b, 112 + 26 * 8), 99); // gs last
    assert_eq!(u32_at(&b, 328), 1);
}

#[test]
fn prpsinfo_and_file_note() {
    let p = ProcessInfo {
        pid: 10,
        state: b'S',
        comm: "a-very-long-command-name".into(),
        cmdline: b"/bin/prog\0-x\0y\0".to_vec(),
        ..ProcessInfo::default()
    };
    let b = prpsinfo(&p);
    assert_eq!((b[0], b[1]), (1, b'S'));
    assert_eq!(&b[40..56], b"a-very-long-com\0");
    assert_eq!(&b[56..70], b"/bin/prog -x y");
    assert_eq!(b[70], 0);

    let vmas = super::super::maps::parse_smaps(
        "00400000-00402000 r-xp 00003000 08:01 1 /bin/prog\n\
         00500000-00501000 rw-p 00000000 00:00 0 \n\
         7ff00000-7ff01000 r-xp 00000000 00:00 0 [vdso]\n",
    );
    let f = file_note(&vmas);
    assert_eq!(u64_at(&f, 0), 1);
    assert_eq!(u64_at(&f, 8), 4096);
    assert_eq!(
        (u64_at(&f, 16), u64_at(&f, 24), u64_at(&f, 32)),
        (0x400000, 0x402000, 3)
    );
    assert_eq!(&f[40..], b"/bin/prog\0");
}

#[test]
fn xsave_layout_lists_the_extended_components_xcr0_enables() {
    let mut x = vec![0u8; 1024];
    assert_eq!(xsave_layout(&x), None, "no x87/SSE bits: not an XCR0");
    assert_eq!(xsave_layout(&x[..100]), None);
    x[XCR0_OFFSET] = 0x7; // x87, SSE, AVX
    let b = xsave_layout(&x).unwrap();
    assert_eq!(b.len(), 16);
    assert_eq!(u32_at(&b, 0), 2);
    // AVX's 16 ymm upper halves: 256 bytes at 576 on every CPU.
    assert_eq!((u32_at(&b, 4), u32_at(&b, 8)), (256, 576));
    x[XCR0_OFFSET] = 0x3;
    assert_eq!(xsave_layout(&x), None, "nothing extended to describe");
}

#[test]
fn xsave_layout_flags_are_zero_whatever_cpuid_says() {
    // An AMX CPU: tile config (17) and tile data (18) enabled, and CPUID's
    // ECX with its alignment bit set for them; the kernel writes flags 0.
    let mut x = vec![0u8; 1024];
    let xcr0: u64 = 0x7 | (1 << 17) | (1 << 18);
    x[XCR0_OFFSET..XCR0_OFFSET + 8].copy_from_slice(&xcr0.to_le_bytes());
    let b = xsave_layout_with(&x, |i| (i * 64, 0x1000 + i)).unwrap();
    assert_eq!(b.len(), 3 * 16);
    for (record, ty) in b.chunks(16).zip([2, 17, 18]) {
        let w = |k: usize| u32_at(record, 4 * k);
        assert_eq!((w(0), w(1), w(2), w(3)), (ty, ty * 64, 0x1000 + ty, 0));
    }
}
