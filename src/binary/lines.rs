//! Line tables for execution control: where each source line of a function
//! starts (pclntab's pcln/pcfile tables, present even without DWARF) and
//! where a function's prologue ends (DWARF's `prologue_end`, else the
//! pcsp table).

use gimli::{EndianSlice, LittleEndian};

use super::dwarf::dwarf_sections;
use super::pclntab::Func;
use super::pcvalue::{self, PcValueError};
use super::BinaryError;

/// A run of instructions of one function attributed to one source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    /// Link-time `[start, end)`.
    pub start: u64,
    pub end: u64,
    pub file: String,
    pub line: u32,
}

/// Most rows read from one function's table (a hostile table cannot make
/// goat allocate without end; real functions have a few hundred).
const MAX_ROWS: usize = 1 << 16;

impl<'a> Func<'a> {
    /// `(start, end, value)` runs of one pc-value table of this function.
    pub(super) fn runs(
        &self,
        off: u32,
        what: &'static str,
    ) -> Result<Vec<(u64, u64, i32)>, BinaryError> {
        let (pctab, base) = self.tab.pctab_bytes()?;
        pcvalue::runs(pctab, off, self.entry(), MAX_ROWS).map_err(|e| match e {
            PcValueError::Malformed(at) => BinaryError::Malformed {
                what,
                offset: (base + at) as u64,
            },
            PcValueError::NotCovered => BinaryError::NoLineInfo { pc: self.entry() },
        })
    }

    /// The function's instructions as runs of (file, line), in pc order;
    /// consecutive runs of the same line are merged.
    pub fn line_rows(&self) -> Result<Vec<LineRow>, BinaryError> {
        let (_, _, pcln) = self.table_offsets();
        let mut rows: Vec<LineRow> = Vec::new();
        for (start, end, line) in self.runs(pcln, "pcln")? {
            let Ok(line) = u32::try_from(line) else {
                continue;
            };
            let (file, _) = self.file_line(start)?;
            match rows.last_mut() {
                Some(last) if last.end == start && last.line == line && last.file == file => {
                    last.end = end;
                }
                _ => rows.push(LineRow {
                    start,
                    end,
                    file: file.to_string(),
                    line,
                }),
            }
        }
        Ok(rows)
    }

    /// Link-time end of the function (the end of its last table row).
    pub fn end(&self) -> Result<u64, BinaryError> {
        let (pcsp, _, _) = self.table_offsets();
        Ok(self
            .runs(pcsp, "pcsp")?
            .last()
            .map_or(self.entry(), |r| r.1))
    }

    /// The first pc after the stack-growth check, when the pcsp table
    /// shows one: the stack check runs with nothing pushed, so the first
    /// pc with a non-zero SP delta is past it (and past the `morestack`
    /// retry, which restarts the function from its entry). `None` for a
    /// function that never moves SP (no frame, hence no check to skip).
    pub fn frame_setup_pc(&self) -> Result<Option<u64>, BinaryError> {
        let (pcsp, _, _) = self.table_offsets();
        let runs = self.runs(pcsp, "pcsp")?;
        Ok(runs.iter().find(|r| r.2 != 0).map(|r| r.0))
    }
}

/// What the DWARF line programs add to pclntab's lines, as sorted
/// addresses (both empty without DWARF).
#[derive(Debug, Default, Clone)]
pub struct DwarfLines {
    /// Rows marked `prologue_end`: Go marks the instruction that finishes
    /// the frame setup, after the stack-growth check, for Delve's sake.
    pub prologue_ends: Vec<u64>,
    /// Rows marked `is_stmt`: where a statement begins (the optimizer
    /// moves instructions of other lines in between; those are not places
    /// a `next` should stop).
    pub stmts: Vec<u64>,
}

/// Reads the [`DwarfLines`] of an executable.
pub fn dwarf_lines(elf: &[u8]) -> DwarfLines {
    let mut out = DwarfLines::default();
    let Ok(sections) = dwarf_sections(elf) else {
        return out;
    };
    let load = |id: gimli::SectionId| -> Result<EndianSlice<'_, LittleEndian>, ()> {
        let data = sections.get(id.name()).map_or(&[][..], |d| &d[..]);
        Ok(EndianSlice::new(data, LittleEndian))
    };
    let Ok(dwarf) = gimli::Dwarf::load(load) else {
        return out;
    };
    let mut units = dwarf.units();
    // Each step consumes a unit or a row, so both loops end with the data;
    // the caps bound a hostile file's cost.
    for _ in 0..100_000 {
        let Ok(Some(header)) = units.next() else {
            break;
        };
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Some(program) = unit.line_program.clone() else {
            continue;
        };
        let mut rows = program.rows();
        for _ in 0..10_000_000 {
            match rows.next_row() {
                Ok(Some((_, row))) => {
                    if row.prologue_end() {
                        out.prologue_ends.push(row.address());
                    }
                    if row.is_stmt() && !row.end_sequence() {
                        out.stmts.push(row.address());
                    }
                }
                _ => break,
            }
        }
    }
    for v in [&mut out.prologue_ends, &mut out.stmts] {
        v.sort_unstable();
        v.dedup();
    }
    out
}

/// Where a thread's current `g` pointer sits relative to its fs_base, as
/// Delve finds it: an internally linked Go binary keeps it at `fs-8`; an
/// externally linked one (cgo) has the linker place `runtime.tlsg` in the
/// TLS block, which ends at fs_base (its size rounded up as linkers do).
pub fn g_tls_offset(elf: &[u8], tlsg: Option<u64>) -> i64 {
    use object::read::elf::{ElfFile64, ProgramHeader};
    let le = object::LittleEndian;
    let tls = ElfFile64::<object::LittleEndian>::parse(elf)
        .ok()
        .and_then(|f| {
            f.elf_program_headers()
                .iter()
                .find(|p| p.p_type(le) == object::elf::PT_TLS)
                .map(|p| (p.p_vaddr(le), p.p_memsz(le), p.p_align(le)))
        });
    match (tls, tlsg) {
        (Some((vaddr, memsz, align)), Some(tlsg)) => {
            let align = align.max(1);
            let size = memsz.wrapping_add(vaddr.wrapping_neg().wrapping_sub(memsz) & (align - 1));
            tlsg.wrapping_sub(size) as i64
        }
        _ => -8,
    }
}
