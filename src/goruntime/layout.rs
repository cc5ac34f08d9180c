//! Where the runtime keeps what goat reads: field offsets of `runtime.g` and
//! `runtime.m`, and the addresses of the globals. Resolved once per binary,
//! from DWARF when the binary has it; every field goat depends on is listed
//! here and nowhere else.

use thiserror::Error;

use super::table;
use super::version::GoVersion;
use crate::binary::dwarf::DwarfTypes;
use crate::binary::Binary;

/// Offsets inside `runtime.g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// Bytes to copy per goroutine: through the last field goat reads.
    pub size: u64,
    pub stack_lo: u64,
    pub stack_hi: u64,
    pub m: u64,
    pub sched_sp: u64,
    pub sched_pc: u64,
    pub syscallsp: u64,
    pub syscallpc: u64,
    pub atomicstatus: u64,
    pub goid: u64,
    pub waitsince: u64,
    pub waitreason: u64,
    pub lockedm: u64,
    pub gopc: u64,
    /// Go 1.21+.
    pub parent_goid: Option<u64>,
    /// `labels` (pprof labels) and `_defer` (the innermost deferred call):
    /// read on demand from a stopped target by the session's inspection
    /// commands, never copied per stop, so not counted in `size`.
    pub labels: u64,
    pub defers: u64,
    /// `_panic` and `sched.ctxt`: pointers the GC's stack scan follows
    /// (`stackroots`), read on demand like `_defer`.
    pub panic: u64,
    pub sched_ctxt: u64,
}

/// Offsets inside `runtime._defer`, a record of the goroutine's list of
/// deferred calls (open-coded defers have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferOffsets {
    /// The deferring function's SP, which places the record on a frame.
    pub sp: u64,
    /// Where the defer statement is.
    pub pc: u64,
    /// The deferred `func()`: a pointer to its funcval (code pointer first).
    pub fn_: u64,
    pub link: u64,
    /// Go 1.22+: `rangefunc` (a bool) marks a record whose `head` points
    /// to an `atomic.Pointer[_defer]` holding the defers of a range-over-func
    /// loop body.
    pub rangefunc: Option<u64>,
    pub head: Option<u64>,
    /// `heap` (a bool): the record was allocated on the heap, and the GC's
    /// stack scan keeps it alive.
    pub heap: u64,
}

/// Offsets inside `runtime.m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MOffsets {
    /// Bytes to copy per M: through the last field a stop copies (`g0` and
    /// `alllink` are read only from a core, see `crash_threads.rs`).
    pub size: u64,
    pub procid: u64,
    pub curg: u64,
    pub id: u64,
    /// The M's scheduling goroutine (its system stack), and the next M of
    /// `runtime.allm`.
    pub g0: u64,
    pub alllink: u64,
}

/// Everything goat needs to find goroutines, at link-time addresses.
#[derive(Debug, Clone)]
pub struct RuntimeLayout {
    pub g: GOffsets,
    pub m: MOffsets,
    pub defer: DeferOffsets,
    /// `runtime.allgs`, a `[]*g`; `None` in a binary without symbols (it is
    /// then found in memory, see `discover`).
    pub allgs: Option<u64>,
    /// `runtime.waitReasonStrings`, a `[N]string`, and N.
    pub wait_reasons: Option<(u64, u64)>,
}

#[derive(Debug, Error)]
pub enum LayoutError {
    #[error("the executable's DWARF lacks {0}")]
    Missing(&'static str),
    #[error("the executable has no DWARF, and goat has no table of runtime offsets for go1.{minor}: rebuild without -ldflags=-w")]
    NoTable { minor: u32 },
}

impl RuntimeLayout {
    /// The layout of a release goat was tested against, with the globals'
    /// addresses from the ELF symbol table.
    pub fn from_table(bin: &Binary, version: GoVersion) -> Result<RuntimeLayout, LayoutError> {
        let (g, m, defer) = table::offsets(version).ok_or(LayoutError::NoTable {
            minor: version.minor,
        })?;
        let allgs = bin.symbol("runtime.allgs");
        let wait_reasons = bin
            .symbol_range("runtime.waitReasonStrings")
            .map(|(addr, size)| (addr, size / 16));
        Ok(RuntimeLayout {
            g,
            m,
            defer,
            allgs,
            wait_reasons,
        })
    }

    pub(super) fn from_dwarf(d: &DwarfTypes, bin: &Binary) -> Result<RuntimeLayout, LayoutError> {
        let g = |path: &'static str| {
            d.field_offset("runtime.g", path)
                .ok_or(LayoutError::Missing(path))
        };
        let m = |path: &'static str| {
            d.field_offset("runtime.m", path)
                .ok_or(LayoutError::Missing(path))
        };
        let mut goffs = GOffsets {
            size: 0,
            stack_lo: g("stack.lo")?,
            stack_hi: g("stack.hi")?,
            m: g("m")?,
            sched_sp: g("sched.sp")?,
            sched_pc: g("sched.pc")?,
            syscallsp: g("syscallsp")?,
            syscallpc: g("syscallpc")?,
            atomicstatus: g("atomicstatus")?,
            goid: g("goid")?,
            waitsince: g("waitsince")?,
            waitreason: g("waitreason")?,
            lockedm: g("lockedm")?,
            gopc: g("gopc")?,
            parent_goid: d.field_offset("runtime.g", "parentGoid"),
            labels: g("labels")?,
            defers: g("_defer")?,
            panic: g("_panic")?,
            sched_ctxt: g("sched.ctxt")?,
        };
        let d_ = |path: &'static str| {
            d.field_offset("runtime._defer", path)
                .ok_or(LayoutError::Missing(path))
        };
        let defer = DeferOffsets {
            sp: d_("sp")?,
            pc: d_("pc")?,
            fn_: d_("fn")?,
            link: d_("link")?,
            rangefunc: d.field_offset("runtime._defer", "rangefunc"),
            head: d.field_offset("runtime._defer", "head"),
            heap: d_("heap")?,
        };
        goffs.size = goffs.max_field_end();
        let moffs = MOffsets {
            procid: m("procid")?,
            curg: m("curg")?,
            id: m("id")?,
            g0: m("g0")?,
            alllink: m("alllink")?,
            size: 0,
        };
        let moffs = MOffsets {
            size: moffs.procid.max(moffs.curg).max(moffs.id) + 8,
            ..moffs
        };
        let allgs = d
            .variable_address("runtime.allgs")
            .or_else(|| bin.symbol("runtime.allgs"));
        let wait_reasons = d
            .variable_address("runtime.waitReasonStrings")
            .and_then(|addr| {
                let (_, size) = d.variable_type("runtime.waitReasonStrings")?;
                Some((addr, size / 16))
            });
        Ok(RuntimeLayout {
            g: goffs,
            m: moffs,
            defer,
            allgs,
            wait_reasons,
        })
    }
}

impl GOffsets {
    pub(super) fn max_field_end(&self) -> u64 {
        let fields = [
            self.stack_lo,
            self.stack_hi,
            self.m,
            self.sched_sp,
            self.sched_pc,
            self.syscallsp,
            self.syscallpc,
            self.atomicstatus,
            self.goid,
            self.waitsince,
            self.waitreason,
            self.lockedm,
            self.gopc,
            self.parent_goid.unwrap_or(0),
        ];
        fields.iter().max().copied().unwrap_or(0) + 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback table agrees with DWARF for every release built here.
    #[test]
    fn table_matches_dwarf_for_every_fixture() {
        let bins = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin");
        let Ok(dirs) = std::fs::read_dir(&bins) else {
            panic!(
                "no fixtures in {}: run scripts/build-fixtures",
                bins.display()
            );
        };
        let mut checked = 0;
        for dir in dirs.filter_map(Result::ok) {
            let Ok(bin) = Binary::open(&dir.path().join("states")) else {
                continue;
            };
            let Ok(dwarf) = DwarfTypes::load(bin.debug_data()) else {
                continue;
            };
            let version = GoVersion::parse(bin.go_version().unwrap()).unwrap();
            let from_dwarf = RuntimeLayout::from_dwarf(&dwarf, &bin).unwrap();
            let from_table = RuntimeLayout::from_table(&bin, version).unwrap();
            assert_eq!(from_table.g, from_dwarf.g, "{}", dir.path().display());
            assert_eq!(from_table.m, from_dwarf.m, "{}", dir.path().display());
            assert_eq!(
                from_table.defer,
                from_dwarf.defer,
                "{}",
                dir.path().display()
            );
            assert_eq!(from_table.allgs, from_dwarf.allgs);
            assert_eq!(from_table.wait_reasons, from_dwarf.wait_reasons);
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} fixtures with DWARF");
    }
}
