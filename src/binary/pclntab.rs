//! Go's pc/line table (runtime `pcHeader`, `functab`, `_func`), Go 1.18+.
//!
//! Layout (runtime/symtab.go, cmd/link/internal/ld/pcln.go): a header
//! (magic u32, pad, pad, minLC u8, ptrSize u8, nfunc, nfiles, textStart,
//! then the offsets of funcnametab, cutab, filetab, pctab and pclntable from
//! the header, all 8-byte words); pclntable starts with nfunc+1
//! `functab {entryoff u32, funcoff u32}` pairs sorted by entry (the last
//! entry is the end of text), followed by the `_func` records they point at.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::image::Image;
use super::moduledata::{self, Expect};
use super::pcvalue::{self, PcValueError};
use super::BinaryError;

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;
const HEADER_LEN: usize = 72;
/// Fixed part of `_func` before the pcdata/funcdata arrays.
const FUNC_LEN_GO118: usize = 40;
const FUNC_LEN_GO120: usize = 44;
const FUNCDATA_NONE: u32 = u32::MAX;

/// Which revision of the table layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Go 1.18 and 1.19.
    Go118,
    /// Go 1.20 and later (`_func.startLine`, new `inlinedCall`).
    Go120,
}

/// The parsed function table. Owns a reference to the executable's bytes
/// and the file ranges of each sub-table.
pub struct Pclntab {
    pub(super) image: Arc<Image>,
    pub(super) layout: Layout,
    nfunc: usize,
    text_start: u64,
    pub(super) gofunc: Option<u64>,
    moduledata: Option<u64>,
    /// Link-time `[runtime.types, runtime.etypes)`.
    types: Option<(u64, u64)>,
    /// Link-time `moduledata.rodata`, the base of stack objects' `gcdataoff`.
    rodata: Option<u64>,
    funcnametab: Range<usize>,
    cutab: Range<usize>,
    filetab: Range<usize>,
    pctab: Range<usize>,
    pclntable: Range<usize>,
    by_name: OnceLock<HashMap<Box<str>, u32>>,
}

impl std::fmt::Debug for Pclntab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pclntab")
            .field("layout", &self.layout)
            .field("nfunc", &self.nfunc)
            .field("text_start", &format_args!("{:#x}", self.text_start))
            .field("gofunc", &self.gofunc)
            .finish_non_exhaustive()
    }
}

fn malformed(what: &'static str, offset: usize) -> BinaryError {
    BinaryError::Malformed {
        what,
        offset: offset as u64,
    }
}

fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b = bytes.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], off: usize) -> Option<u64> {
    let b = bytes.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// The NUL-terminated string at `off` within `region`.
fn cstr_in<'b>(bytes: &'b [u8], region: &Range<usize>, off: usize) -> Result<&'b str, BinaryError> {
    let start = region.start.checked_add(off).filter(|&s| s < region.end);
    let start =
        start.ok_or_else(|| malformed("string offset", region.start.saturating_add(off)))?;
    let tail = bytes
        .get(start..region.end)
        .ok_or_else(|| malformed("string", start))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed("unterminated string", start))?;
    std::str::from_utf8(&tail[..len]).map_err(|_| malformed("non-UTF-8 string", start))
}

impl Pclntab {
    /// Finds and validates the table in `image`. `symbol` looks up
    /// `.symtab` symbols (absent in stripped binaries).
    pub(super) fn parse(
        image: Arc<Image>,
        go_version: Option<&str>,
        symbol: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Pclntab, BinaryError> {
        let (addr, region) = locate(&image, symbol)?;
        let bytes = image.bytes();
        let base = region.start;
        let magic = u32_at(bytes, base).ok_or_else(|| malformed("pclntab header", base))?;
        let layout = match magic {
            MAGIC_GO118 => Layout::Go118,
            MAGIC_GO120 => Layout::Go120,
            _ => return Err(BinaryError::UnsupportedPclntab { magic }),
        };
        let header = bytes
            .get(base..base.saturating_add(HEADER_LEN))
            .filter(|h| h.len() == HEADER_LEN && base + HEADER_LEN <= region.end)
            .ok_or_else(|| malformed("pclntab header", base))?;
        if header.get(6..8) != Some(&[1, 8][..]) {
            return Err(malformed("pclntab header (minLC/ptrSize)", base + 6));
        }
        let word = |i: usize| u64_at(header, 8 + 8 * i).unwrap_or(u64::MAX);
        let nfunc = word(0);
        let header_text_start = word(2);
        let offsets: [u64; 5] = [word(3), word(4), word(5), word(6), word(7)];
        let region_len = (region.end - region.start) as u64;
        if offsets
            .iter()
            .any(|&o| o < HEADER_LEN as u64 || o > region_len)
        {
            return Err(malformed("pclntab table offsets", base + 32));
        }
        // Each table ends where the next one (in any order) begins.
        let range_of = |o: u64| -> Range<usize> {
            let end = offsets
                .iter()
                .copied()
                .filter(|&x| x > o)
                .min()
                .unwrap_or(region_len);
            base + o as usize..base + end as usize
        };
        let [funcname_off, cu_off, file_off, pc_off, pcln_off] = offsets;
        let pclntable = range_of(pcln_off);
        nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .filter(|&n| n <= (pclntable.end - pclntable.start) as u64)
            .ok_or_else(|| malformed("functab (nfunc too large)", base + 8))?;

        let expect = Expect {
            pclntab_addr: addr,
            funcname_offset: funcname_off,
            pcln_offset: pcln_off,
            nfunc,
        };
        let go_minor = go_version.and_then(super::GoVersion::go1_minor);
        let md = moduledata::locate(&image, &expect, symbol("runtime.firstmoduledata"), go_minor);
        // Go 1.18-1.25 store the text start in the header; later versions
        // leave 0 there and only the moduledata (or symbols) have it.
        let text_start = Some(header_text_start)
            .filter(|&t| t != 0)
            .or(md.map(|m| m.text))
            .or_else(|| symbol("runtime.text"))
            .or_else(|| image.section(".text").map(|s| s.addr))
            .ok_or_else(|| malformed("text start (no moduledata, symbols or .text)", base + 24))?;
        let gofunc = symbol("go:func.*")
            .or_else(|| symbol("go.func.*"))
            .or(md.and_then(|m| m.gofunc));

        Ok(Pclntab {
            layout,
            nfunc: nfunc as usize,
            text_start,
            gofunc,
            moduledata: md.map(|m| m.addr),
            types: symbol("runtime.types")
                .zip(symbol("runtime.etypes"))
                .or(md.and_then(|m| m.types)),
            rodata: symbol("runtime.rodata").or(md.and_then(|m| m.rodata)),
            funcnametab: range_of(funcname_off),
            cutab: range_of(cu_off),
            filetab: range_of(file_off),
            pctab: range_of(pc_off),
            pclntable,
            by_name: OnceLock::new(),
            image,
        })
    }

    /// Link-time address that function entry offsets are relative to.
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    pub fn func_count(&self) -> usize {
        self.nfunc
    }

    /// Link-time base of funcdata (`moduledata.gofunc`), if it was found.
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc
    }

    /// Link-time address of `runtime.firstmoduledata`, found by symbol or,
    /// in a stripped binary, by its pointer to the pclntab.
    pub fn moduledata(&self) -> Option<u64> {
        self.moduledata
    }

    /// Link-time `[types, etypes)`: type descriptors and their names (by
    /// symbol, else from the moduledata).
    pub fn types(&self) -> Option<(u64, u64)> {
        self.types
    }

    /// Link-time `moduledata.rodata` (by symbol, else from the moduledata):
    /// what a stack object record's `gcdataoff` counts from.
    pub fn rodata(&self) -> Option<u64> {
        self.rodata
    }

    /// The (entry offset, func offset) pair `i` of the functab.
    fn ftab(&self, i: usize) -> Option<(u32, u32)> {
        let off = self.pclntable.start.checked_add(i.checked_mul(8)?)?;
        let bytes = self.image.bytes();
        Some((u32_at(bytes, off)?, u32_at(bytes, off + 4)?))
    }

    /// The function containing link-time `pc`.
    pub fn find_func(&self, pc: u64) -> Option<Func<'_>> {
        self.func_at(self.func_index(pc)?).ok()
    }

    /// Link-time `[entry, end)` of the function containing `pc`.
    pub fn func_bounds(&self, pc: u64) -> Option<(u64, u64)> {
        let i = self.func_index(pc)?;
        let (start, _) = self.ftab(i)?;
        let (end, _) = self.ftab(i + 1)?;
        Some((
            self.text_start + u64::from(start),
            self.text_start + u64::from(end),
        ))
    }

    /// The functab index of the function containing link-time `pc`.
    fn func_index(&self, pc: u64) -> Option<usize> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        let (first, _) = self.ftab(0)?;
        let (end, _) = self.ftab(self.nfunc)?;
        if off < first || off >= end {
            return None;
        }
        // Invariant: entry(lo) <= off < entry(hi).
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ftab(mid)?.0 <= off {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Every function, in address order (those whose record is unreadable
    /// are left out).
    pub fn functions(&self) -> impl Iterator<Item = Func<'_>> + '_ {
        (0..self.nfunc).filter_map(|i| self.func_at(i).ok())
    }

    /// The function whose (undecorated) name is exactly `name`.
    pub fn func_by_name(&self, name: &str) -> Option<Func<'_>> {
        let index = self.by_name.get_or_init(|| {
            let mut map = HashMap::with_capacity(self.nfunc);
            for i in 0..self.nfunc {
                if let Ok(Ok(n)) = self.func_at(i).map(|f| f.name()) {
                    map.entry(n.into()).or_insert(i as u32);
                }
            }
            map
        });
        self.func_at(*index.get(name)? as usize).ok()
    }

    /// Decodes the `_func` of functab entry `i`.
    pub(super) fn func_at(&self, i: usize) -> Result<Func<'_>, BinaryError> {
        let bytes = self.image.bytes();
        let ftab_off = self.pclntable.start + i * 8;
        let (_, funcoff) = self
            .ftab(i)
            .ok_or_else(|| malformed("functab entry", ftab_off))?;
        let off = self
            .pclntable
            .start
            .checked_add(funcoff as usize)
            .ok_or_else(|| malformed("_func offset", ftab_off + 4))?;
        let fixed = match self.layout {
            Layout::Go118 => FUNC_LEN_GO118,
            Layout::Go120 => FUNC_LEN_GO120,
        };
        let rec = bytes
            .get(off..off.saturating_add(fixed))
            .filter(|r| r.len() == fixed && off + fixed <= self.pclntable.end)
            .ok_or_else(|| malformed("_func record", off))?;
        let field = |i: usize| u32_at(rec, 4 * i).unwrap_or(0);
        let (start_line, tail) = match self.layout {
            Layout::Go118 => (None, 36),
            Layout::Go120 => (Some(field(9) as i32), 40),
        };
        let f = Func {
            tab: self,
            off,
            fixed,
            entry: self.text_start.wrapping_add(u64::from(field(0))),
            name_off: field(1),
            args: field(2) as i32,
            deferreturn: field(3),
            pcsp: field(4),
            pcfile: field(5),
            pcln: field(6),
            npcdata: field(7),
            cu_offset: field(8),
            start_line,
            func_id: rec.get(tail).copied().unwrap_or(0),
            flag: rec.get(tail + 1).copied().unwrap_or(0),
            nfuncdata: rec.get(tail + 3).copied().unwrap_or(0),
        };
        let arrays = (f.npcdata as usize + f.nfuncdata as usize) * 4;
        if off + fixed + arrays > self.pclntable.end {
            return Err(malformed("_func pcdata/funcdata arrays", off + fixed));
        }
        Ok(f)
    }

    /// The pc-value tables' bytes and their file offset.
    pub(super) fn pctab_bytes(&self) -> Result<(&[u8], usize), BinaryError> {
        let bytes = self
            .image
            .bytes()
            .get(self.pctab.clone())
            .ok_or_else(|| malformed("pctab", self.pctab.start))?;
        Ok((bytes, self.pctab.start))
    }

    fn funcname(&self, name_off: u32) -> Result<&str, BinaryError> {
        cstr_in(self.image.bytes(), &self.funcnametab, name_off as usize)
    }

    fn value(
        &self,
        off: u32,
        entry: u64,
        pc: u64,
        table: &'static str,
    ) -> Result<Option<i32>, BinaryError> {
        if off == 0 {
            return Ok(None);
        }
        let pctab = self
            .image
            .bytes()
            .get(self.pctab.clone())
            .ok_or_else(|| malformed("pctab", self.pctab.start))?;
        match pcvalue::lookup(pctab, off, entry, pc) {
            Ok(v) => Ok(Some(v)),
            Err(PcValueError::NotCovered) => Err(BinaryError::PcNotCovered { table, pc }),
            Err(PcValueError::Malformed(at)) => Err(malformed(table, self.pctab.start + at)),
        }
    }
}

/// Finds the pclntab: its link-time address and file range.
fn locate(
    image: &Image,
    symbol: &dyn Fn(&str) -> Option<u64>,
) -> Result<(u64, Range<usize>), BinaryError> {
    let len = image.bytes().len();
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(sec) = image.section(name) {
            let off = sec.file_offset.ok_or(BinaryError::NotGo)? as usize;
            let end = off.saturating_add(sec.size as usize).min(len);
            if off >= end {
                return Err(malformed("pclntab section", off));
            }
            return Ok((sec.addr, off..end));
        }
    }
    let start = symbol("runtime.pclntab").ok_or(BinaryError::NotGo)?;
    let end = symbol("runtime.epclntab").ok_or(BinaryError::NotGo)?;
    let size = end.checked_sub(start).ok_or(BinaryError::NotGo)?;
    let off = image.file_offset(start, size).ok_or(BinaryError::NotGo)?;
    Ok((start, off..off + size as usize))
}

/// One function's `_func` record.
#[derive(Clone, Copy)]
pub struct Func<'a> {
    pub(super) tab: &'a Pclntab,
    /// File offset of the record.
    off: usize,
    fixed: usize,
    entry: u64,
    name_off: u32,
    args: i32,
    deferreturn: u32,
    pcsp: u32,
    pcfile: u32,
    pcln: u32,
    npcdata: u32,
    cu_offset: u32,
    start_line: Option<i32>,
    func_id: u8,
    flag: u8,
    nfuncdata: u8,
}

impl std::fmt::Debug for Func<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Func")
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("name", &self.name().unwrap_or("?"))
            .finish_non_exhaustive()
    }
}

/// One source-level frame at a pc: an inlined call or the physical function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFrame<'a> {
    pub function: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub func_id: u8,
    pub inlined: bool,
}

impl<'a> Func<'a> {
    /// Link-time entry address.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The name as stored (generic shapes included; see `name_for_print`).
    pub fn name(&self) -> Result<&'a str, BinaryError> {
        self.tab.funcname(self.name_off)
    }

    pub fn func_id(&self) -> u8 {
        self.func_id
    }

    /// `abi.FuncFlag` bits: TopFrame=1, SPWrite=2, Asm=4.
    pub fn flag(&self) -> u8 {
        self.flag
    }

    pub fn args_size(&self) -> i32 {
        self.args
    }

    /// Offset from the entry of the function's `deferreturn` call, 0 when
    /// it has none: where a frame that panicked continues if a deferred
    /// call recovers (the runtime's stack scan looks its maps up there).
    pub fn deferreturn(&self) -> u32 {
        self.deferreturn
    }

    /// Line of the `func` keyword (Go 1.20+).
    pub fn start_line(&self) -> Option<i32> {
        self.start_line
    }

    /// Whether the function has a pcsp table: an external one (the race
    /// detector's) has none, and its frame cannot be walked.
    pub fn has_sp_table(&self) -> bool {
        self.pcsp != 0
    }

    /// Offsets of the pcsp, pcfile and pcln tables in pctab.
    pub(super) fn table_offsets(&self) -> (u32, u32, u32) {
        (self.pcsp, self.pcfile, self.pcln)
    }

    /// Bytes the function has pushed on the stack at `pc` (0 at entry).
    pub fn sp_delta(&self, pc: u64) -> Result<i32, BinaryError> {
        self.tab
            .value(self.pcsp, self.entry, pc, "pcsp")?
            .ok_or(BinaryError::PcNotCovered { table: "pcsp", pc })
    }

    /// File and line of the physical function at `pc`.
    pub fn file_line(&self, pc: u64) -> Result<(&'a str, u32), BinaryError> {
        let tab = self.tab;
        let fileno = tab.value(self.pcfile, self.entry, pc, "pcfile")?;
        let line = tab.value(self.pcln, self.entry, pc, "pcln")?;
        let (Some(fileno), Some(line)) = (fileno, line) else {
            return Err(BinaryError::NoLineInfo { pc });
        };
        let (Ok(fileno), Ok(line)) = (u32::try_from(fileno), u32::try_from(line)) else {
            return Err(BinaryError::NoLineInfo { pc });
        };
        let bytes = tab.image.bytes();
        let slot = (self.cu_offset as usize)
            .checked_add(fileno as usize)
            .and_then(|i| i.checked_mul(4))
            .and_then(|o| tab.cutab.start.checked_add(o))
            .filter(|&o| o + 4 <= tab.cutab.end)
            .ok_or_else(|| malformed("cutab index", tab.cutab.start))?;
        let fileoff = u32_at(bytes, slot).ok_or_else(|| malformed("cutab", slot))?;
        if fileoff == u32::MAX {
            return Err(malformed("cutab (no file)", slot));
        }
        Ok((cstr_in(bytes, &tab.filetab, fileoff as usize)?, line))
    }

    /// The value of pcdata table `table` at `pc`; `None` if the function has
    /// no such table.
    pub fn pcdata(&self, table: u32, pc: u64) -> Result<Option<i32>, BinaryError> {
        if table >= self.npcdata {
            return Ok(None);
        }
        let slot = self.off + self.fixed + table as usize * 4;
        let off = u32_at(self.tab.image.bytes(), slot).ok_or_else(|| malformed("pcdata", slot))?;
        self.tab.value(off, self.entry, pc, "pcdata")
    }

    /// The offset in pctab of pcdata table `table`, if the function has it.
    pub(super) fn pcdata_offset(&self, table: u32) -> Option<u32> {
        if table >= self.npcdata {
            return None;
        }
        let slot = self.off + self.fixed + table as usize * 4;
        u32_at(self.tab.image.bytes(), slot).filter(|&o| o != 0)
    }

    /// The raw offset of funcdata slot `idx` from gofunc, if present.
    pub(super) fn funcdata_offset(&self, idx: u8) -> Option<u32> {
        if idx >= self.nfuncdata {
            return None;
        }
        let slot = self.off + self.fixed + (self.npcdata as usize + idx as usize) * 4;
        u32_at(self.tab.image.bytes(), slot).filter(|&o| o != FUNCDATA_NONE)
    }

    /// Link-time address of funcdata slot `idx`.
    pub fn funcdata(&self, idx: u8) -> Option<u64> {
        let off = self.funcdata_offset(idx)?;
        Some(self.tab.gofunc?.wrapping_add(u64::from(off)))
    }

    pub(super) fn name_at(&self, name_off: u32) -> Result<&'a str, BinaryError> {
        self.tab.funcname(name_off)
    }
}
