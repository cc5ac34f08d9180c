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
use crate::process::{read_mappings, temporary_dir};
use crate::report::{ChunkFormatter, Format, StreamWriter};
use crate::tracer::LiveProcess;

use super::phases::{hold_for_tests, Phases};
use super::{InspectError, Inspector, Source};

/// One read of every goroutine, with what `--stats` reports about it.
#[derive(Debug)]
pub struct Stacks {
    pub dump: Dump,
    /// OS threads seen.
    pub threads: usize,
    /// Bytes copied from the target (read from the core, for a core).
    pub bytes: usize,
    /// How long the live process was stopped; `None` for a core.
    pub stopped_for: Option<Duration>,
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
    /// As [`Stacks::phases`], with "decode+write" in place of "decode":
    /// the two run together.
    pub phases: Phases,
}

/// The copy of one read, not yet decoded.
struct Copied {
    capture: Capture,
    bias: u64,
    /// What was read, for messages: "pid N" or "core FILE".
    of: String,
    stopped_for: Option<Duration>,
    phases: Phases,
}

impl Inspector {
    /// Every goroutine's stack, as the Go runtime's SIGQUIT dump shows it.
    /// A live process is attached to, stopped only while its bytes are
    /// copied, and detached before decoding.
    pub fn stacks(&self) -> Result<Stacks, InspectError> {
        let mut c = self.copy()?;
        let dump = self.prog.decode(&c.capture, c.bias)?;
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
            phases: c.phases,
        })
    }

    /// [`Self::stacks`], written to `out` in `format` as it is decoded,
    /// never holding every goroutine: chunks of goroutines are decoded and
    /// formatted on several threads and written in order. The bytes are
    /// those [`crate::report`]'s whole-dump writers give for
    /// [`Self::stacks`]'s dump. Nothing is written when no goroutine is
    /// found (an error, as for [`Self::stacks`]).
    pub fn write_stacks(
        &self,
        out: &mut dyn Write,
        format: Format,
    ) -> Result<StacksWritten, InspectError> {
        let mut c = self.copy()?;
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
        c.phases.mark("decode+write");
        Ok(StacksWritten {
            goroutines,
            threads: c.capture.threads.len(),
            bytes: c.capture.bytes,
            stopped_for: c.stopped_for,
            phases: c.phases,
        })
    }

    fn copy(&self) -> Result<Copied, InspectError> {
        let phases = Phases::after("load", self.load);
        let copied = match &self.source {
            Source::Live { pid, exe } => self.copy_live(*pid, exe, phases),
            Source::Core { core, bias } => self.copy_core(core, *bias, phases),
        }?;
        if let Some(e) = copied.capture.mem.spill_error() {
            return Err(InspectError::Spill {
                dir: temporary_dir(),
                cause: std::io::Error::new(e.kind(), e.to_string()),
            });
        }
        Ok(copied)
    }

    fn copy_live(&self, pid: i32, exe: &Path, mut clock: Phases) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        let live = LiveProcess::attach(pid)?;
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
            phases: clock,
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
            .map_err(|cause| InspectError::Spill {
                dir: temporary_dir(),
                cause,
            })?;
        let capture = prog.capture(core, &globals, now, empty)?;
        clock.mark("read");
        Ok(Copied {
            capture,
            bias,
            of: format!("core {}", core.path().display()),
            stopped_for: None,
            phases: clock,
        })
    }
}
