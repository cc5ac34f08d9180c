//! Hostile input: garbage stacks, bogus frames and impossible bounds never
//! panic, stay within their bounds, and are reported as incomplete.

use std::sync::Arc;

use super::*;
use crate::binary::Binary;
use crate::goruntime::{Frame, GoProgram, Goroutine};
use crate::process::CapturedMemory;

const GP: u64 = 0x10_0000;
const LO: u64 = 0x20_0000;
const HI: u64 = LO + 0x2000;

fn program(ver: &str) -> Option<GoProgram> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/bin/go{ver}-exe/stackptrs"));
    if !crate::require::require_fixture(&path) {
        return None;
    }
    let bin = Binary::open(&path).expect("the stackptrs fixture opens");
    Some(GoProgram::load(bin).expect("it loads"))
}

/// A xorshift stream: the same garbage on every run.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n.div_ceil(8))
            .flat_map(|_| self.next().to_le_bytes())
            .take(n)
            .collect()
    }
}

fn frame(pc: u64, sp: u64) -> Frame {
    Frame {
        function: Arc::from("?"),
        file: Arc::from("?"),
        line: 0,
        pc,
        offset: 0,
        inlined: false,
        fp: sp,
        sp,
        args: String::new(),
    }
}

fn goroutine(status_code: u32, frames: Vec<Frame>) -> Goroutine {
    Goroutine {
        id: 7,
        gp: GP,
        status_code,
        scan: false,
        status: "chan receive".into(),
        wait_reason: None,
        wait_minutes: None,
        locked: false,
        m: None,
        synctest_group: None,
        frames,
        elided: None,
        created_by: None,
        unreadable: None,
    }
}

/// A `runtime.g` at [`GP`] with stack bounds `lo..hi` and the rest `g`
/// (garbage), and a stack of garbage.
fn memory(prog: &GoProgram, lo: u64, hi: u64, noise: &mut Noise) -> CapturedMemory {
    let mut mem = CapturedMemory::new();
    let mut g = noise.bytes(512);
    let layout = prog.layout();
    let mut put = |off: u64, v: u64| {
        let at = off as usize;
        g[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(layout.g.stack_lo, lo);
    put(layout.g.stack_hi, hi);
    mem.insert(GP, &g);
    mem.insert(LO, &noise.bytes((HI - LO) as usize));
    mem
}

#[test]
fn garbage_stacks_and_bogus_frames_are_incomplete_never_a_panic() {
    for ver in ["1.19", "1.27"] {
        let Some(prog) = program(ver) else { continue };
        let tab = prog.binary().pclntab().expect("pclntab");
        let entries: Vec<u64> = tab.functions().map(|f| f.entry()).collect();
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            let mem = memory(&prog, LO, HI, &mut noise);
            // A real function, somewhere inside it, or any number at all.
            let pc = match round % 3 {
                0 => entries[(noise.next() % entries.len() as u64) as usize] + noise.next() % 64,
                1 => noise.next(),
                _ => 0,
            };
            let sp = LO + (noise.next() % (HI - LO)) / 8 * 8;
            let status = [2, 3, 4][round % 3];
            let g = goroutine(status, vec![frame(pc, sp)]);
            let mut out = Vec::new();
            let scan = stack_pointer_slots(&prog, &mem, 0, &g, &mut out, &mut Default::default());
            assert!(
                scan.incomplete.is_some(),
                "go{ver} round {round}: garbage scanned as complete: {scan:?}"
            );
            // Every slot is a stack word, or a field of g or of a record.
            let stack_words = (HI - LO) / 8;
            assert!(out.len() as u64 <= stack_words * 4 + (1 << 16), "go{ver}");
        }
    }
}

#[test]
fn impossible_bounds_and_missing_frames_are_reported() {
    let Some(prog) = program("1.27") else { return };
    let mut noise = Noise(42);
    let cases: [(u64, u64, &str); 4] = [
        (HI, LO, "no stack bounds"),
        (LO, LO, "no stack bounds"),
        (0, u64::MAX, "no stack bounds"),
        (LO, HI, "no frames"),
    ];
    for (lo, hi, want) in cases {
        let mem = memory(&prog, lo, hi, &mut noise);
        let g = goroutine(4, Vec::new());
        let mut out = Vec::new();
        let scan = stack_pointer_slots(&prog, &mem, 0, &g, &mut out, &mut Default::default());
        let why = scan.incomplete.unwrap_or_default();
        assert!(why.contains(want), "{lo:#x}..{hi:#x}: {why}");
    }
    // No g at all: nothing to read, nothing made up.
    let g = goroutine(4, vec![frame(0x40_0000, LO)]);
    let mut out = Vec::new();
    let scan = stack_pointer_slots(
        &prog,
        &CapturedMemory::new(),
        0,
        &g,
        &mut out,
        &mut Default::default(),
    );
    assert!(scan.incomplete.is_some());
    assert!(out.is_empty(), "{out:x?}");
}

#[test]
fn a_cyclic_defer_list_ends_at_its_bound() {
    let Some(prog) = program("1.27") else { return };
    let layout = prog.layout();
    let mut mem = memory(&prog, LO, HI, &mut Noise(7));
    // g._defer -> a record whose link points back at itself.
    let rec = 0x30_0000u64;
    mem.insert(GP + layout.g.defers, &rec.to_le_bytes());
    let mut r = vec![0u8; 64];
    let link = layout.defer.link as usize;
    r[link..link + 8].copy_from_slice(&rec.to_le_bytes());
    mem.insert(rec, &r);
    let g = goroutine(4, Vec::new());
    let mut out = Vec::new();
    let scan = stack_pointer_slots(&prog, &mem, 0, &g, &mut out, &mut Default::default());
    assert!(scan.incomplete.is_some());
    assert!(out.len() < 4 * (1 << 16) + 4 * 1024, "{}", out.len());
}

/// The stack object of `main.stackObject` (a `holder`: one pointer, then
/// three `uintptr`s) is found in every build, its bitmap through
/// `moduledata.rodata` too when the binary has no symbols.
#[test]
fn stack_object_records_and_their_bitmaps_are_read_in_every_build() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut tried = 0;
    for ver in ["1.19", "1.21", "1.24", "1.27"] {
        for flavour in ["exe", "pie", "stripped", "noopt"] {
            let path = root.join(format!("tests/fixtures/bin/go{ver}-{flavour}/stackptrs"));
            if !crate::require::require_fixture(&path) {
                continue;
            }
            tried += 1;
            let bin = Binary::open(&path).expect("the stackptrs fixture opens");
            let tab = bin.pclntab().expect("pclntab");
            let f = tab
                .func_by_name("main.stackObject")
                .expect("main.stackObject");
            let records = maps::stack_objects(&bin, &f).expect("its stack objects");
            let holder = records
                .iter()
                .find(|r| r.size == 32)
                .unwrap_or_else(|| panic!("go{ver}-{flavour}: no holder in {records:?}"));
            assert!(holder.off < 0, "go{ver}-{flavour}: a local: {holder:?}");
            assert_eq!(holder.ptrdata, 8, "go{ver}-{flavour}");
            let rodata = tab.rodata().expect("rodata");
            let mask = bin
                .read_static(rodata + u64::from(holder.gcdataoff), 1)
                .expect("its bitmap");
            assert_eq!(mask[0] & 0b1111, 0b0001, "go{ver}-{flavour}");
        }
    }
    assert!(tried > 0, "no fixture binaries; run scripts/build-fixtures");
}
