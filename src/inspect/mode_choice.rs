//! Which mode `goat stacks` reads a process in when the user did not say.
//!
//! Pre-copy mode stops the target twice, each time for a nearly fixed
//! cost (borrowing the userfaultfd and write-protecting, then scanning and
//! re-reading what was written), about 1.5 to 4 ms here whatever the
//! program's size; stop mode stops it once for as long as the copy takes,
//! which grows with the goroutines' bytes. Below a few megabytes the copy
//! is the shorter pause (etcd: 0.4 ms in stop mode against 1.4-1.9 ms plus
//! a 5.8 ms set-up stop in pre-copy mode). The choice is made before
//! anything is attached, from the goroutine count `allgs` holds (one read
//! of the running target), times what a goroutine typically costs to copy.
//!
//! The figures come from `scripts/bench modes` (services of 10 to 10000
//! goroutines, each mode on a fresh process, as a user running goat once
//! meets it; median longest stop of 5): stop mode took 0.7 ms at 10
//! goroutines, 1.4 ms at 300, 2.8 ms at 1000 (1.6 MiB copied) and 6.0 ms
//! at 2000 (3.3 MiB); pre-copy 1.2 to 3.9 ms throughout, its set-up stop
//! longer for a larger process (etcd's: 5.8 ms). So stop mode up to
//! 2 MiB, between the last size where it won and the first it lost.

use std::fmt;

use crate::goruntime::{Globals, GoProgram};
use crate::process::{Memory, MemoryExt};

/// How a live process is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StacksMode {
    /// Whichever of the two stops the target for less, told from the
    /// expected size of the copy (`mode_choice.rs`).
    #[default]
    Auto,
    /// Copied while it runs, its writes tracked; stopped only to re-read
    /// what changed (`goruntime/precopy.rs`). Falls back to [`Self::Stop`],
    /// with a warning, where write tracking is unavailable.
    Precopy,
    /// Stopped for the whole copy.
    Stop,
}

impl StacksMode {
    pub fn name(self) -> &'static str {
        match self {
            StacksMode::Auto => "auto",
            StacksMode::Precopy => "precopy",
            StacksMode::Stop => "stop",
        }
    }
}

/// What a stop capture copies per goroutine of a service (its `g`, about
/// 1 KiB of used stack and the ranges around them): 1760 bytes measured
/// on `tests/fixtures/service`.
pub const TYPICAL_GOROUTINE_BYTES: u64 = 1760;

/// Expected copy size above which pre-copy mode's pause is the shorter:
/// between the 1.6 MiB where stop mode still won and the 3.3 MiB where it
/// lost (stop mode's pause grows with the copy; pre-copy's does not).
pub const PRECOPY_FROM_BYTES: u64 = 2 << 20;

/// The mode chosen for a read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChoice {
    pub mode: StacksMode,
    pub why: ChoiceReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceReason {
    /// `--mode` said so.
    Forced,
    /// From the goroutine count: the expected copy against the threshold.
    Size {
        goroutines: u64,
        expected_bytes: u64,
    },
    /// The count could not be read (why): pre-copy, whose pause does not
    /// grow with a size goat could not learn.
    Unknown(String),
}

impl fmt::Display for ModeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        match &self.why {
            ChoiceReason::Forced => write!(f, "{} mode, as --mode says", self.mode.name()),
            ChoiceReason::Size {
                goroutines,
                expected_bytes,
            } => write!(
                f,
                "{} mode, chosen: {goroutines} goroutines, about {:.1} MiB to copy, {} the {:.0} MiB \
                 from which pre-copy's pause is the shorter (--mode forces one)",
                self.mode.name(),
                mib(*expected_bytes),
                if self.mode == StacksMode::Precopy {
                    "past"
                } else {
                    "below"
                },
                mib(PRECOPY_FROM_BYTES)
            ),
            ChoiceReason::Unknown(why) => write!(
                f,
                "{} mode, chosen without knowing the size ({why})",
                self.mode.name()
            ),
        }
    }
}

/// The mode for a program of `goroutines` (`allglen`, which a hostile or
/// torn read may make anything: the product saturates).
pub fn choose_for(goroutines: u64) -> ModeChoice {
    let expected_bytes = goroutines.saturating_mul(TYPICAL_GOROUTINE_BYTES);
    let mode = if expected_bytes > PRECOPY_FROM_BYTES {
        StacksMode::Precopy
    } else {
        StacksMode::Stop
    };
    ModeChoice {
        mode,
        why: ChoiceReason::Size {
            goroutines,
            expected_bytes,
        },
    }
}

/// The mode for the running program `mem` (not stopped: `allglen` is one
/// word, read whole).
pub(super) fn choose(prog: &GoProgram, mem: &dyn Memory, bias: u64) -> ModeChoice {
    let count = prog
        .locate(mem, bias)
        .map_err(|e| e.to_string())
        .and_then(|g: Globals| {
            let len = g.allgs.checked_add(8).ok_or("allgs at the end of memory")?;
            mem.read_u64(len).map_err(|e| e.to_string())
        });
    match count {
        Ok(n) => choose_for(n),
        Err(why) => ModeChoice {
            mode: StacksMode::Precopy,
            why: ChoiceReason::Unknown(format!("cannot read the goroutine count: {why}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_programs_are_stopped_large_ones_pre_copied() {
        assert_eq!(choose_for(0).mode, StacksMode::Stop);
        // etcd and a small service: a few hundred goroutines.
        assert_eq!(choose_for(300).mode, StacksMode::Stop);
        // The bench: stop mode still won at 1000, lost at 2000.
        assert_eq!(choose_for(1000).mode, StacksMode::Stop);
        assert_eq!(choose_for(2000).mode, StacksMode::Precopy);
        assert_eq!(choose_for(100_000).mode, StacksMode::Precopy);
        // A torn or hostile count: no overflow.
        assert_eq!(choose_for(u64::MAX).mode, StacksMode::Precopy);
        let at = PRECOPY_FROM_BYTES / TYPICAL_GOROUTINE_BYTES;
        assert_eq!(choose_for(at).mode, StacksMode::Stop);
        assert_eq!(choose_for(at + 1).mode, StacksMode::Precopy);
    }

    #[test]
    fn says_why() {
        let small = choose_for(120).to_string();
        assert!(
            small.starts_with(
                "stop mode, chosen: 120 goroutines, about 0.2 MiB to copy, below the 2 MiB"
            ),
            "{small}"
        );
        let large = choose_for(50_000).to_string();
        assert!(
            large.starts_with("precopy mode, chosen: 50000 goroutines"),
            "{large}"
        );
        assert!(large.contains("past the 2 MiB"), "{large}");
        let forced = ModeChoice {
            mode: StacksMode::Stop,
            why: ChoiceReason::Forced,
        };
        assert_eq!(forced.to_string(), "stop mode, as --mode says");
    }
}
