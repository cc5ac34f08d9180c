//! The heap walker's offsets for the releases goat is tested against
//! (1.19, 1.21–1.27), for executables without DWARF: stripped production
//! binaries (`-ldflags='-s -w'`) are the common case on the boxes where a
//! service leaks. Each row is checked against DWARF by
//! `tests::table_matches_dwarf`; a release not listed here needs DWARF.
//! Addresses (`mheap_` and friends) are not here: `locate.rs` finds them.

use super::layout::{
    green_tea, Field, FinQueueFields, HeapLayout, ModuleFields, PointerMetadata, SpanFields,
    SpecialFields, SpecialKinds,
};
use super::locate::Addresses;

const fn f(off: u64, size: u64) -> Field {
    Field { off, size }
}

/// `mspan` in 1.19.
const SPAN_1_19: SpanFields = SpanFields {
    size: 136,
    start_addr: f(24, 8),
    npages: f(32, 8),
    nelems: f(56, 8),
    freeindex: f(48, 8),
    alloc_count: f(96, 2),
    spanclass: f(98, 1),
    state: f(99, 1),
    elemsize: f(104, 8),
    alloc_bits: f(72, 8),
    specials: f(128, 8),
    large_type: None,
};

/// `mspan` in 1.20–1.21: `userArenaChunkFree` and `isUserArenaChunk`.
const SPAN_1_21: SpanFields = SpanFields {
    size: 144,
    alloc_count: f(104, 2),
    spanclass: f(106, 1),
    state: f(107, 1),
    elemsize: f(112, 8),
    specials: f(136, 8),
    ..SPAN_1_19
};

/// `mspan` from 1.22: 16-bit `freeindex`/`nelems`, and `largeType`.
const SPAN_1_22: SpanFields = SpanFields {
    size: 160,
    nelems: f(50, 2),
    freeindex: f(48, 2),
    alloc_count: f(96, 2),
    spanclass: f(98, 1),
    state: f(99, 1),
    elemsize: f(104, 8),
    alloc_bits: f(64, 8),
    specials: f(128, 8),
    large_type: Some(f(152, 8)),
    ..SPAN_1_19
};

fn module(size: u64, gcdata_n: u64, next: u64) -> ModuleFields {
    ModuleFields {
        size,
        data: 208,
        edata: 216,
        bss: 224,
        ebss: 232,
        gcdata_n: f(gcdata_n, 4),
        gcdata_bytes: gcdata_n + 8,
        gcbss_n: f(gcdata_n + 16, 4),
        gcbss_bytes: gcdata_n + 24,
        next,
    }
}

/// The layout of Go 1.`minor` (with `GOEXPERIMENT` as the binary's build
/// settings record it) at the addresses `at`; `None` for a release goat has
/// no row for.
pub(super) fn layout(minor: u32, goexperiment: Option<&str>, at: &Addresses) -> Option<HeapLayout> {
    let span = match minor {
        19 => SPAN_1_19,
        21 => SPAN_1_21,
        22..=27 => SPAN_1_22,
        _ => return None,
    };
    let metadata = match minor {
        19 => PointerMetadata::TwoBitBitmap { bitmap: 0 },
        21 => PointerMetadata::OneBitBitmap {
            bitmap: 0,
            no_more_ptrs: 1 << 20,
        },
        _ => PointerMetadata::Headers {
            inline_mark_bits: green_tea(minor, goexperiment),
            mask_on_demand: minor >= 24,
        },
    };
    // 1.24 widened `special.offset` to a uintptr.
    let (offset, kind, header_size, finalizer_slots) = match minor {
        ..=23 => (f(8, 2), f(10, 1), 16, vec![16, 32, 40]),
        _ => (f(8, 8), f(16, 1), 24, vec![24, 40, 48]),
    };
    let special = SpecialFields {
        next: f(0, 8),
        offset,
        kind,
        header_size,
        kinds: SpecialKinds::of(minor),
        finalizer_slots,
        weak_handle_slots: match minor {
            ..=22 => vec![],
            23 => vec![16],
            _ => vec![24],
        },
        // 1.26: a `cleanupFn` of three pointer words (call, fn, arg).
        cleanup_slots: match minor {
            ..=23 => vec![],
            24 | 25 => vec![24],
            _ => vec![24, 32, 40],
        },
    };
    let module = match minor {
        19 => module(552, 496, 544),
        21 | 22 => module(592, 536, 584),
        23..=25 => module(584, 536, 576),
        26 => module(592, 544, 584),
        _ => module(568, 520, 560),
    };
    let (allspans, pages_in_use, arenas) = match minor {
        19 => (65856, 65880, 65936),
        21 => (65864, 65888, 65944),
        _ => (65864, 65888, 66008),
    };
    // `gcControllerState.heapMarked` and `.heapLive`.
    let (heap_marked, heap_live) = if minor == 19 { (184, 136) } else { (152, 104) };
    let finq = at.allfin.map(|allfin| FinQueueFields {
        allfin,
        alllink: 0,
        cnt: f(16, 4),
        fin: 24,
        block_size: 4064,
        entry_size: 40,
        entry_slots: vec![0, 8, 24, 32],
    });
    Some(HeapLayout {
        mheap: at.mheap,
        allspans,
        arenas,
        pages_in_use: Some(pages_in_use),
        span,
        metadata,
        special,
        module,
        firstmoduledata: at.firstmoduledata,
        finq,
        heap_marked: at.gc_controller.and_then(|c| c.checked_add(heap_marked)),
        heap_live: at.gc_controller.and_then(|c| c.checked_add(heap_live)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::HeapLayout;
    use super::super::locate::{mheap_from_code, Addresses};
    use crate::binary::dwarf::DwarfTypes;
    use crate::binary::Binary;
    use crate::goruntime::GoProgram;

    const MINORS: [u32; 8] = [19, 21, 22, 23, 24, 25, 26, 27];

    fn open(flavour: &str, name: &str) -> Binary {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bin")
            .join(flavour)
            .join(name);
        Binary::open(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the fixtures with scripts/build-fixtures",
                path.display()
            )
        })
    }

    /// Every row, at the addresses found without DWARF, equals what DWARF
    /// says, for every release built here (the runtime's types are in
    /// every binary's DWARF, so the small `states` fixture serves).
    #[test]
    fn table_matches_dwarf() {
        for minor in MINORS {
            let prog = GoProgram::load(open(&format!("go1.{minor}-exe"), "states")).expect("loads");
            let d = DwarfTypes::load(prog.binary().debug_data()).expect("DWARF");
            let from_dwarf = HeapLayout::from_dwarf(&prog, &d).expect("every field");
            let from_table = HeapLayout::from_table(&prog).expect("a row");
            assert_eq!(from_table, from_dwarf, "go1.{minor}");
        }
        let at = Addresses {
            mheap: 1,
            firstmoduledata: 2,
            allfin: None,
            gc_controller: None,
        };
        for minor in [18, 20, 28] {
            assert!(super::layout(minor, None, &at).is_none(), "go1.{minor}");
        }
    }

    /// `mheap_` is found from the code that passes it to `(*mheap).alloc`:
    /// where a symbol table names it (`-w`), at that address. In the
    /// stripped build (`-s -w`, laid out a little differently) the search
    /// finds an address too; that it is `mheap_` is shown by walking the
    /// heap of a running stripped program (tests/why.rs).
    #[test]
    fn mheap_is_found_in_the_code() {
        for minor in MINORS {
            let named = open(&format!("go1.{minor}-nodwarf"), "states");
            let want = named.symbol("runtime.mheap_").expect("a symbol");
            assert_eq!(mheap_from_code(&named), Some(want), "go1.{minor} -w");
            let stripped = open(&format!("go1.{minor}-stripped"), "states");
            assert_eq!(stripped.symbol("runtime.mheap_"), None, "go1.{minor}");
            let found = mheap_from_code(&stripped).expect("found in -s -w");
            let prog = GoProgram::load(stripped).expect("loads");
            let layout = HeapLayout::load(&prog).expect("from the table");
            assert_eq!(layout.mheap, found, "go1.{minor}");
            assert_eq!(layout.finq, None, "go1.{minor}: allfin has no symbol");
        }
    }
}
