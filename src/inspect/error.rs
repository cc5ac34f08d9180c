//! What can go wrong opening and reading a target, and what goat says
//! along the way without failing.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::corefile::writer::SnapshotError;
use crate::corefile::CoreError;
use crate::goruntime::GoError;
use crate::tracer::AttachError;

/// Why an [`super::Inspector`] could not open or read its target. The
/// layers' own errors are kept whole (transparent), so their messages and
/// causes read as they do on their own and callers can still tell them
/// apart.
#[derive(Debug, Error)]
pub enum InspectError {
    /// Attaching to, stopping or resuming the process.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// Reading the core file.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Finding or reading the Go runtime's state.
    #[error(transparent)]
    Go(#[from] GoError),
    /// Writing a core of the process.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Reading the Go heap (`goat heap`).
    #[error(transparent)]
    Heap(#[from] crate::heapgraph::HeapGraphError),
    /// The core's destination is refused (exists, or not a regular file).
    #[error(transparent)]
    Destination(io::Error),
    /// The interactive session could not start.
    #[error(transparent)]
    Session(crate::session::SessionError),
    /// The executable is not a Go program goat can read.
    #[error("{}{} is not a Go program goat can read: {reason}", exe.display(), pid_note(*pid))]
    NotGo {
        exe: PathBuf,
        /// The process it runs as, when there is one.
        pid: Option<i32>,
        /// Not a source: the message already says it in full.
        reason: GoError,
    },
    /// The core names an executable that is not on this machine.
    #[error(
        "the core names {} as its executable but it is not on this machine: pass --exe",
        named.display()
    )]
    ExecutableMissing { named: PathBuf },
    /// The executable is not the one the core was taken of, or not the one
    /// the process runs (rebuilt, other flags, another release, another
    /// program): reading on would print plausible junk.
    #[error("{} is not the executable {of}: {what}", exe.display())]
    WrongExecutable {
        exe: PathBuf,
        /// "core FILE was taken of" or "pid N runs".
        of: String,
        what: super::verify::Mismatch,
    },
    /// No goroutine was found: a Go process always has at least one, so
    /// the runtime's state was not where goat looked.
    #[error(
        "no goroutines found in {of}: a Go program always has one, so its runtime \
         state was not read right (is the executable the one it ran?)"
    )]
    NoGoroutines { of: String },
    /// The symbols file (`--symbols`) is not Go, or not of this executable.
    #[error(transparent)]
    Symbols(#[from] crate::binary::SymbolsError),
    /// The copy of the target's memory could not be kept in its temporary
    /// file (a full disk, most likely).
    #[error("cannot keep the copy of the goroutines in a temporary file in {}: {cause} (set TMPDIR to a directory with room)", dir.display())]
    Spill { dir: PathBuf, cause: io::Error },
    /// Writing the dump failed (a closed pipe, a full disk).
    /// The cause is a source, not only text: a closed pipe is told apart
    /// by it (`stdio::is_broken_pipe`), and `{:#}` still prints it.
    #[error("writing the dump")]
    Output(#[source] io::Error),
    /// Test hooks only (`GOAT_TEST_PRECOPY_COMPARE`): the pre-copy capture
    /// differs from a stop capture taken in the same stop.
    #[error("the pre-copy capture differs from a stop capture of the same moment: {0}")]
    PrecopyMismatch(String),
    /// The core does not name its executable at all.
    #[error("{} does not name its executable: pass --exe", core.display())]
    ExecutableUnnamed { core: PathBuf },
}

impl InspectError {
    /// The capture's temporary file in `temporary_dir()` failed with `cause`.
    pub(super) fn spill(cause: io::Error) -> InspectError {
        InspectError::Spill {
            dir: crate::process::temporary_dir(),
            cause,
        }
    }
}

fn pid_note(pid: Option<i32>) -> String {
    pid.map_or(String::new(), |p| format!(" (pid {p})"))
}

/// Something worth telling the user that does not stop the work. Its text
/// is the warning itself (goat's CLI prefixes `goat: warning: `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The process's executable was replaced or removed since it started:
    /// it is read through `/proc/PID/exe` instead.
    ExecutableReplaced {
        pid: i32,
        exe: PathBuf,
        link: PathBuf,
    },
    /// `goat core`: the executable pid runs is no longer at the name it
    /// was started from (`named`), so its running image was saved beside
    /// the core, where `goat stacks --core` and `goat debug` find it.
    ExecutableSaved {
        pid: i32,
        named: PathBuf,
        saved: PathBuf,
    },
    /// `goat core`: as above, but the copy failed (why): the core can be
    /// read only with the very executable, which is gone.
    ExecutableNotSaved {
        pid: i32,
        named: PathBuf,
        why: String,
    },
    /// The core is read with the executable `goat core` saved beside it.
    SavedExecutableUsed { exe: PathBuf },
    /// Nothing in the core could show the executable is the one it was
    /// taken of (why): what goat prints rests on the user's word.
    ExecutableUnverified { exe: PathBuf, why: String },
    /// No tracer process could start for a core write: goat traces from
    /// its own process.
    NoTracerProcess { why: crate::tracer::NoTracerProcess },
    /// The binary has no DWARF and the layout of the release its version
    /// string names did not fit its goroutines; a neighbour's did.
    NeighbourLayout { version: String, used: u32 },
    /// Symbols and DWARF are read from a separate debug file found by the
    /// executable's GNU build ID or debuglink.
    DebugFile { path: PathBuf },
    /// A debug file was found where the executable points but does not
    /// describe it: it is not used.
    DebugFileRefused { why: String },
    /// What the tracer says about how a session is guarded (no tracer
    /// process, and whether a guardian stands in).
    SessionGuard(String),
    /// `goat stacks` could not copy while the target ran (no write
    /// tracking here: why): the target is stopped for the whole copy.
    PrecopyUnavailable { why: String },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::ExecutableReplaced { pid, exe, link } => write!(
                f,
                "{} was replaced or removed since pid {pid} started; reading the running executable through {}",
                exe.display(),
                link.display()
            ),
            Warning::ExecutableSaved { pid, named, saved } => write!(
                f,
                "{} was replaced or removed since pid {pid} started; saved the running executable \
                 as {} (keep it with the core: goat stacks --core and goat debug read it from there)",
                named.display(),
                saved.display()
            ),
            Warning::ExecutableNotSaved { pid, named, why } => write!(
                f,
                "{} was replaced or removed since pid {pid} started, and the running executable \
                 could not be saved beside the core ({why}): the core is readable only with a \
                 copy of that very build (--exe)",
                named.display()
            ),
            Warning::SavedExecutableUsed { exe } => write!(
                f,
                "reading the executable goat core saved beside the core: {}",
                exe.display()
            ),
            Warning::ExecutableUnverified { exe, why } => write!(
                f,
                "cannot check that {} is the executable the core was taken of: {why}",
                exe.display()
            ),
            Warning::NoTracerProcess { why } => write!(
                f,
                "no tracer process ({why}): tracing from goat itself, \
                 so goat killed during a syscall it runs in the target could harm it"
            ),
            Warning::NeighbourLayout { version, used } => write!(
                f,
                "{version}: its runtime is not laid out as its release's; go1.{used}'s layout fits its goroutines and is used"
            ),
            Warning::DebugFile { path } => {
                write!(f, "reading symbols and DWARF from {}", path.display())
            }
            Warning::DebugFileRefused { why } => write!(f, "not using a debug file: {why}"),
            Warning::SessionGuard(note) => f.write_str(note),
            Warning::PrecopyUnavailable { why } => write!(
                f,
                "no pre-copy capture ({why}): the target is stopped for the whole copy (--mode stop)"
            ),
        }
    }
}
