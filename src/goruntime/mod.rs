//! The Go runtime's scheduler state as the target's memory holds it:
//! `allgs`, each `runtime.g`, the Ms, and the goroutine stacks.
//!
//! A dump is two halves: [`GoProgram::capture`] copies bytes while the target
//! is stopped; [`GoProgram::decode`] turns them into [`Goroutine`]s after it
//! has resumed.

// Parses what the target or its files hold: no `unsafe` is needed here,
// so none can creep in.
#![forbid(unsafe_code)]

mod args;
mod brief;
mod capture_plan;
mod collect;
mod crash_threads;
mod decode;
mod decoded;
pub mod defers;
mod discover;
pub mod gcphase;
#[cfg(test)]
pub(crate) mod hostile_tests;
pub mod labels;
mod layout;
mod layout_check;
mod model;
pub mod precopy;
mod signal_frame;
mod stack_window;
pub mod stackroots;
mod table;
mod unwind;
mod version;
pub mod waits;

use std::path::Path;

use thiserror::Error;

pub use collect::{Capture, CaptureError, CAPTURE_BUDGET, SPILL_MIN_BYTES};
pub use discover::Globals;
pub use layout::{LayoutError, RuntimeLayout};
pub use layout_check::Fit;

pub use brief::{BriefScratch, Briefs, GoroutineBrief, StackFacts};
pub use decode::{Decoder, CHUNK_GOROUTINES};
pub use decoded::{GoroutineView, PriorWalk};
pub use model::{CreatedBy, Dump, DumpInfo, Elision, Frame, FrameRef, Goroutine, MachineRef};
pub use stackroots::{stack_pointer_slot_values, stack_pointer_slots, ScanStart, StackScan};
pub use unwind::PcHasher;
pub use version::{GoVersion, OLDEST_SUPPORTED};

use crate::binary::{Binary, BinaryError};
use crate::process::procfs::{self, Who};
use crate::process::{Mapping, Memory, MemoryExt, Target};

#[derive(Debug, Error)]
pub enum GoError {
    // Transparent: the inner error's text and cause, said once (a `{0}`
    // message over a `#[from]` source printed the text twice in a chain).
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("it has neither Go build information nor a runtime.buildVersion goat can find")]
    NoVersion,
    /// No layout goat knows fits the goroutines it holds: reading on would
    /// print a plausible wrong dump.
    #[error("unknown runtime layout for {version}: {tried} {why}; goat reads an unknown runtime only from DWARF (rebuild without -ldflags=-w)")]
    UnknownLayout {
        version: String,
        /// "no layout goat has is near it" or "the layouts of go1.X, go1.Y
        /// do not fit its goroutines:".
        tried: String,
        why: String,
    },
    #[error("{found} is older than the oldest Go release goat reads (go1.{oldest})")]
    TooOld { found: String, oldest: u32 },
    #[error("cannot find runtime.allgs: the executable has no symbols, and no goroutine list was found in its .bss")]
    NoAllgs,
    /// A caller skipped [`GoProgram::settle_layout`].
    #[error("the runtime layout from goat's table was not checked against the target")]
    LayoutUnchecked,
    #[error("cannot find the executable {0} among the process's mappings")]
    NotMapped(String),
}

/// A Go executable, ready to read goroutines of processes running it.
pub struct GoProgram {
    bin: Binary,
    layout: RuntimeLayout,
    origin: LayoutOrigin,
    version: GoVersion,
    version_text: String,
    /// The DWARF index, loaded on first need by what reads more than
    /// the layout (`waits`: struct offsets and variables' field names).
    dwarf: std::sync::OnceLock<Option<crate::binary::dwarf::DwarfTypes>>,
}

/// Where a program's runtime layout came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutOrigin {
    /// The executable's DWARF: the compiler's own word.
    Dwarf,
    /// goat's table of releases, for a binary without DWARF: a guess from
    /// the version string until [`GoProgram::settle_layout`] checked it on
    /// the target's goroutines.
    Table {
        /// The rows to try, the version string's own release first.
        candidates: Vec<GoVersion>,
        /// The row that fit, once checked.
        fits: Option<GoVersion>,
    },
}

impl std::fmt::Display for LayoutOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayoutOrigin::Dwarf => f.write_str("from DWARF"),
            LayoutOrigin::Table { fits: Some(v), .. } => {
                write!(
                    f,
                    "go1.{}'s from goat's table, checked on its goroutines",
                    v.minor
                )
            }
            LayoutOrigin::Table { fits: None, .. } => f.write_str("from goat's table, unchecked"),
        }
    }
}

impl GoProgram {
    /// Loads the executable's symbol tables and runtime layout.
    pub fn load(bin: Binary) -> Result<GoProgram, GoError> {
        let version_text = bin.go_version().ok_or(GoError::NoVersion)?.to_string();
        // A development build (`devel ...`) is taken as the newest release.
        let version = GoVersion::parse(&version_text).unwrap_or(GoVersion {
            major: 1,
            minor: u32::MAX,
        });
        if version < OLDEST_SUPPORTED {
            return Err(GoError::TooOld {
                found: version_text,
                oldest: OLDEST_SUPPORTED.minor,
            });
        }
        bin.pclntab()?;
        let (layout, origin) = match crate::binary::dwarf::DwarfTypes::load(bin.debug_data()) {
            Ok(dwarf) => (
                RuntimeLayout::from_dwarf(&dwarf, &bin)?,
                LayoutOrigin::Dwarf,
            ),
            Err(_) => {
                let candidates = table::candidates(version);
                let first = candidates.first().copied().ok_or(GoError::UnknownLayout {
                    version: version_text.clone(),
                    tried: "goat has no layout near it".into(),
                    why: String::new(),
                })?;
                let layout = RuntimeLayout::from_table(&bin, first)?;
                let fits = None;
                (layout, LayoutOrigin::Table { candidates, fits })
            }
        };
        Ok(GoProgram {
            bin,
            layout,
            origin,
            version,
            version_text,
            dwarf: std::sync::OnceLock::new(),
        })
    }

    /// The executable's DWARF index, when it has DWARF (loaded once).
    pub(crate) fn dwarf_types(&self) -> Option<&crate::binary::dwarf::DwarfTypes> {
        self.dwarf
            .get_or_init(|| crate::binary::dwarf::DwarfTypes::load(self.bin.debug_data()).ok())
            .as_ref()
    }

    /// Where the runtime layout came from.
    /// The runtime layout in use.
    pub fn layout(&self) -> &RuntimeLayout {
        &self.layout
    }

    pub fn layout_origin(&self) -> &LayoutOrigin {
        &self.origin
    }

    /// The version string as the binary holds it ("go1.24.11").
    pub fn version_text(&self) -> &str {
        &self.version_text
    }

    /// Checks a layout taken from goat's table against the goroutines in
    /// `mem` (a process at load bias `bias`, or a core), trying the rows of
    /// neighbouring releases when the version string's own does not fit,
    /// and keeps the one that fits. A layout from DWARF is taken as it is.
    /// Returns what the check saw: the globals and how many goroutines.
    pub fn settle_layout(&mut self, mem: &dyn Memory, bias: u64) -> Result<Fit, GoError> {
        let candidates = match &self.origin {
            LayoutOrigin::Dwarf | LayoutOrigin::Table { fits: Some(_), .. } => {
                let globals = self.locate(mem, bias)?;
                // The length word of the `[]*g` header.
                let goroutines = MemoryExt::read_u64(mem, globals.allgs.wrapping_add(8))
                    .map_err(|_| GoError::NoAllgs)?;
                return Ok(Fit {
                    globals,
                    goroutines,
                });
            }
            LayoutOrigin::Table { candidates, .. } => candidates.clone(),
        };
        let unknown = |why: String| GoError::UnknownLayout {
            version: self.version_text.clone(),
            tried: format!(
                "the layouts of {} do not fit its goroutines:",
                candidates
                    .iter()
                    .map(|c| format!("go1.{}", c.minor))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            why,
        };
        let code = layout_check::Code::new(&self.bin, bias).map_err(|e| unknown(e.to_string()))?;
        let mut first_why = None;
        for release in &candidates {
            let layout = RuntimeLayout::from_table(&self.bin, *release)?;
            match layout_check::check(&layout, &code, mem) {
                Ok(fit) => {
                    self.layout = layout;
                    self.origin = LayoutOrigin::Table {
                        candidates: candidates.clone(),
                        fits: Some(*release),
                    };
                    return Ok(fit);
                }
                Err(why) => {
                    first_why.get_or_insert(format!("go1.{}: {why}", release.minor));
                }
            }
        }
        Err(unknown(first_why.unwrap_or_default()))
    }

    pub fn binary(&self) -> &Binary {
        &self.bin
    }

    pub fn version(&self) -> GoVersion {
        self.version
    }

    /// The pprof labels of the goroutine whose `runtime.g` is at `gp`
    /// (run-time address), sorted by key.
    pub fn labels(
        &self,
        mem: &dyn Memory,
        gp: u64,
    ) -> Result<Vec<(String, String)>, labels::LabelError> {
        let at = gp
            .checked_add(self.layout.g.labels)
            .ok_or(labels::LabelError::Overflow)?;
        labels::read(mem, self.version, at)
    }

    /// The pprof labels of every goroutine of `cap`, their `g.labels`
    /// words read from the capture and the label sets from `sets_mem` (the
    /// stopped target, or a core): see [`labels::LabelTable`].
    pub fn label_table(&self, cap: &Capture, sets_mem: &dyn Memory) -> labels::LabelTable {
        labels::LabelTable::read(
            &cap.mem.reader(),
            sets_mem,
            self.version,
            self.layout.g.labels,
            &cap.gs,
        )
    }

    /// `g.stack.hi` of the goroutine whose `runtime.g` is at `gp`: where
    /// frame offsets (Delve's `stack -offsets`) count from.
    pub fn stack_hi(&self, mem: &dyn Memory, gp: u64) -> Option<u64> {
        let at = gp.checked_add(self.layout.g.stack_hi)?;
        crate::process::MemoryExt::read_u64(mem, at).ok()
    }

    /// The deferred calls pending on the goroutine whose `runtime.g` is at
    /// `gp`, innermost first.
    pub fn defers(&self, mem: &dyn Memory, gp: u64) -> defers::Defers {
        match gp.checked_add(self.layout.g.defers) {
            Some(at) => defers::read(mem, &self.layout.defer, at),
            None => defers::Defers {
                calls: Vec::new(),
                unreadable: Some(format!("runtime.g at {gp:#x} overflows")),
            },
        }
    }

    /// Run-time minus link-time address of the executable's image, from the
    /// process's mappings (non-zero for PIE).
    pub fn load_bias(&self, mappings: &[Mapping], exe: &Path) -> Result<u64, GoError> {
        load_bias(mappings, exe, self.bin.link_base())
    }

    /// Where the runtime's globals are in a process (or core) at `bias`:
    /// from symbols or DWARF, or, in a stripped binary, found in `mem`.
    /// A layout from goat's table is used only once
    /// [`Self::settle_layout`] has checked it.
    pub fn locate(&self, mem: &dyn Memory, bias: u64) -> Result<Globals, GoError> {
        if let LayoutOrigin::Table { fits: None, .. } = self.origin {
            return Err(GoError::LayoutUnchecked);
        }
        discover::locate(&self.bin, &self.layout, mem, bias).ok_or(GoError::NoAllgs)
    }

    /// Before the stop: an empty capture sized from the running target, so
    /// the stop itself spends no time allocating.
    pub fn prepare_capture(&self, mem: &dyn Memory, globals: &Globals) -> Capture {
        collect::prepare(mem, &self.layout, globals)
    }

    /// An empty capture for a copy made while the target runs: kept in
    /// an unlinked temporary file when large (see
    /// [`collect::prepare_spilled`]). Fails only when that file cannot be
    /// made.
    pub fn prepare_capture_spilled(
        &self,
        mem: &dyn Memory,
        globals: &Globals,
    ) -> std::io::Result<Capture> {
        collect::prepare_spilled(mem, &self.layout, globals)
    }

    /// [`Self::prepare_capture`] for [`Self::capture_within`] `budget`:
    /// reserves no more than the capture may fill.
    pub fn prepare_capture_within(
        &self,
        mem: &dyn Memory,
        globals: &Globals,
        budget: u64,
    ) -> Capture {
        collect::prepare_within(mem, &self.layout, globals, budget)
    }

    /// The stop-time half: copies what decoding needs into `cap` (from
    /// [`Self::prepare_capture`], or `Capture::default()`), reading the
    /// globals found by [`Self::locate`]. `now` is the
    /// target's monotonic clock (nanoseconds), when known.
    pub fn capture(
        &self,
        t: &dyn Target,
        globals: &Globals,
        now: Option<i64>,
        cap: Capture,
    ) -> Result<Capture, GoError> {
        Ok(collect::capture(t, &self.layout, globals, now, cap)?)
    }

    /// A pre-copy capture of process `pid` (see [`precopy`]), its writes
    /// tracked with `tracker` and `pagemap`.
    pub fn precopy(
        &self,
        pid: i32,
        globals: &Globals,
        tracker: crate::process::writetrack::WriteTracker,
        pagemap: crate::process::writetrack::PageMap,
    ) -> precopy::Precopy<'_> {
        precopy::Precopy::new(pid, &self.layout, globals, tracker, pagemap)
    }

    /// [`Self::capture`] copying at most `budget` bytes of `g`s and stacks
    /// (default [`CAPTURE_BUDGET`]): goroutines past it are listed
    /// unreadable, with the reason. For a caller short of memory, and for
    /// fuzzing, where hostile memory would otherwise fill the budget.
    pub fn capture_within(
        &self,
        t: &dyn Target,
        globals: &Globals,
        now: Option<i64>,
        cap: Capture,
        budget: u64,
    ) -> Result<Capture, GoError> {
        Ok(collect::capture_within(
            t,
            &self.layout,
            globals,
            now,
            cap,
            budget,
        )?)
    }

    /// The after-resume half: every goroutine at once.
    pub fn decode(&self, cap: &Capture, bias: u64) -> Result<Dump, GoError> {
        let info = self.dump_info();
        Ok(Dump {
            go_version: info.go_version,
            header_shows_gp: info.header_shows_gp,
            goroutines: self.decoder(bias)?.goroutines(cap),
        })
    }

    /// For a target that stays stopped (a session): what listing the
    /// goroutines needs, without their stacks. See
    /// [`Self::decode_headers`] and [`Self::decode_one`].
    pub fn capture_headers(
        &self,
        t: &dyn Target,
        globals: &Globals,
        now: Option<i64>,
    ) -> Result<Capture, GoError> {
        Ok(collect::capture_headers(t, globals, now)?)
    }

    /// The goroutines of a [`Self::capture_headers`] capture with their
    /// frames not decoded (empty, and `unreadable` unset): ids, statuses,
    /// threads, `created by`.
    /// Their `g`s are read from the stopped target `t` a chunk at a time.
    pub fn decode_headers(
        &self,
        t: &dyn Target,
        cap: &Capture,
        bias: u64,
    ) -> Result<Dump, GoError> {
        let decoder = self.decoder(bias)?;
        let mut goroutines = Vec::with_capacity(cap.gs.len());
        collect::for_each_g_chunk(t, &self.layout, &cap.gs, |copy, gs| {
            // The gs from the chunk's copy; an M (few goroutines have one)
            // from the target.
            let mem = Layered {
                copy: &copy.reader(),
                rest: t,
            };
            goroutines.extend(decoder.headers(cap, gs, &mem));
        });
        let info = self.dump_info();
        Ok(Dump {
            go_version: info.go_version,
            header_shows_gp: info.header_shows_gp,
            goroutines,
        })
    }

    /// The goroutine whose `runtime.g` is at `gp`, frames and all, read
    /// from `mem` (the stopped target `cap` was taken from); `None` when it
    /// is dead.
    pub fn decode_one(
        &self,
        cap: &Capture,
        mem: &dyn Memory,
        bias: u64,
        gp: u64,
    ) -> Result<Option<Goroutine>, GoError> {
        Ok(self.decoder(bias)?.one(cap, mem, gp))
    }

    /// The after-resume half, for a caller that takes the goroutines a
    /// chunk at a time ([`Decoder::stream`]) rather than all at once.
    pub fn decoder(&self, bias: u64) -> Result<Decoder<'_>, GoError> {
        Ok(Decoder {
            bin: &self.bin,
            tab: self.bin.pclntab()?,
            layout: &self.layout,
            version: self.version,
            bias,
            args: true,
        })
    }

    /// What a dump of this program's goroutines is laid out by.
    pub fn dump_info(&self) -> DumpInfo {
        DumpInfo {
            go_version: self.version_text.clone(),
            header_shows_gp: self.version.header_shows_gp(),
        }
    }
}

/// Reads from `copy`, and what it lacks from `rest`.
struct Layered<'a> {
    copy: &'a dyn Memory,
    rest: &'a dyn Memory,
}

impl Memory for Layered<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), crate::process::ReadFault> {
        self.copy
            .read(addr, buf)
            .or_else(|_| self.rest.read(addr, buf))
    }
}

fn load_bias(mappings: &[Mapping], exe: &Path, link_base: u64) -> Result<u64, GoError> {
    let exe_name = exe.to_string_lossy();
    let exe_name = exe_name.trim_end_matches(" (deleted)");
    let first = mappings
        .iter()
        .filter(|m| {
            m.path
                .as_deref()
                .is_some_and(|p| p.trim_end_matches(" (deleted)") == exe_name)
        })
        .min_by_key(|m| m.start)
        .ok_or_else(|| GoError::NotMapped(exe_name.to_string()))?;
    // The lowest mapping of the file maps its first page; its link-time
    // address is `link_base` (plus the mapping's file offset).
    Ok(first
        .start
        .wrapping_sub(link_base)
        .wrapping_sub(first.offset))
}

/// A fixed "now" for [`monotonic_now`], set once by the program (tests
/// only: a live dump and a core taken moments apart then measure wait
/// times against the same moment and can be compared minute for minute).
static FIXED_NOW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Makes [`monotonic_now`] return `ns` from now on (the first call wins).
pub fn fix_monotonic_now(ns: i64) {
    let _ = FIXED_NOW.set(ns);
}

/// Process `pid`'s monotonic clock now, as Go's `nanotime()` reads it
/// there: ours, moved by the difference between its time namespace's
/// offset and ours (a container may run in a time namespace of its own;
/// without this, its wait times would be off by that offset).
pub fn monotonic_now(pid: i32) -> Option<i64> {
    if let Some(&v) = FIXED_NOW.get() {
        return Some(v);
    }
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    let ours = ts.tv_sec() * 1_000_000_000 + ts.tv_nsec();
    let shift =
        monotonic_offset(Who::Pid(pid)).unwrap_or(0) - monotonic_offset(Who::Me).unwrap_or(0);
    Some(ours.saturating_add(shift))
}

/// The `CLOCK_MONOTONIC` offset (ns) of the time namespace process `who`
/// lives in, from `/proc/WHO/timens_offsets`. That file shows the namespace
/// its children get; it is the process's own unless the process itself
/// called `unshare(CLONE_NEWTIME)` (then `None`: unknown, taken as ours).
fn monotonic_offset(who: Who) -> Option<i64> {
    let ns = |name: &str| procfs::ns_link(who, name);
    let own = ns("time")?;
    if ns("time_for_children")? != own {
        return None;
    }
    let text = procfs::timens_offsets(who)?;
    parse_monotonic_offset(&text)
}

/// `monotonic SECONDS NANOSECONDS` out of a `timens_offsets` text.
fn parse_monotonic_offset(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("monotonic"))?;
    let mut words = line.split_whitespace().skip(1);
    let secs: i64 = words.next()?.parse().ok()?;
    let nanos: i64 = words.next()?.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod clock_tests {
    use super::parse_monotonic_offset;

    #[test]
    fn reads_the_monotonic_offset_of_a_time_namespace() {
        let text = "monotonic      -90    250000000\nboottime        0         0\n";
        assert_eq!(parse_monotonic_offset(text), Some(-89_750_000_000));
        assert_eq!(parse_monotonic_offset("boottime 1 0\n"), None);
        assert_eq!(parse_monotonic_offset("monotonic x 0\n"), None);
        assert_eq!(
            parse_monotonic_offset("monotonic 9223372036 999999999\n"),
            None,
            "overflow"
        );
    }
}
