//! Reading every goroutine's stack: from a live process (attach, locate the
//! runtime, stop, copy, resume, decode) or from a core (locate, copy,
//! decode).

use std::path::Path;
use std::time::Duration;

use crate::corefile::CoreFile;
use crate::goruntime::{self, Dump};
use crate::process::read_mappings;
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
        let phases = Phases::after("load", self.load);
        match (&self.source, mode) {
            (Source::Live { pid, exe }, StacksMode::Stop) => {
                let live = LiveProcess::attach(*pid)?;
                self.stacks_live(live, exe, phases)
            }
            (Source::Live { pid, exe }, StacksMode::Precopy) => {
                self.stacks_precopy(*pid, exe, phases, warn)
            }
            (Source::Core { core, bias }, _) => self.stacks_core(core, *bias, phases),
        }
    }

    /// A stop capture of `live` (attached, running), detached before
    /// decoding.
    pub(super) fn stacks_live(
        &self,
        live: LiveProcess,
        exe: &Path,
        mut clock: Phases,
    ) -> Result<Stacks, InspectError> {
        let prog = &self.prog;
        let pid = live.pid();
        // Everything that can be done with the target running is done first.
        let bias = prog.load_bias(&read_mappings(pid), exe)?;
        let globals = prog.locate(live.memory(), bias)?;
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
        let capture = capture?;
        let dump = prog.decode(&capture, bias)?;
        clock.mark("decode");
        if dump.goroutines.is_empty() {
            return Err(InspectError::NoGoroutines {
                of: format!("pid {pid}"),
            });
        }
        Ok(Stacks {
            dump,
            threads: capture.threads.len(),
            bytes: capture.bytes,
            stopped_for: Some(paused),
            mode: Some(StacksMode::Stop),
            precopy: None,
            phases: clock,
        })
    }

    fn stacks_core(
        &self,
        core: &CoreFile,
        bias: u64,
        mut clock: Phases,
    ) -> Result<Stacks, InspectError> {
        let prog = &self.prog;
        // Only goat's cores record the clock at the stop; without it, how long
        // goroutines have waited is unknown and not shown.
        let globals = prog.locate(core, bias)?;
        let now = core.monotonic_at_stop();
        let capture = prog.capture(core, &globals, now, goruntime::Capture::default())?;
        clock.mark("read");
        let dump = prog.decode(&capture, bias)?;
        clock.mark("decode");
        // A Go process always has a goroutine: none is a wrong reading
        // (most likely of another build), never an answer.
        if dump.goroutines.is_empty() {
            return Err(InspectError::NoGoroutines {
                of: format!("core {}", core.path().display()),
            });
        }
        Ok(Stacks {
            dump,
            threads: capture.threads.len(),
            bytes: capture.bytes,
            stopped_for: None,
            mode: None,
            precopy: None,
            phases: clock,
        })
    }
}
