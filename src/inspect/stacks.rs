//! Reading every goroutine's stack: from a live process (attach, locate the
//! runtime, stop, copy, resume, decode) or from a core (locate, copy,
//! decode). Either all at once into a [`Dump`] ([`Inspector::stacks`]), or
//! decoded and written a chunk at a time ([`Inspector::write_stacks`]),
//! which is what `goat stacks` does: its memory then grows with the
//! largest stack, not with the number of goroutines.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::corefile::CoreFile;
use crate::goruntime::labels::LabelTable;
use crate::goruntime::{self, Dump};
use crate::process::CapturedMemory;
use crate::process::ProcessMemory;
use crate::report::{ChunkFormatter, Format, StreamWriter};
use crate::tracer::LiveProcess;

use super::copied::{Copied, Meanwhile, ReadReport};
use super::mode_choice::{self, ChoiceReason, ModeChoice, StacksMode};
use super::phases::{hold_for_tests, Phases};
use super::{InspectError, Inspector, Source, Warning};

/// One read of every goroutine, with what `--stats` reports about it.
#[derive(Debug)]
pub struct Stacks {
    pub dump: Dump,
    pub read: ReadReport,
}

/// What [`Inspector::write_stacks`] reports besides what it wrote.
#[derive(Debug)]
pub struct StacksWritten {
    /// Goroutines written.
    pub goroutines: usize,
    pub read: ReadReport,
}

impl Inspector {
    /// Every goroutine's stack, as the Go runtime's SIGQUIT dump shows it.
    /// A live process is attached to, stopped only while its bytes are
    /// copied, and detached before decoding ([`StacksMode::Stop`]).
    pub fn stacks(&self) -> Result<Stacks, InspectError> {
        self.stacks_with(StacksMode::Stop, &mut |_| {})
    }

    /// [`Self::stacks`] of a live process read in `mode`; why pre-copy mode
    /// fell back to stop mode goes to `warn`. A core has no modes.
    pub fn stacks_with(
        &self,
        mode: StacksMode,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Stacks, InspectError> {
        self.stacks_labelled(mode, false, warn).map(|(s, _)| s)
    }

    /// [`Self::stacks_with`], and the goroutines' pprof labels when
    /// `labels` is set.
    pub(super) fn stacks_labelled(
        &self,
        mode: StacksMode,
        labels: bool,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<(Stacks, Option<LabelTable>), InspectError> {
        let mut c = self.copy(mode, labels, warn)?;
        let mut dump = self.prog.decode(&c.capture, c.bias)?;
        // A Go process always has a goroutine: none is a wrong reading
        // (most likely of another build), never an answer.
        if dump.goroutines.is_empty() {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        dump.goroutines.extend(self.crash_g0s(&c)?);
        let labels = c.labels.take();
        let read = c.finish("decode");
        Ok((Stacks { dump, read }, labels))
    }

    /// [`Self::stacks`], written to `out` in `format` as it is decoded,
    /// never holding every goroutine: chunks of goroutines are decoded and
    /// formatted on several threads and written in order. The bytes are
    /// those [`crate::report`]'s whole-dump writers give for
    /// [`Self::stacks`]'s dump. Nothing is written when no goroutine is
    /// found (an error, as for [`Self::stacks`]).
    /// A live process is read in `mode` (see [`Self::stacks_with`]). In
    /// precopy mode glibc is told to keep freed memory for the rest of the
    /// process ([`crate::heap::keep_freed_memory`]), so that the final stop
    /// takes no page faults.
    pub fn write_stacks(
        &self,
        out: &mut dyn Write,
        format: Format,
        mode: StacksMode,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<StacksWritten, InspectError> {
        let c = self.copy(mode, false, warn)?;
        // From here goat only decodes and writes: its own work, which the
        // running target's threads come before (`background.rs`). The
        // write protection's release goes on at its own priority.
        crate::background::lower_this_thread();
        let info = self.prog.dump_info();
        let formatter = ChunkFormatter::new(&info, format);
        let mut writer = StreamWriter::new(out, &info, format);
        self.prog
            .decoder(c.bias)?
            .stream_views(
                &c.capture,
                formatter.chunk_goroutines(),
                |n| formatter.begin(n),
                |chunk, g| formatter.add(chunk, g),
                |chunk| formatter.end(chunk),
                |chunk| writer.write(chunk?),
            )
            .map_err(InspectError::Output)?;
        let goroutines = writer.goroutines();
        if goroutines == 0 {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        let g0s = self.crash_g0s(&c)?;
        if !g0s.is_empty() {
            let chunk = formatter.format(&g0s).map_err(InspectError::Output)?;
            writer.write(chunk).map_err(InspectError::Output)?;
        }
        writer.finish().map_err(InspectError::Output)?;
        let read = c.finish("decode+write");
        Ok(StacksWritten { goroutines, read })
    }

    /// A core written as the runtime crashed (`GOTRACEBACK=crash`): the
    /// system stacks its dump printed as `goroutine 0 [idle]`, after the
    /// goroutines (see `goruntime/crash_threads.rs`). None for a process.
    pub(super) fn crash_g0s(&self, c: &Copied) -> Result<Vec<goruntime::Goroutine>, InspectError> {
        match &self.source {
            Source::Core { core, .. } => Ok(self
                .prog
                .decoder(c.bias)?
                .crash_g0s(&c.capture, core.as_ref())),
            Source::Live { .. } => Ok(Vec::new()),
        }
    }

    /// One read of every goroutine in `mode`, with their pprof labels when
    /// `labels` is set.
    pub(super) fn copy(
        &self,
        mode: StacksMode,
        labels: bool,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Copied, InspectError> {
        let phases = Phases::after("load", self.load);
        let choice = match &self.source {
            // Decided with the target running, before anything attaches.
            Source::Live { pid, exe } if mode == StacksMode::Auto => {
                let bias = super::open::live_bias(&self.prog, *pid, exe)?;
                Some(mode_choice::choose(
                    &self.prog,
                    &ProcessMemory::new(*pid),
                    bias,
                ))
            }
            Source::Live { .. } => Some(ModeChoice {
                mode,
                why: ChoiceReason::Forced,
            }),
            Source::Core { .. } => None,
        };
        let mode = choice.as_ref().map_or(mode, |c| c.mode);
        let mut copied = match (&self.source, mode) {
            (Source::Live { pid, exe }, StacksMode::Stop) => {
                self.copy_live(LiveProcess::attach(*pid)?, exe, phases, labels)
            }
            (Source::Live { pid, exe }, StacksMode::Precopy | StacksMode::Auto) => {
                self.copy_precopy(*pid, exe, phases, labels, warn)
            }
            (Source::Core { core, bias, .. }, _) => self.copy_core(core, *bias, phases, labels),
        }?;
        copied.choice = choice;
        if let Some(e) = copied.capture.mem.spill_error() {
            return Err(InspectError::spill(std::io::Error::new(
                e.kind(),
                e.to_string(),
            )));
        }
        Ok(copied)
    }

    /// A stop capture of `live` (attached, running), detached before
    /// decoding; with the goroutines' `labels`, read in the stop.
    pub(super) fn copy_live(
        &self,
        live: LiveProcess,
        exe: &Path,
        mut clock: Phases,
        labels: bool,
    ) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        let pid = live.pid();
        // Everything that can be done with the target running is done first.
        let bias = super::open::live_bias(prog, pid, exe)?;
        let globals = prog.locate(live.memory(), bias)?;
        // Copied while stopped: into memory, as a write to a file would
        // lengthen the pause.
        let capture = prog.prepare_capture(live.memory(), &globals);
        clock.mark("prepare");
        let stopped = live.stop()?;
        let capture = prog.capture(&stopped, &globals, goruntime::monotonic_now(pid), capture);
        // Read in the stop: a set may be freed once the target runs. Each
        // distinct set is read once, and goroutines share their creator's.
        let label_table = match (&capture, labels) {
            (Ok(c), true) => Some(prog.label_table(c, &stopped)),
            _ => None,
        };
        hold_for_tests();
        let window = stopped.window();
        // Resumed before a failed capture is reported: the target runs on
        // either way.
        stopped.resume()?;
        drop(live);
        clock.mark("stop");
        Ok(Copied {
            capture: capture?,
            bias,
            of: format!("pid {pid}"),
            stops: vec![window],
            mode: Some(StacksMode::Stop),
            choice: None,
            precopy: None,
            phases: clock,
            labels: label_table,
            meanwhile: Meanwhile::default(),
        })
    }

    fn copy_core(
        &self,
        core: &Arc<CoreFile>,
        bias: u64,
        mut clock: Phases,
        labels: bool,
    ) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        let shared = core.clone();
        let core: &CoreFile = core;
        // Only goat's cores record the clock at the stop; without it, how long
        // goroutines have waited is unknown and not shown.
        let globals = prog.locate(core, bias)?;
        let now = core.monotonic_at_stop();
        // A core does not change: the capture reads it again rather than
        // copying it.
        let through = goruntime::Capture {
            mem: CapturedMemory::through(shared),
            ..goruntime::Capture::default()
        };
        let capture = prog.capture(core, &globals, now, through)?;
        let labels = labels.then(|| prog.label_table(&capture, core));
        clock.mark("read");
        Ok(Copied {
            capture,
            bias,
            of: format!("core {}", crate::stdio::shown_path(core.path())),
            stops: Vec::new(),
            mode: None,
            choice: None,
            precopy: None,
            phases: clock,
            labels,
            meanwhile: Meanwhile::default(),
        })
    }
}
