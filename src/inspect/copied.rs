//! The copy of one read of every goroutine before it is decoded, and what
//! `--stats` reports of the read: the meeting point of the ways a copy is
//! made (`stacks.rs` for a stop or a core, `precopy.rs` while the target
//! runs) and of what is done with it.

use std::time::Duration;

use crate::goruntime::labels::LabelTable;
use crate::goruntime::precopy::PrecopyStats;
use crate::goruntime::Capture;
use crate::tracer::StopWindow;

use super::mode_choice::{ModeChoice, StacksMode};
use super::phases::Phases;

/// What `--stats` reports about one read of every goroutine, however it
/// was then decoded.
#[derive(Debug)]
pub struct ReadReport {
    /// OS threads seen.
    pub threads: usize,
    /// Bytes copied from the target (read from the core, for a core).
    pub bytes: usize,
    /// How long the live process was stopped, the longest stop when there
    /// were two (pre-copy mode); `None` for a core.
    pub stopped_for: Option<Duration>,
    /// Every stop of a live process, in order (the setup stop and the
    /// final one in pre-copy mode); none for a core.
    pub stops: Vec<StopWindow>,
    /// The mode that ran (after a fallback, stop); `None` for a core.
    pub mode: Option<StacksMode>,
    /// The mode asked for or chosen, and why; `None` for a core.
    pub choice: Option<ModeChoice>,
    /// Pre-copy mode: the setup stop (the target opens the userfaultfd)
    /// and the final stop, and what was copied when.
    pub precopy: Option<PrecopyReport>,
    /// Wall-clock time per phase: "load" (opening the [`Inspector`]), then
    /// "prepare", "stop" for a process or "read" for a core, then "decode"
    /// ([`Inspector::stacks`]) or "decode+write" ([`Inspector::write_stacks`]:
    /// the two run together). A caller may mark its own phases after these.
    pub phases: Phases,
}

/// What a pre-copy capture cost, for `--stats`.
#[derive(Debug, Clone, Default)]
pub struct PrecopyReport {
    /// The stop in which the target opened the userfaultfd.
    pub setup_pause: Duration,
    /// The final stop.
    pub final_pause: Duration,
    pub stats: PrecopyStats,
    /// goat's tracer and guardian processes.
    pub helpers: Vec<crate::tracer::oom::Helper>,
}

/// The copy of one read, not yet decoded.
pub(super) struct Copied {
    pub(super) capture: Capture,
    pub(super) bias: u64,
    /// What was read, for messages: "pid N" or "core FILE".
    pub(super) of: String,
    /// Every stop of a live process, in order; none for a core.
    pub(super) stops: Vec<StopWindow>,
    pub(super) mode: Option<StacksMode>,
    /// Set by [`Inspector::copy`] for a process.
    pub(super) choice: Option<ModeChoice>,
    pub(super) precopy: Option<PrecopyReport>,
    pub(super) phases: Phases,
    /// The goroutines' pprof labels, when asked for (read in the stop, or
    /// from the core).
    pub(super) labels: Option<LabelTable>,
    /// Work that goes on while the copy is decoded (pre-copy mode: taking
    /// the write protection off every tracked page), awaited by
    /// [`Self::finish`].
    pub(super) meanwhile: Meanwhile,
}

impl Copied {
    /// Waits for what went on while decoding, and marks the phase that
    /// ends with it.
    pub(super) fn finish(mut self, phase: &'static str) -> ReadReport {
        self.meanwhile.join();
        self.phases.mark(phase);
        ReadReport {
            threads: self.capture.threads.len(),
            bytes: self.capture.bytes,
            stopped_for: self.stops.iter().map(|s| s.lasted).max(),
            stops: self.stops,
            mode: self.mode,
            choice: self.choice,
            precopy: self.precopy,
            phases: self.phases,
        }
    }
}

/// Work that goes on while a copy is decoded, awaited when it is dropped
/// too: on an error path (a closed output, say) the write protection
/// still comes off every page before goat goes on.
#[derive(Default)]
pub(super) struct Meanwhile(Option<std::thread::JoinHandle<()>>);

impl Meanwhile {
    pub(super) fn spawn(work: impl FnOnce() + Send + 'static) -> Meanwhile {
        Meanwhile(Some(std::thread::spawn(work)))
    }

    fn join(&mut self) {
        if let Some(work) = self.0.take() {
            let _ = work.join();
        }
    }
}

impl Drop for Meanwhile {
    fn drop(&mut self) {
        self.join();
    }
}
