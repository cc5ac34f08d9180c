//! `goat heap`'s sequence: a core is analysed as it is; a live process is
//! copied first (`live_copy.rs`, a pause of milliseconds) and the copy
//! analysed while the program runs on. The analysis is `heapgraph`'s.

use std::path::PathBuf;
use std::time::Duration;

use crate::binary::dwarf_vars::VarIndex;
use crate::corefile::CoreFile;
use crate::goruntime::CHUNK_GOROUTINES;
use crate::heapgraph::{
    HeapGraph, HeapReport, Progress, ReportOptions, Snapshot, StackRoots, StackScanContext,
    StackScratch,
};
use crate::ordered::Pool;

use super::mode_choice::StacksMode;
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
                progress(phase("reading DWARF variables"));
                // Without them (unreadable DWARF) the report says so.
                let vars = VarIndex::load(self.prog.binary().debug_data());
                progress(phase("reading goroutines"));
                let stacks = self.stack_roots(core, vars.as_ref().ok())?;
                let goroutines = stacks.goroutines();
                let snap = Snapshot {
                    prog: &self.prog,
                    mem: core.as_ref(),
                    bias: *bias,
                    stacks,
                    vars: vars.as_ref().ok(),
                };
                let graph = HeapGraph::build(snap, progress)?;
                progress(phase("summing up"));
                let report = graph.report(&self.prog.dump_info().go_version, opts.report);
                Ok(HeapOutcome {
                    report,
                    graph,
                    copied: Default::default(),
                    goroutines,
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

impl Inspector {
    /// The stack roots of every goroutine of this core, never holding them
    /// all decoded: each goroutine's stack scanned on the thread that has
    /// just decoded it (its walk and its stack's bytes still at hand), and
    /// only its roots kept.
    fn stack_roots(
        &self,
        core: &CoreFile,
        vars: Option<&VarIndex>,
    ) -> Result<StackRoots, InspectError> {
        let c = self.copy(StacksMode::Stop, false, &mut |_| {})?;
        // A thread's frame shapes and unwinding facts last from one chunk
        // to the next: each chunk takes a scratch from the pool and gives
        // it back.
        let scratches: Pool<StackScratch> = Pool::default();
        let (prog, bias) = (&self.prog, c.bias);
        let mut all = StackRoots::default();
        self.prog
            .decoder(c.bias)?
            .without_args()
            .stream_views(
                &c.capture,
                CHUNK_GOROUTINES,
                |_| (StackRoots::default(), scratches.take()),
                |(roots, scratch): &mut (StackRoots, StackScratch), g| {
                    let cx = StackScanContext::new(prog, core, bias, vars);
                    roots.add_view(&cx, scratch, g);
                },
                |(roots, scratch)| {
                    scratches.give(scratch);
                    roots
                },
                |roots| {
                    all.append(roots);
                    Ok::<(), std::convert::Infallible>(())
                },
            )
            .unwrap_or_else(|never| match never {});
        // A Go process always has a goroutine: none is a wrong reading
        // (most likely of another build), never an answer.
        if all.goroutines() == 0 {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        let cx = StackScanContext::new(prog, core, bias, vars);
        let mut scratch = scratches.take();
        for g in self.crash_g0s(&c)? {
            all.add_goroutine(&cx, &mut scratch, &g);
        }
        Ok(all)
    }
}
