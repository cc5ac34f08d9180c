//! `goat heap`'s sequence: a core is analysed as it is; a live process is
//! copied first (`live_copy.rs`, a pause of milliseconds) and the copy
//! analysed while the program runs on. The analysis is `heapgraph`'s.

use std::path::PathBuf;
use std::time::Duration;

use crate::binary::dwarf_vars::VarIndex;
use crate::heapgraph::{HeapGraph, HeapReport, Progress, ReportOptions, Snapshot};

use super::{InspectError, Inspector, OpenOptions, Source, Warning};

/// What `heap` is asked for.
#[derive(Debug, Clone)]
pub struct HeapOptions {
    /// Where a live process's copy is kept while it is read (default:
    /// `$TMPDIR`, else `/var/tmp`); unlinked as soon as it is open.
    pub scratch: Option<PathBuf>,
    pub open: OpenOptions,
    pub report: ReportOptions,
}

/// What `heap` found, and what it cost.
pub struct HeapOutcome {
    pub report: HeapReport,
    /// The whole analysis, for questions about single objects.
    pub graph: HeapGraph,
    /// What a live process's copy did to it (nothing for a core): its
    /// stops, when each began and how long it lasted (see
    /// [`Self::paused`]), and the GC marks it waited out.
    pub copied: super::live_copy::CopyFacts,
    /// Goroutines whose stacks were roots.
    pub goroutines: usize,
    /// A live process's copy, given back meanwhile: hold the outcome
    /// while printing it.
    pub released: super::live_copy::ReleasedCopy,
}

impl HeapOutcome {
    /// How long a live process was stopped: its main stop, the last
    /// (`None` for a core).
    pub fn paused(&self) -> Option<Duration> {
        self.copied.stops.last().map(|s| s.lasted)
    }
}

impl Inspector {
    /// Analyses what holds the heap (see `crate::heapgraph`).
    /// `progress` hears how far the walk is.
    pub fn heap(
        &self,
        opts: &HeapOptions,
        warn: &mut dyn FnMut(Warning),
        progress: &mut dyn FnMut(Progress),
    ) -> Result<HeapOutcome, InspectError> {
        match &self.source {
            Source::Core { core, bias, .. } => {
                let phase = |phase| Progress {
                    phase,
                    objects: 0,
                    bytes: 0,
                };
                progress(phase("reading goroutines"));
                let dump = self.stacks()?.dump;
                progress(phase("reading DWARF variables"));
                // Without them (unreadable DWARF) the report says so.
                let vars = VarIndex::load(self.prog.binary().debug_data());
                let snap = Snapshot {
                    prog: &self.prog,
                    mem: core.as_ref(),
                    bias: *bias,
                    goroutines: &dump.goroutines,
                    vars: vars.as_ref().ok(),
                };
                let graph = HeapGraph::build(&snap, progress)?;
                progress(phase("summing up"));
                let report = graph.report(&dump.go_version, opts.report);
                Ok(HeapOutcome {
                    report,
                    graph,
                    copied: Default::default(),
                    goroutines: dump.goroutines.len(),
                    released: Default::default(),
                })
            }
            Source::Live { pid, exe } => {
                progress(Progress {
                    phase: "copying the process",
                    objects: 0,
                    bytes: 0,
                });
                let (outcome, copied, released) = Inspector::on_live_copy(
                    *pid,
                    exe,
                    opts.scratch.as_ref(),
                    &opts.open,
                    warn,
                    |copy, warn| copy.heap(opts, warn, progress),
                )?;
                Ok(HeapOutcome {
                    copied,
                    released,
                    ..outcome
                })
            }
        }
    }
}
