//! The whole job, for a library user as for goat's CLI: open a process or a
//! core, then read every goroutine's stack (or open a session, or write a
//! core) in one call. Nothing here prints: the caller gets the
//! [`Dump`](crate::goruntime::Dump), phase timings and typed
//! [`InspectError`]s as return values, and each [`Warning`] as it arises,
//! through a `warn` callback (so a warning shows before a long write or a
//! later failure, as it did when the CLI printed it on the spot).
//!
//! ```no_run
//! let mut warn = |w| eprintln!("warning: {w}");
//! let stacks = goat::inspect::Inspector::open_pid(1234, &mut warn)?.stacks()?;
//! for g in &stacks.dump.goroutines {
//!     println!("goroutine {}: {} frames", g.id, g.frames.len());
//! }
//! # Ok::<(), goat::inspect::InspectError>(())
//! ```
//!
//! For a large process, [`Inspector::write_stacks`] writes the dump (text,
//! JSON or groups) as it is decoded instead, never holding every goroutine:
//!
//! ```no_run
//! let mut warn = |w| eprintln!("warning: {w}");
//! let inspector = goat::inspect::Inspector::open_pid(1234, &mut warn)?;
//! let mut out = std::io::BufWriter::new(std::io::stdout().lock());
//! let written = inspector.write_stacks(&mut out, goat::report::Format::Text)?;
//! eprintln!("{} goroutines", written.goroutines);
//! # Ok::<(), goat::inspect::InspectError>(())
//! ```

mod check;
mod copied;
mod error;
mod heap;
mod live_copy;
mod mode_choice;
mod open;
mod phases;
mod pprof;
mod precopy;
mod saved_exe;
mod session;
mod stacks;
mod verify;
mod waits;
mod why;
mod write_core;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::corefile::CoreFile;
use crate::goruntime::GoProgram;

pub use check::check;
pub use copied::{PrecopyReport, ReadReport};
pub use error::{InspectError, Warning};
pub use heap::{HeapOptions, HeapOutcome};
pub use live_copy::ReleasedCopy;
pub use mode_choice::{ChoiceReason, ModeChoice, StacksMode};
pub use phases::{hold_duration, test_hook_set, Phases};
pub use pprof::LABELS_UNREADABLE;
pub use session::Debuggee;
pub use stacks::{Stacks, StacksWritten};
pub use verify::Mismatch;
pub use why::{WhyOptions, WhyOutcome};
pub use write_core::write_core;

/// How to open a target.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Take symbols and DWARF from this file (an unstripped rebuild of the
    /// same source, or a debug file), checked to describe the executable.
    pub symbols: Option<PathBuf>,
    /// Read a core through a memory map rather than `pread` and a small
    /// cache: many times faster for the random reads of a heap walk, but
    /// only for a file no one else can change (`goat why`'s own unlinked
    /// copy): a file truncated meanwhile would kill goat with SIGBUS.
    pub map_core: bool,
}

/// A Go program opened for reading: a live process (by pid) or a core and
/// its executable. Opening reads only the executable and the core; a live
/// process is attached to only for the duration of each read.
pub struct Inspector {
    prog: GoProgram,
    source: Source,
    /// How long opening took: the "load" phase of each read's timings.
    load: Duration,
}

enum Source {
    Live {
        pid: i32,
        exe: PathBuf,
    },
    // Boxed: a core's index is large, and an Inspector is moved around.
    Core {
        core: Arc<CoreFile>,
        bias: u64,
        /// The executable as the process ran it (what profiles name).
        exe: PathBuf,
    },
}

impl Inspector {
    /// Opens process `pid`'s executable, refusing a target goat cannot read
    /// (gone, not attachable, not Go) before any ptrace call. Warnings go to
    /// `warn`.
    pub fn open_pid(pid: i32, warn: &mut dyn FnMut(Warning)) -> Result<Inspector, InspectError> {
        Self::open_pid_with(pid, &OpenOptions::default(), warn)
    }

    /// [`Self::open_pid`] with options (a symbols file).
    pub fn open_pid_with(
        pid: i32,
        opts: &OpenOptions,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Inspector, InspectError> {
        let start = Instant::now();
        let (prog, exe, _) = open::open_program(pid, opts, warn)?;
        Ok(Inspector {
            prog,
            source: Source::Live { pid, exe },
            load: start.elapsed(),
        })
    }

    /// Opens the core at `core` and its executable: `exe`, or else the one
    /// the core names. Warnings go to `warn`.
    pub fn open_core(
        core: &Path,
        exe: Option<&Path>,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Inspector, InspectError> {
        Self::open_core_with(core, exe, &OpenOptions::default(), warn)
    }

    /// [`Self::open_core`] with options (a symbols file).
    pub fn open_core_with(
        core: &Path,
        exe: Option<&Path>,
        opts: &OpenOptions,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Inspector, InspectError> {
        let start = Instant::now();
        let (core, prog, bias, exe) = open::open_core(core, exe, opts, warn)?;
        Ok(Inspector {
            prog,
            source: Source::Core {
                core: Arc::new(core),
                bias,
                exe,
            },
            load: start.elapsed(),
        })
    }

    /// The core being read, when it is one.
    fn core_file(&self) -> Option<&CoreFile> {
        match &self.source {
            Source::Live { .. } => None,
            Source::Core { core, .. } => Some(core),
        }
    }

    /// The Go program being read.
    pub fn program(&self) -> &GoProgram {
        &self.prog
    }

    /// The process id: the live process's, or the one a core names.
    pub fn pid(&self) -> Option<i32> {
        match &self.source {
            Source::Live { pid, .. } => Some(*pid),
            Source::Core { core, .. } => core.pid(),
        }
    }

    /// Whether this is a core rather than a live process.
    pub fn is_core(&self) -> bool {
        matches!(self.source, Source::Core { .. })
    }
}
