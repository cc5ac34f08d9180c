//! Reading every goroutine's stack: from a live process (attach, locate the
//! runtime, stop, copy, resume, decode) or from a core (locate, copy,
//! decode). Either all at once into a [`Dump`] ([`Inspector::stacks`]), or
//! decoded and written a chunk at a time ([`Inspector::write_stacks`]),
//! which is what `goat stacks` does: its memory then grows with the
//! largest stack, not with the number of goroutines.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::corefile::CoreFile;
use crate::goruntime::{self, Capture, Dump};
use crate::process::read_mappings;
use crate::report::{ChunkFormatter, Format, StreamWriter};
use crate::tracer::LiveProcess;

use super::phases::{hold_for_tests, Phases};
use super::{InspectError, Inspector, Source, Warning};

/// How a live process is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StacksMode {
    /// Copied while it runs, its writes tracked; stopped only to re-read
    /// what changed (`goruntime/precopy.rs`). Falls back to [`Self::Stop`],
    /// with a warning, where write tracking is unavailable.
    #[default]
    Precopy,
    /// Stopped for the whole copy.
    Stop,
}

impl StacksMode {
    pub fn name(self) -> &'static str {
        match self {
            StacksMode::Precopy => "precopy",
            StacksMode::Stop => "stop",
        }
    }
}

/// One read of every goroutine, with what `--stats` reports about it.
#[derive(Debug)]
pub struct Stacks {
    pub dump: Dump,
    /// OS threads seen.
    pub threads: usize,
    /// Bytes copied from the target (read from the core, for a core).
    pub bytes: usize,
    /// How long the live process was stopped, the longest stop when there
    /// were two (pre-copy mode); `None` for a core.
    pub stopped_for: Option<Duration>,
    /// The mode that ran (after a fallback, stop); `None` for a core.
    pub mode: Option<StacksMode>,
    /// Pre-copy mode: the setup stop (the target opens the userfaultfd)
    /// and the final stop, and what was copied when.
    pub precopy: Option<super::precopy::PrecopyReport>,
    /// Wall-clock time per phase: "load" (opening the [`Inspector`]), then
    /// "prepare", "stop", "decode" for a process or "read", "decode" for a
    /// core. A caller may mark its own phases after these.
    pub phases: Phases,
}

/// What [`Inspector::write_stacks`] reports besides what it wrote: as
/// [`Stacks`], with a count in place of the goroutines.
#[derive(Debug)]
pub struct StacksWritten {
    /// Goroutines written.
    pub goroutines: usize,
    pub threads: usize,
    pub bytes: usize,
    pub stopped_for: Option<Duration>,
    /// As [`Stacks::mode`] and [`Stacks::precopy`].
    pub mode: Option<StacksMode>,
    pub precopy: Option<super::precopy::PrecopyReport>,
    /// As [`Stacks::phases`], with "decode+write" in place of "decode":
    /// the two run together.
    pub phases: Phases,
}

/// The copy of one read, not yet decoded.
pub(super) struct Copied {
    pub(super) capture: Capture,
    pub(super) bias: u64,
    /// What was read, for messages: "pid N" or "core FILE".
    pub(super) of: String,
    pub(super) stopped_for: Option<Duration>,
    pub(super) mode: Option<StacksMode>,
    pub(super) precopy: Option<super::precopy::PrecopyReport>,
    pub(super) phases: Phases,
    /// Work that goes on while the copy is decoded (pre-copy mode: taking
    /// the write protection off every tracked page), awaited by
    /// [`Self::finish`].
    pub(super) meanwhile: Option<std::thread::JoinHandle<()>>,
}

impl Copied {
    /// Waits for what went on while decoding.
    fn finish(&mut self) {
        if let Some(work) = self.meanwhile.take() {
            let _ = work.join();
        }
    }
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
        let mut c = self.copy(mode, warn)?;
        let dump = self.prog.decode(&c.capture, c.bias)?;
        c.finish();
        c.phases.mark("decode");
        // A Go process always has a goroutine: none is a wrong reading
        // (most likely of another build), never an answer.
        if dump.goroutines.is_empty() {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        Ok(Stacks {
            dump,
            threads: c.capture.threads.len(),
            bytes: c.capture.bytes,
            stopped_for: c.stopped_for,
            mode: c.mode,
            precopy: c.precopy,
            phases: c.phases,
        })
    }

    /// [`Self::stacks`], written to `out` in `format` as it is decoded,
    /// never holding every goroutine: chunks of goroutines are decoded and
    /// formatted on several threads and written in order. The bytes are
    /// those [`crate::report`]'s whole-dump writers give for
    /// [`Self::stacks`]'s dump. Nothing is written when no goroutine is
    /// found (an error, as for [`Self::stacks`]).
    /// A live process is read in `mode` (see [`Self::stacks_with`]).
    pub fn write_stacks(
        &self,
        out: &mut dyn Write,
        format: Format,
        mode: StacksMode,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<StacksWritten, InspectError> {
        let mut c = self.copy(mode, warn)?;
        let info = self.prog.dump_info();
        let formatter = ChunkFormatter::new(&info, format);
        let mut writer = StreamWriter::new(out, &info, format);
        self.prog
            .decoder(c.bias)?
            .stream(
                &c.capture,
                |gs| formatter.format(&gs),
                |chunk| writer.write(chunk?),
            )
            .map_err(InspectError::Output)?;
        let goroutines = writer.goroutines();
        if goroutines == 0 {
            return Err(InspectError::NoGoroutines { of: c.of });
        }
        writer.finish().map_err(InspectError::Output)?;
        c.finish();
        c.phases.mark("decode+write");
        Ok(StacksWritten {
            goroutines,
            threads: c.capture.threads.len(),
            bytes: c.capture.bytes,
            stopped_for: c.stopped_for,
            mode: c.mode,
            precopy: c.precopy,
            phases: c.phases,
        })
    }

    fn copy(
        &self,
        mode: StacksMode,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Copied, InspectError> {
        let phases = Phases::after("load", self.load);
        let copied = match (&self.source, mode) {
            (Source::Live { pid, exe }, StacksMode::Stop) => {
                self.copy_live(LiveProcess::attach(*pid)?, exe, phases)
            }
            (Source::Live { pid, exe }, StacksMode::Precopy) => {
                self.copy_precopy(*pid, exe, phases, warn)
            }
            (Source::Core { core, bias }, _) => self.copy_core(core, *bias, phases),
        }?;
        if let Some(e) = copied.capture.mem.spill_error() {
            return Err(InspectError::spill(std::io::Error::new(
                e.kind(),
                e.to_string(),
            )));
        }
        Ok(copied)
    }

    /// A stop capture of `live` (attached, running), detached before
    /// decoding.
    pub(super) fn copy_live(
        &self,
        live: LiveProcess,
        exe: &Path,
        mut clock: Phases,
    ) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        let pid = live.pid();
        // Everything that can be done with the target running is done first.
        let bias = prog.load_bias(&read_mappings(pid), exe)?;
        let globals = prog.locate(live.memory(), bias)?;
        // Copied while stopped: into memory, as a write to a file would
        // lengthen the pause.
        let capture = prog.prepare_capture(live.memory(), &globals);
        clock.mark("prepare");
        let stopped = live.stop()?;
        let capture = prog.capture(&stopped, &globals, goruntime::monotonic_now(pid), capture);
        hold_for_tests();
        let paused = stopped.stopped_for();
        // Resumed before a failed capture is reported: the target runs on
        // either way.
        stopped.resume()?;
        drop(live);
        clock.mark("stop");
        Ok(Copied {
            capture: capture?,
            bias,
            of: format!("pid {pid}"),
            stopped_for: Some(paused),
            mode: Some(StacksMode::Stop),
            precopy: None,
            phases: clock,
            meanwhile: None,
        })
    }

    fn copy_core(
        &self,
        core: &CoreFile,
        bias: u64,
        mut clock: Phases,
    ) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        // Only goat's cores record the clock at the stop; without it, how long
        // goroutines have waited is unknown and not shown.
        let globals = prog.locate(core, bias)?;
        let now = core.monotonic_at_stop();
        // Nothing is paused: a large copy goes to a temporary file.
        let empty = prog
            .prepare_capture_spilled(core, &globals)
            .map_err(InspectError::spill)?;
        let capture = prog.capture(core, &globals, now, empty)?;
        clock.mark("read");
        Ok(Copied {
            capture,
            bias,
            of: format!("core {}", core.path().display()),
            stopped_for: None,
            mode: None,
            precopy: None,
            phases: clock,
            meanwhile: None,
        })
    }
}
