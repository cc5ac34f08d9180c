//! Where the runtime keeps the heap's bookkeeping: offsets in `mheap`,
//! `mspan`, `heapArena`, `special`, `moduledata` and the finalizer queue,
//! and the addresses of `mheap_`, `firstmoduledata` and friends. Taken from
//! the executable's DWARF, the compiler's own word; without it, from goat's
//! table of the releases it is tested against (`table.rs`, checked against
//! DWARF) and the addresses `locate.rs` finds. A release with neither is
//! refused ([`HeapError::NoDwarf`]) rather than read with guessed offsets.

use crate::binary::dwarf::DwarfTypes;
use crate::goruntime::GoProgram;

use super::HeapError;

/// A struct member goat reads: where it is and how many bytes it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field {
    pub off: u64,
    pub size: u64,
}

impl Field {
    /// The member's value (little-endian, unsigned) out of a copy of its
    /// struct; `None` when the copy is too short or the width unusual.
    pub fn get(self, bytes: &[u8]) -> Option<u64> {
        let start = usize::try_from(self.off).ok()?;
        let len = usize::try_from(self.size).ok()?;
        let b = bytes.get(start..start.checked_add(len)?)?;
        Some(match len {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_le_bytes([b[0], b[1]])),
            4 => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            8 => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            _ => return None,
        })
    }
}

/// `runtime.mspan`: what a span says about its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpanFields {
    /// Bytes to copy per span: through the last field read.
    pub size: u64,
    pub start_addr: Field,
    pub npages: Field,
    pub nelems: Field,
    pub freeindex: Field,
    pub alloc_count: Field,
    pub spanclass: Field,
    pub state: Field,
    pub elemsize: Field,
    pub alloc_bits: Field,
    pub specials: Field,
    /// Go 1.22+: the type of a large object (its "malloc header").
    pub large_type: Option<Field>,
}

/// How a release records which words of an object may hold pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PointerMetadata {
    /// Go 1.19: two bits a word in `heapArena.bitmap` (pointer, and
    /// "scan": more pointers may follow), four words a byte.
    TwoBitBitmap { bitmap: u64 },
    /// Go 1.20–1.21: one bit a word in `heapArena.bitmap`, and
    /// `noMorePtrs`, a bit per bitmap word saying the object ends its
    /// pointers there.
    OneBitBitmap { bitmap: u64, no_more_ptrs: u64 },
    /// Go 1.22+: objects of at most 512 bytes have their bits at the end of
    /// their span (before the inline mark bits of Go 1.26+'s Green Tea GC),
    /// larger small objects a type pointer in their first word, large ones
    /// the span's `largeType`; the type's GC mask may be built on demand
    /// (Go 1.24+, `TFlagGCMaskOnDemand`).
    Headers {
        inline_mark_bits: bool,
        mask_on_demand: bool,
    },
}

/// The numbers of the special records goat follows, per release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpecialKinds {
    pub finalizer: u8,
    pub weak_handle: Option<u8>,
    pub cleanup: Option<u8>,
}

/// `runtime.special` and the records goat reads through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SpecialFields {
    pub next: Field,
    pub offset: Field,
    pub kind: Field,
    pub header_size: u64,
    pub kinds: SpecialKinds,
    /// Words of a `specialfinalizer` the GC treats as roots (fn, fint, ot).
    pub finalizer_slots: Vec<u64>,
    pub weak_handle_slots: Vec<u64>,
    pub cleanup_slots: Vec<u64>,
}

/// `runtime.moduledata`: a module's data and bss and their pointer masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ModuleFields {
    pub size: u64,
    pub data: u64,
    pub edata: u64,
    pub bss: u64,
    pub ebss: u64,
    pub gcdata_n: Field,
    pub gcdata_bytes: u64,
    pub gcbss_n: Field,
    pub gcbss_bytes: u64,
    pub next: u64,
}

/// `runtime.finblock` and `runtime.finalizer`: the queue of finalizers to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FinQueueFields {
    pub allfin: u64,
    pub alllink: u64,
    pub cnt: Field,
    pub fin: u64,
    pub block_size: u64,
    pub entry_size: u64,
    pub entry_slots: Vec<u64>,
}

/// Everything the heap walker reads, at link-time addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeapLayout {
    pub mheap: u64,
    pub allspans: u64,
    pub arenas: u64,
    pub pages_in_use: Option<u64>,
    pub span: SpanFields,
    pub metadata: PointerMetadata,
    pub special: SpecialFields,
    pub module: ModuleFields,
    pub firstmoduledata: u64,
    pub finq: Option<FinQueueFields>,
    /// `gcController.heapMarked` and `.heapLive`.
    pub heap_marked: Option<u64>,
    pub heap_live: Option<u64>,
}

impl SpecialKinds {
    /// The special record kinds of Go 1.`minor`.
    pub fn of(minor: u32) -> SpecialKinds {
        if minor <= 22 {
            SpecialKinds {
                finalizer: 1,
                weak_handle: None,
                cleanup: None,
            }
        } else if minor <= 24 {
            SpecialKinds {
                finalizer: 1,
                weak_handle: Some(2),
                cleanup: (minor >= 24).then_some(6),
            }
        } else {
            SpecialKinds {
                finalizer: 2,
                weak_handle: Some(3),
                cleanup: Some(7),
            }
        }
    }
}

impl HeapLayout {
    /// From DWARF when the executable has it, else from goat's table.
    pub fn load(prog: &GoProgram) -> Result<HeapLayout, HeapError> {
        let bin = prog.binary();
        match DwarfTypes::load(bin.debug_data()) {
            Ok(d) if bin.has_dwarf() => Self::from_dwarf(prog, &d),
            _ => Self::from_table(prog),
        }
    }

    /// From goat's table of the release (`table.rs`), at the addresses
    /// `locate.rs` finds without DWARF.
    pub fn from_table(prog: &GoProgram) -> Result<HeapLayout, HeapError> {
        let bin = prog.binary();
        let version = prog.version();
        if version.major != 1 {
            return Err(HeapError::NoDwarf);
        }
        // Before the addresses: a release without a row needs no search.
        let probe = super::locate::Addresses {
            mheap: 0,
            firstmoduledata: 0,
            allfin: None,
            gc_controller: None,
        };
        let goexperiment = bin.build_setting("GOEXPERIMENT");
        super::table::layout(version.minor, goexperiment, &probe).ok_or(HeapError::NoDwarf)?;
        let at = super::locate::locate(bin)?;
        super::table::layout(version.minor, goexperiment, &at).ok_or(HeapError::NoDwarf)
    }

    /// From the executable's DWARF.
    pub fn from_dwarf(prog: &GoProgram, d: &DwarfTypes) -> Result<HeapLayout, HeapError> {
        let bin = prog.binary();
        let minor = prog.version().minor;
        let missing = |what: &'static str| HeapError::Missing(what);
        let var = |name: &'static str| {
            d.variable_address(name)
                .or_else(|| bin.symbol(name))
                .ok_or(missing(name))
        };
        let field = |st: &'static str, name: &'static str| -> Result<Field, HeapError> {
            let layout = d.struct_layout(st).ok_or(missing(st))?;
            let f = layout.field(name).ok_or(missing(name))?;
            Ok(Field {
                off: f.offset,
                size: f.size.ok_or(missing(name))?,
            })
        };
        let off =
            |st: &'static str, path: &'static str| d.field_offset(st, path).ok_or(missing(path));
        let size_of = |st: &'static str| {
            d.struct_layout(st)
                .map(|l| l.size)
                .filter(|&s| s > 0)
                .ok_or(missing(st))
        };

        let span = {
            let f = |name| field("runtime.mspan", name);
            let large_type = (minor >= 22).then(|| f("largeType")).transpose()?;
            let mut s = SpanFields {
                size: 0,
                start_addr: f("startAddr")?,
                npages: f("npages")?,
                nelems: f("nelems")?,
                freeindex: f("freeindex")?,
                alloc_count: f("allocCount")?,
                spanclass: f("spanclass")?,
                state: Field {
                    off: off("runtime.mspan", "state")?,
                    size: 1,
                },
                elemsize: f("elemsize")?,
                alloc_bits: f("allocBits")?,
                specials: f("specials")?,
                large_type,
            };
            s.size = [
                s.start_addr,
                s.npages,
                s.nelems,
                s.freeindex,
                s.alloc_count,
                s.spanclass,
                s.state,
                s.elemsize,
                s.alloc_bits,
                s.specials,
            ]
            .iter()
            .chain(s.large_type.iter())
            .map(|f| f.off + f.size)
            .max()
            .unwrap_or(0);
            s
        };

        let metadata = if minor <= 19 {
            PointerMetadata::TwoBitBitmap {
                bitmap: off("runtime.heapArena", "bitmap")?,
            }
        } else if minor <= 21 {
            PointerMetadata::OneBitBitmap {
                bitmap: off("runtime.heapArena", "bitmap")?,
                no_more_ptrs: off("runtime.heapArena", "noMorePtrs")?,
            }
        } else {
            PointerMetadata::Headers {
                inline_mark_bits: green_tea(minor, bin.build_setting("GOEXPERIMENT")),
                mask_on_demand: minor >= 24,
            }
        };

        let kinds = SpecialKinds::of(minor);
        let slots_of = |st: &'static str, names: &[&'static str]| -> Vec<u64> {
            names.iter().filter_map(|n| d.field_offset(st, n)).collect()
        };
        let cleanup_slots = match d.struct_layout("runtime.specialCleanup") {
            None => Vec::new(),
            Some(l) => match (l.field("fn"), l.field("cleanup")) {
                (Some(f), _) => vec![f.offset],
                // Go 1.25+: a `cleanupFn` of three pointer words (call, fn, arg).
                (None, Some(f)) => (0..3).map(|i| f.offset + 8 * i).collect(),
                (None, None) => Vec::new(),
            },
        };
        let special = SpecialFields {
            next: field("runtime.special", "next")?,
            offset: field("runtime.special", "offset")?,
            kind: field("runtime.special", "kind")?,
            header_size: size_of("runtime.special")?,
            kinds,
            finalizer_slots: slots_of("runtime.specialfinalizer", &["fn", "fint", "ot"]),
            weak_handle_slots: slots_of("runtime.specialWeakHandle", &["handle"]),
            cleanup_slots,
        };

        let m = |path| off("runtime.moduledata", path);
        let module = ModuleFields {
            size: size_of("runtime.moduledata")?,
            data: m("data")?,
            edata: m("edata")?,
            bss: m("bss")?,
            ebss: m("ebss")?,
            gcdata_n: Field {
                off: m("gcdatamask.n")?,
                size: 4,
            },
            gcdata_bytes: m("gcdatamask.bytedata")?,
            gcbss_n: Field {
                off: m("gcbssmask.n")?,
                size: 4,
            },
            gcbss_bytes: m("gcbssmask.bytedata")?,
            next: m("next")?,
        };

        // `finblock` became `finBlock` in Go 1.25.
        let finblock = ["runtime.finBlock", "runtime.finblock"]
            .into_iter()
            .find(|name| d.struct_layout(name).is_some())
            .unwrap_or("runtime.finblock");
        let finq = (|| -> Result<FinQueueFields, HeapError> {
            Ok(FinQueueFields {
                allfin: var("runtime.allfin")?,
                alllink: off(finblock, "alllink")?,
                cnt: field(finblock, "cnt")?,
                fin: off(finblock, "fin")?,
                block_size: size_of(finblock)?,
                entry_size: size_of("runtime.finalizer")?,
                entry_slots: slots_of("runtime.finalizer", &["fn", "arg", "fint", "ot"]),
            })
        })()
        .ok();

        let controller = d
            .variable_address("runtime.gcController")
            .or_else(|| bin.symbol("runtime.gcController"));
        let controller_field = |path: &'static str| {
            let base = controller?;
            base.checked_add(d.field_offset("runtime.gcControllerState", path)?)
        };

        Ok(HeapLayout {
            mheap: var("runtime.mheap_")?,
            allspans: off("runtime.mheap", "allspans")?,
            arenas: off("runtime.mheap", "arenas")?,
            pages_in_use: d.field_offset("runtime.mheap", "pagesInUse"),
            span,
            metadata,
            special,
            module,
            firstmoduledata: var("runtime.firstmoduledata")?,
            finq,
            heap_marked: controller_field("heapMarked"),
            heap_live: controller_field("heapLive"),
        })
    }
}

/// Whether the runtime uses Green Tea GC's inline mark bits, which take the
/// last 128 bytes of small-object spans before their heap bits: the
/// default from Go 1.26 (`GOEXPERIMENT=nogreenteagc` turns it off), an
/// experiment in Go 1.25 (`GOEXPERIMENT=greenteagc`).
pub(super) fn green_tea(minor: u32, goexperiment: Option<&str>) -> bool {
    let named =
        |name: &str| goexperiment.is_some_and(|list| list.split(',').any(|e| e.trim() == name));
    match minor {
        0..=24 => false,
        25 => named("greenteagc"),
        _ => !named("nogreenteagc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn green_tea_follows_the_release_and_goexperiment() {
        assert!(!green_tea(24, Some("greenteagc")));
        assert!(!green_tea(25, None));
        assert!(green_tea(25, Some("arenas,greenteagc")));
        assert!(green_tea(26, None));
        assert!(green_tea(27, Some("arenas")));
        assert!(!green_tea(27, Some("nogreenteagc")));
    }

    #[test]
    fn a_field_reads_its_own_width() {
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(Field { off: 1, size: 2 }.get(&bytes), Some(0x0302));
        assert_eq!(
            Field { off: 1, size: 8 }.get(&bytes),
            Some(0x0908070605040302)
        );
        assert_eq!(Field { off: 2, size: 8 }.get(&bytes), None);
        assert_eq!(Field { off: 0, size: 3 }.get(&bytes), None);
        assert_eq!(
            Field {
                off: u64::MAX,
                size: 8
            }
            .get(&bytes),
            None
        );
    }
}
