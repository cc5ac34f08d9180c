//! The heap walker over memory a crafted core or a corrupt process could
//! hold: garbage words (pointers into a small region, page-aligned ones,
//! small numbers, ones, zeros, noise), pages that cannot be read, and
//! span records whose fields are plausible one by one and wrong together.
//! `Heap::load`, `objects`, `pointer_slots`, `global_roots` and
//! `Marks::mark_from` must never panic, wrap or allocate what the garbage
//! asks for. Run in the debug profile too, where overflow panics.

use super::layout::HeapLayout;
use super::{global_roots, Heap, Marks};
use crate::binary::Binary;
use crate::goruntime::GoProgram;
use crate::process::{Memory, ReadFault};

const REGION: u64 = 0x7f00_0000_0000;
const REGION_LEN: u64 = 1 << 24;
const SPANS: u64 = REGION + 0x1000;
const CRAFTED: u64 = REGION + 0x80_0000;
const NSPANS: u64 = 300;

pub(crate) fn program(flavour: &str) -> GoProgram {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin")
        .join(flavour)
        .join("heapobjs");
    let bin = Binary::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the fixtures with scripts/build-fixtures",
            path.display()
        )
    });
    GoProgram::load(bin).expect("the heapobjs fixture loads")
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Garbage everywhere, except the bytes `fixed` holds.
pub(crate) struct Garbage {
    seed: u64,
    fixed: Vec<(u64, Vec<u8>)>,
}

impl Garbage {
    fn word(&self, addr: u64) -> u64 {
        let h = mix(self.seed ^ addr);
        let r = h >> 8;
        match h % 9 {
            0 | 1 => REGION + ((r % REGION_LEN) & !7),
            2 => REGION + ((r % REGION_LEN) & !8191),
            3 => 1,
            4 => r % 64,
            5 => 0,
            6 => r % 8192 * 8,
            7 => u64::MAX - r % 16,
            _ => h,
        }
    }
}

impl Memory for Garbage {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let end = addr.checked_add(buf.len() as u64).ok_or(fault)?;
        for (at, bytes) in &self.fixed {
            let fixed_end = at + bytes.len() as u64;
            if addr >= *at && end <= fixed_end {
                let from = (addr - at) as usize;
                buf.copy_from_slice(&bytes[from..from + buf.len()]);
                return Ok(());
            }
        }
        // Like a core: memory exists where the executable and the heap
        // region are mapped, and not all of it was dumped.
        let mapped = end <= 1 << 32 || (addr >= REGION && end <= REGION + 2 * REGION_LEN);
        if !mapped || mix(self.seed ^ (addr >> 12)).is_multiple_of(7) || buf.len() > 64 << 20 {
            return Err(fault);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            *b = self.word(a & !7).to_le_bytes()[(a % 8) as usize];
        }
        Ok(())
    }
}

/// `allspans` pointing at NSPANS records, every other one a crafted
/// in-use span with fields drawn from the seed.
fn memory(layout: &HeapLayout, seed: u64) -> Garbage {
    let mut fixed = Vec::new();
    let mut header = SPANS.to_le_bytes().to_vec();
    header.extend_from_slice(&NSPANS.to_le_bytes());
    fixed.push((layout.mheap + layout.allspans, header));
    let f = &layout.span;
    let size = f.size as usize;
    let mut array = Vec::new();
    let mut crafted = Vec::new();
    for i in 0..NSPANS {
        let h = mix(seed.wrapping_mul(31).wrapping_add(i));
        if h.is_multiple_of(2) {
            array.extend_from_slice(&(REGION + (h >> 8) % REGION_LEN).to_le_bytes());
            continue;
        }
        let at = CRAFTED + crafted.len() as u64;
        array.extend_from_slice(&at.to_le_bytes());
        let mut b = vec![0u8; size];
        let mut put = |field: super::layout::Field, v: u64| {
            let o = field.off as usize;
            let n = field.size as usize;
            b[o..o + n].copy_from_slice(&v.to_le_bytes()[..n]);
        };
        let pick = |k: u64, of: &[u64]| of[(mix(h ^ k) % of.len() as u64) as usize];
        put(f.state, 1);
        put(
            f.start_addr,
            REGION + (i % 64) * 16 * 8192 + pick(1, &[0, 0, 8, 4096]),
        );
        put(f.npages, pick(2, &[1, 1, 2, 10, 11, 128, 1 << 40]));
        put(
            f.elemsize,
            pick(3, &[8, 16, 24, 512, 704, 8192, 0, 1 << 20]),
        );
        put(f.nelems, pick(4, &[1, 2, 100, 1024, 0, 65535]));
        put(f.spanclass, pick(5, &[0, 1, 2, 3, 9, 135, 255]));
        put(f.freeindex, pick(6, &[0, 1, 50, 65535]));
        put(f.alloc_count, pick(7, &[0, 1, 50]));
        put(f.alloc_bits, REGION + (mix(h ^ 8) % REGION_LEN));
        put(
            f.specials,
            pick(9, &[0, 0, REGION + ((mix(h) % REGION_LEN) & !7)]),
        );
        if let Some(lt) = f.large_type {
            put(
                lt,
                pick(10, &[0, REGION + ((mix(h ^ 10) % REGION_LEN) & !7)]),
            );
        }
        crafted.extend_from_slice(&b);
    }
    fixed.push((SPANS, array));
    fixed.push((CRAFTED, crafted));
    Garbage { seed, fixed }
}

/// The crafted heaps of `seeds` seeds that load, over the fixture built as
/// `flavour` (for analyses over the walker: `heapgraph`'s hostile tests).
pub(crate) fn garbage_heaps(prog: &GoProgram, seeds: u64) -> Vec<(Garbage, Heap)> {
    let layout = HeapLayout::load(prog).expect("the fixture has DWARF");
    (0..seeds)
        .filter_map(|seed| {
            let mem = memory(&layout, seed);
            let heap = Heap::load_with(layout.clone(), &mem, 0).ok()?;
            Some((mem, heap))
        })
        .collect()
}

fn probe(flavour: &str, seeds: u64) {
    let prog = program(flavour);
    let layout = HeapLayout::load(&prog).expect("the fixture has DWARF");
    let mut loaded = 0;
    for seed in 0..seeds {
        let mem = memory(&layout, seed);
        let Ok(heap) = Heap::load_with(layout.clone(), &mem, 0) else {
            continue;
        };
        loaded += 1;
        let objects: Vec<_> = heap.objects().collect();
        assert_eq!(objects.len() as u64, heap.totals().objects, "seed {seed}");
        for (k, obj) in objects.iter().enumerate() {
            assert_eq!(heap.number_of(obj), Some(k as u64), "seed {seed}: {obj:?}");
        }
        let mut slots = Vec::new();
        for obj in objects.iter().take(200) {
            slots.clear();
            heap.pointer_slots(&mem, obj, &mut slots);
            assert!(
                slots
                    .iter()
                    .all(|&s| s >= obj.base && s < obj.base + obj.size),
                "seed {seed}: a slot outside {obj:?}"
            );
            assert_eq!(heap.object_of(obj.base + obj.size / 2), Some(*obj));
        }
        let roots = global_roots(&prog, &mem, 0, &heap).map(|r| r.values().collect::<Vec<_>>());
        let mut marks = Marks::new(&heap);
        let skip: super::SkipSlots = [REGION + 8].into_iter().collect();
        let starts = (0..64).map(|i| mem.word(REGION + i * 4096));
        let n = marks.mark_from(&heap, &mem, starts, &skip);
        let m = marks.mark_from(&heap, &mem, roots.unwrap_or_default(), &skip);
        let (marked, _) = marks.marked();
        assert_eq!(n + m, marked, "seed {seed}");
        assert!(marked <= heap.totals().objects, "seed {seed}");
    }
    assert!(
        loaded > seeds / 2,
        "{flavour}: only {loaded} of {seeds} heaps loaded"
    );
}

#[test]
fn hostile_heaps_go1_19() {
    probe("go1.19-exe", 40);
}

#[test]
fn hostile_heaps_go1_21() {
    probe("go1.21-exe", 40);
}

#[test]
fn hostile_heaps_go1_24() {
    probe("go1.24-exe", 40);
}

#[test]
fn hostile_heaps_go1_27() {
    probe("go1.27-exe", 40);
}

#[test]
fn garbage_everywhere_is_refused_or_read() {
    let prog = program("go1.27-exe");
    let layout = HeapLayout::load(&prog).expect("the fixture has DWARF");
    for seed in 0..200 {
        let mem = Garbage {
            seed,
            fixed: Vec::new(),
        };
        if let Ok(heap) = Heap::load_with(layout.clone(), &mem, 0) {
            let mut marks = Marks::new(&heap);
            marks.mark_from(&heap, &mem, [REGION, REGION + 4096], &Default::default());
        }
    }
}

/// A stripped binary is read through goat's table: over garbage memory the
/// walker answers (an error or a heap), never a panic, and never
/// `NoDwarf`.
#[test]
fn a_stripped_binary_reads_garbage_through_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin/go1.27-stripped/hangs");
    let bin = Binary::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the fixtures with scripts/build-fixtures",
            path.display()
        )
    });
    let prog = GoProgram::load(bin).expect("the hangs fixture loads");
    for seed in 1..20 {
        let mem = Garbage {
            seed,
            fixed: Vec::new(),
        };
        assert!(!matches!(
            Heap::load(&prog, &mem, 0),
            Err(super::HeapError::NoDwarf)
        ));
    }
}
