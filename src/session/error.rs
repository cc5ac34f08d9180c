//! The engine's one error vocabulary: what a front end (the REPL, DAP)
//! gets back from a request it made of the session.

use std::path::PathBuf;

use thiserror::Error;

use crate::binary::BinaryError;
use crate::corefile::writer::SnapshotError;
use crate::goruntime::GoError;
use crate::tracer::AttachError;
use crate::values::VarError;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Go(#[from] GoError),
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Var(#[from] VarError),
    #[error("reading the goroutines")]
    ReadGoroutines(#[source] GoError),
    #[error("reading the goroutines' stacks")]
    ReadStacks(#[source] GoError),
    /// A request that needs the frozen target, made while it runs.
    #[error("the target is running")]
    Running,
    #[error("a core file cannot be run")]
    CoreCannotRun,
    #[error("this session is a core file already: {}", .0.display())]
    CoreAlready(PathBuf),
    /// Running a process stopped by job control would wait for ever.
    #[error(
        "the program was stopped by job control (SIGSTOP or Ctrl-Z) before goat attached, \
         and runs only once it gets SIGCONT: running it now would wait for ever. To run \
         it: quit (it stays stopped), `kill -CONT {pid}`, then attach again"
    )]
    JobStopped { pid: String },
    /// A run failed and the process is not there any more.
    #[error("the target is gone; the session ends")]
    TargetGone(#[source] Box<SessionError>),
    #[error("no goroutines were read at this stop")]
    NoGoroutinesRead,
    #[error("no goroutine selected")]
    NoGoroutineSelected,
    #[error("no goroutine {0}")]
    NoGoroutine(u64),
    #[error("goroutine {g} has no frame {frame}")]
    NoFrame { g: u64, frame: usize },
    #[error("goroutine {0} has no frame")]
    NoFrames(u64),
    #[error("frame {0} has no physical frame")]
    NoPhysicalFrame(usize),
    #[error("no variable information: {0}")]
    NoVariables(String),
    #[error("no breakpoint {0:?}")]
    NoBreakpoint(String),
    #[error("breakpoint {id} has {max} commands already")]
    TooManyCommands { id: i64, max: usize },
    #[error("{0:?} is not a hexadecimal address")]
    NotAnAddress(String),
    #[error("{0:?} is not a line number")]
    NotALine(String),
    #[error("{0:?} is not a line offset")]
    NotALineOffset(String),
    #[error("{0}: no such line")]
    NoSuchLine(String),
    #[error("no function, file or line {0:?}")]
    NoLocation(String),
    #[error("no code for {file}:{line}")]
    NoCode { file: String, line: u32 },
    #[error("{0} has no caller to return to")]
    NoCaller(String),
    #[error("no code to disassemble in {start:#x}-{end:#x} (empty, or over 64 KiB)")]
    CodeRange { start: u64, end: u64 },
    #[error("cannot read the code: {0}")]
    ReadCode(String),
    #[error("pc {0:#x} is in no Go function")]
    NotInGo(u64),
    /// `why` is not a `#[source]`: it is said once, in this message.
    #[error("condition {text:?}: {why}")]
    BadCondition { text: String, why: VarError },
    #[error("condition {text:?} is a {ty}, not a bool")]
    NotABool { text: String, ty: String },
    #[error("{0} hits with a false condition in a row; stopped")]
    TooManyFalseHits(usize),
    /// SIGTERM or SIGHUP arrived while the target ran.
    #[error("goat is terminating")]
    Terminating,
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;
