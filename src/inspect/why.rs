//! `goat why`'s sequence. A core is analysed as it is. A live process is
//! first copied (`live_copy.rs`: a pause of milliseconds) into an unlinked
//! temporary core, and the analysis reads that copy while the program runs
//! on: the heap walk may take seconds, the pause does not.

use std::time::Duration;

use crate::corefile::CoreFile;
use crate::goruntime::labels::LabelTable;
use crate::goruntime::waits::{FdInfo, ProcFds};
use crate::goruntime::{stackroots, BriefScratch, Briefs, Dump, GoroutineBrief, CHUNK_GOROUTINES};
use crate::heapwalk::Heap;
use crate::ordered::Pool;
use crate::process::{Memory, Target};
use crate::report::pprof::{GoroutineProfile, LabelValue};
use crate::why::{self, StackValues, WhyReport};

use super::live_copy::ReleasedCopy;
use super::mode_choice::StacksMode;
use super::{InspectError, Inspector, OpenOptions, Source, Warning};

/// A decoding thread's chunk: its goroutines, their stacks' values, and
/// the buffers it borrowed.
type ChunkOut = (Vec<GoroutineBrief>, StackValues, Scratch);

/// A decoding thread's buffers and per-pc facts: the stack scanner's and
/// the briefs'. They last from one chunk to the next.
#[derive(Default)]
struct Scratch {
    scan: stackroots::Scratch,
    briefs: BriefScratch,
}

/// What `why` found, and what it cost.
pub struct WhyOutcome {
    pub report: WhyReport,
    /// What a live process's copy did to it (nothing for a core): its
    /// stops, when each began and how long it lasted (see
    /// [`Self::paused`]), and the GC marks it waited out.
    pub copied: super::live_copy::CopyFacts,
    /// The goroutine profile (profile.proto, gzip), when asked for: one
    /// sample per stack and wait, labelled with what the analysis found.
    pub profile: Option<Vec<u8>>,
    /// A live process's copy, given back meanwhile: hold the outcome
    /// while printing it.
    pub released: ReleasedCopy,
}

impl WhyOutcome {
    /// How long a live process was stopped: its main stop, the last
    /// (`None` for a core).
    pub fn paused(&self) -> Option<Duration> {
        self.copied.stops.last().map(|s| s.lasted)
    }
}

/// What `why` is asked for.
#[derive(Debug, Clone, Default)]
pub struct WhyOptions {
    /// Where a live process's copy is kept while it is read (default:
    /// `$TMPDIR`, else `/var/tmp`); unlinked as soon as it is open.
    pub scratch: Option<std::path::PathBuf>,
    pub open: OpenOptions,
    /// Make [`WhyOutcome::profile`].
    pub profile: bool,
}

impl Inspector {
    /// Analyses what every goroutine waits on (see `crate::why`).
    pub fn why(
        &self,
        opts: &WhyOptions,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<WhyOutcome, InspectError> {
        self.why_of(opts, warn, &mut |_| {}, None)
    }

    /// [`Self::why`]; `phase` hears the name of each phase as it begins
    /// (`goat why --stats` times them).
    pub fn why_phased(
        &self,
        opts: &WhyOptions,
        warn: &mut dyn FnMut(Warning),
        phase: &mut dyn FnMut(&'static str),
    ) -> Result<WhyOutcome, InspectError> {
        self.why_of(opts, warn, phase, None)
    }

    /// [`Self::why`]; `copy_of`: the live process a core was just copied
    /// from (its sockets are named from its descriptors).
    fn why_of(
        &self,
        opts: &WhyOptions,
        warn: &mut dyn FnMut(Warning),
        phase: &mut dyn FnMut(&'static str),
        copy_of: Option<i32>,
    ) -> Result<WhyOutcome, InspectError> {
        match &self.source {
            Source::Core { core, bias, .. } => {
                let fds = copy_of.map(ProcFds::read);
                self.why_core(
                    core,
                    *bias,
                    fds.as_ref().map(|f| f as &dyn FdInfo),
                    opts.profile,
                    phase,
                )
            }
            Source::Live { pid, exe } => {
                phase("live copy");
                let (outcome, copied, released) = Inspector::on_live_copy(
                    *pid,
                    exe,
                    opts.scratch.as_ref(),
                    &opts.open,
                    warn,
                    |copy, warn| copy.why_of(opts, warn, phase, Some(*pid)),
                )?;
                Ok(WhyOutcome {
                    copied,
                    released,
                    ..outcome
                })
            }
        }
    }

    fn why_core(
        &self,
        core: &CoreFile,
        bias: u64,
        fds: Option<&dyn FdInfo>,
        want_profile: bool,
        phase: &mut dyn FnMut(&'static str),
    ) -> Result<WhyOutcome, InspectError> {
        // A profile has a sample per stack: only then are whole goroutines
        // kept. Else each is kept as the analysis reads it, decoded as
        // `goat stacks` decodes, a chunk at a time on several threads.
        let mut stacks = None;
        let mut heap = None;
        let (goroutines, go_version, kept) = match want_profile {
            true => {
                phase("stacks");
                let (stacks, labels) = self.stacks_labelled(StacksMode::Stop, true, &mut |_| {})?;
                let briefs = Briefs::default();
                let dump = stacks.dump;
                let gs = dump
                    .goroutines
                    .iter()
                    .map(|g| briefs.of_goroutine(g))
                    .collect();
                (gs, dump.go_version.clone(), Some((dump, labels)))
            }
            false => {
                // The heap first: what the analysis reads after the
                // stacks is mostly in its spans, fetched (from a live
                // copy on disk) while the stacks are decoded.
                phase("heap spans");
                let loaded = Heap::load(&self.prog, core, bias);
                if let Ok(h) = &loaded {
                    core.prefetch(&h.span_ranges());
                }
                heap = Some(loaded);
                let (gs, values) = self.briefs(core, phase)?;
                stacks = Some(values);
                (gs, self.prog.dump_info().go_version, None)
            }
        };
        let snap = why::Snapshot {
            prog: &self.prog,
            mem: core,
            shared: Some(core),
            bias,
            go_version: &go_version,
            goroutines: &goroutines,
            threads: core.threads(),
            fds,
            now_ns: core.monotonic_at_stop(),
        };
        let report = why::analyze_scanned(&snap, stacks, heap, phase);
        // A million briefs: freed beside the report, as the analysis' own
        // tables are.
        crate::process::freed::drop_in_background(goroutines);
        let profile = match &kept {
            Some((dump, labels)) => {
                phase("profile");
                Some(
                    self.why_profile(&report, dump, labels.as_ref(), bias)
                        .map_err(InspectError::Output)?,
                )
            }
            None => None,
        };
        Ok(WhyOutcome {
            report,
            copied: Default::default(),
            profile,
            released: ReleasedCopy::default(),
        })
    }

    /// Every goroutine of this core as `why` keeps it, in the order
    /// [`Self::stacks`] lists them, never holding them all decoded, and
    /// their stacks' live pointer values: each stack scanned on the
    /// decoding thread that has just decoded it, while it is in cache.
    fn briefs(
        &self,
        core: &CoreFile,
        phase: &mut dyn FnMut(&'static str),
    ) -> Result<(Vec<GoroutineBrief>, StackValues), InspectError> {
        phase("capture");
        let c = self.copy(StacksMode::Stop, false, &mut |_| {})?;
        phase("decode and stack scan");
        let shared = Briefs::default();
        // A scanner's per-pc facts last from one chunk to the next: each
        // chunk takes one from the pool and gives it back.
        let scratches: Pool<Scratch> = Pool::default();
        let mut out: Vec<GoroutineBrief> = Vec::new();
        let mut values = StackValues::default();
        let (prog, bias) = (&self.prog, c.bias);
        self.prog
            .decoder(c.bias)?
            .without_args()
            .stream_views(
                &c.capture,
                CHUNK_GOROUTINES,
                |n| {
                    (
                        Vec::with_capacity(n),
                        StackValues::default(),
                        scratches.take(),
                    )
                },
                |(chunk, values, scratch): &mut ChunkOut, g| {
                    let brief = shared.of_view(g, &mut scratch.briefs);
                    values.scan(
                        prog,
                        core,
                        bias,
                        (&brief, g.prior_walk()),
                        &mut scratch.scan,
                    );
                    chunk.push(brief);
                },
                |(chunk, values, scratch)| {
                    scratches.give(scratch);
                    (chunk, values)
                },
                |(chunk, more)| {
                    out.extend(chunk);
                    values.append(more);
                    Ok::<(), std::convert::Infallible>(())
                },
            )
            .unwrap_or_else(|never| match never {});
        // A Go process always has a goroutine: none is a wrong reading
        // (most likely of another build), never an answer.
        if out.is_empty() {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        let mut scratch = scratches.take();
        for g in self.crash_g0s(&c)? {
            let brief = shared.of_goroutine(&g);
            values.scan(prog, core, bias, (&brief, None), &mut scratch.scan);
            out.push(brief);
        }
        Ok((out, values))
    }

    /// The goroutine profile of `dump`, each sample labelled with the
    /// goroutine's own pprof labels and its wait reason, minutes waiting,
    /// what it waits on and whether it can never wake (so `go tool pprof
    /// -tagfocus` filters by them).
    fn why_profile(
        &self,
        report: &WhyReport,
        dump: &Dump,
        own: Option<&LabelTable>,
        bias: u64,
    ) -> std::io::Result<Vec<u8>> {
        let mapping = self.profile_mapping(bias);
        let mut profile = GoroutineProfile::new(mapping.as_ref());
        for (g, w) in dump.goroutines.iter().zip(&report.goroutines) {
            let waits_on = match (&w.waits_on.name, &w.waits_on.addr) {
                (Some(n), _) => format!("{} {n}", w.waits_on.kind),
                (None, Some(a)) => format!("{} {a}", w.waits_on.kind),
                (None, None) => w.waits_on.kind.to_string(),
            };
            let mut labels = super::pprof::sample_labels(own, g.gp);
            labels.extend([
                (
                    "never_wakes",
                    LabelValue::Str(if w.never_wakes { "true" } else { "false" }),
                ),
                ("waits_on", LabelValue::Str(&waits_on)),
            ]);
            if let Some(r) = &w.wait_reason {
                labels.push(("wait_reason", LabelValue::Str(r)));
            }
            if let Some(m) = w.wait_minutes {
                labels.push((
                    "waiting",
                    LabelValue::Num {
                        value: m,
                        unit: "minutes",
                    },
                ));
            }
            profile.add(g, &labels);
        }
        let mut gz = Vec::new();
        profile.write_gz(&mut gz)?;
        Ok(gz)
    }
}
