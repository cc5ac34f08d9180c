//! Finding `runtime.firstmoduledata` in the file, for the facts pclntab does
//! not hold: the text start (Go 1.26+ no longer stores it in the pcHeader),
//! `gofunc`, the base of funcdata offsets, and `[types, etypes)`, where type
//! descriptors and their names live (a `nameOff` is relative to `types`).
//!
//! With a symbol table the address is `runtime.firstmoduledata`; in a
//! stripped binary it is the 8-byte word in a writable segment equal to the
//! pclntab's address (`moduledata.pcHeader` is the first field), confirmed by
//! the fields that follow it.
//!
//! Layout (runtime/symtab.go `moduledata`, 8-byte words, slices are 3 words):
//! pcHeader 0, funcnametab 8, cutab 32, filetab 56, pctab 80, pclntable 104,
//! ftab 128, findfunctab 152, minpc 160, maxpc 168, text 176, etext 184.
//! `gofunc` moved as fields were added before it:
//! - Go 1.18-1.19: `... types, etypes, rodata, gofunc` → 304;
//! - Go 1.20-1.24 (`covctrs, ecovctrs` added) → 320;
//! - later (`typedesclen`, `itaboffset, itabsize` added) → 344.
//!
//! In every layout `rodata` is the word right before `gofunc`; it must equal
//! the start of `.rodata` (or of the read-only PT_LOAD), which picks the
//! layout when the version is unknown. `types` is at 280 (etypes 288) in
//! the first layout and at 296 in the others; `etypes` follows it at 304,
//! or at 312 after `typedesclen` in the last.

use super::image::Image;

const OFF_FUNCNAMETAB: u64 = 8;
const OFF_FTAB: u64 = 128;
const OFF_FTAB_LEN: u64 = 136;
const OFF_TEXT: u64 = 176;

/// `gofunc` offsets, newest layout first.
const GOFUNC_OFFSETS: [u64; 3] = [344, 320, 304];

/// Offsets of `types` and `etypes` in the layout whose `gofunc` is at `gofunc`.
fn types_offsets(gofunc: u64) -> (u64, u64) {
    match gofunc {
        304 => (280, 288),
        320 => (296, 304),
        _ => (296, 312),
    }
}

/// What pclntab needs from the moduledata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModuleData {
    pub addr: u64,
    pub text: u64,
    pub gofunc: Option<u64>,
    /// Link-time `[types, etypes)`.
    pub types: Option<(u64, u64)>,
    /// Link-time `rodata`, the word before `gofunc`.
    pub rodata: Option<u64>,
}

/// The pcHeader facts used to confirm a candidate.
pub(crate) struct Expect {
    pub pclntab_addr: u64,
    pub funcname_offset: u64,
    pub pcln_offset: u64,
    pub nfunc: u64,
}

pub(crate) fn locate(
    image: &Image,
    expect: &Expect,
    symbol: Option<u64>,
    go_minor: Option<u32>,
) -> Option<ModuleData> {
    let addr = symbol
        .filter(|&a| matches(image, a, expect))
        .or_else(|| scan(image, expect))?;
    let text = image.read_u64(addr.wrapping_add(OFF_TEXT))?;
    let gofunc = gofunc(image, addr, go_minor);
    Some(ModuleData {
        addr,
        text,
        gofunc: gofunc.map(|g| g.1),
        types: gofunc.and_then(|(off, _)| types(image, addr, off)),
        rodata: gofunc.and_then(|(off, _)| image.read_u64(addr.wrapping_add(off - 8))),
    })
}

fn matches(image: &Image, addr: u64, e: &Expect) -> bool {
    let word = |off: u64| image.read_u64(addr.wrapping_add(off));
    word(0) == Some(e.pclntab_addr)
        && word(OFF_FUNCNAMETAB) == e.pclntab_addr.checked_add(e.funcname_offset)
        && word(OFF_FTAB) == e.pclntab_addr.checked_add(e.pcln_offset)
        && word(OFF_FTAB_LEN) == e.nfunc.checked_add(1)
}

/// Scans writable segments for the pcHeader pointer.
fn scan(image: &Image, e: &Expect) -> Option<u64> {
    let needle = e.pclntab_addr.to_le_bytes();
    let bytes = image.bytes();
    for seg in image.segments().iter().filter(|s| s.writable) {
        let Ok(start) = usize::try_from(seg.offset) else {
            continue;
        };
        let end = usize::try_from(seg.offset.saturating_add(seg.filesz))
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let Some(data) = bytes.get(start..end) else {
            continue;
        };
        // Segments start page-aligned in the file and in memory, so word
        // alignment of the offset within the segment is alignment in memory.
        let skip = (8 - (seg.vaddr % 8) as usize) % 8;
        let Some(data) = data.get(skip..) else {
            continue;
        };
        for (i, chunk) in data.chunks_exact(8).enumerate() {
            if chunk == needle {
                let addr = seg.vaddr + (skip + i * 8) as u64;
                if matches(image, addr, e) {
                    return Some(addr);
                }
            }
        }
    }
    None
}

/// `[types, etypes)` of the layout whose `gofunc` is at `gofunc_off`, when
/// both ends are in the file and in order.
fn types(image: &Image, md: u64, gofunc_off: u64) -> Option<(u64, u64)> {
    let (t, e) = types_offsets(gofunc_off);
    let types = image.read_u64(md.wrapping_add(t))?;
    let etypes = image.read_u64(md.wrapping_add(e))?;
    let len = etypes.checked_sub(types)?;
    (len > 0 && image.file_offset(types, len).is_some()).then_some((types, etypes))
}

/// Reads `gofunc` and the offset it is at, choosing the layout by version
/// and confirming it by the `rodata` field before it.
fn gofunc(image: &Image, md: u64, go_minor: Option<u32>) -> Option<(u64, u64)> {
    let rodata_starts: Vec<u64> = image
        .section(".rodata")
        .map(|s| s.addr)
        .into_iter()
        .chain(
            image
                .segments()
                .iter()
                .filter(|s| !s.writable && !s.executable)
                .map(|s| s.vaddr),
        )
        .collect();
    let by_version = go_minor.map(|minor| match minor {
        0..=19 => 304,
        20..=24 => 320,
        _ => 344,
    });
    let mut candidates: Vec<u64> = by_version.into_iter().collect();
    candidates.extend(GOFUNC_OFFSETS.iter().filter(|&&o| Some(o) != by_version));
    let confirmed = candidates.iter().find_map(|&off| {
        let rodata = image.read_u64(md.wrapping_add(off - 8))?;
        let gofunc = image.read_u64(md.wrapping_add(off))?;
        (rodata_starts.contains(&rodata)
            && gofunc >= rodata
            && image.file_offset(gofunc, 1).is_some())
        .then_some((off, gofunc))
    });
    // With a known version, trust its layout even if `.rodata` is unknown.
    confirmed.or_else(|| {
        let off = by_version?;
        let gofunc = image.read_u64(md.wrapping_add(off))?;
        image.file_offset(gofunc, 1).map(|_| (off, gofunc))
    })
}
