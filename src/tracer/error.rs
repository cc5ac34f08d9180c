//! Why a tracer operation failed: one enum for attaching, stopping, run
//! control, breakpoints and injection, whichever form the tracer takes.
//!
//! It is plain data (serde), so a tracer process (`remote.rs`) sends goat
//! the very value goat's own ptrace thread would have returned. Each
//! variant is a condition goat can name; `Os` is kept for what the kernel
//! refused, with the errno it returned (never one made up to fit).

use std::borrow::Cow;
use std::fmt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a tracer operation was doing: a fixed name in goat's code, owned
/// only once it has crossed the tracer pipe.
pub type Op = Cow<'static, str>;

/// Why attaching to (or stopping, running, changing) a process failed.
#[derive(Debug, Clone, Error, Serialize, Deserialize)]
pub enum AttachError {
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: i32 },
    #[error("not permitted to attach to pid {pid}:\n{advice}")]
    PermissionDenied { pid: i32, advice: String },
    #[error(
        "pid {pid} is already traced by pid {tracer_pid} ({tracer_name}); {}",
        crate::process::preflight::detach_advice(tracer_name, *tracer_pid)
    )]
    AlreadyTraced {
        pid: i32,
        tracer_pid: i32,
        tracer_name: String,
    },
    #[error("pid {pid} is a zombie: it has exited and only waits for its parent to reap it")]
    Zombie { pid: i32 },
    #[error("pid {pid} is a kernel thread, not a program")]
    KernelThread { pid: i32 },
    #[error("refusing to attach to goat itself or one of its ancestors")]
    SelfAttach,
    #[error("pid {pid} exited")]
    Exited { pid: i32 },
    /// The process ended while traced, and how is known.
    #[error("pid {pid} {how}")]
    Ended { pid: i32, how: Ending },
    /// The process replaced its program (`exec`): what goat read of the
    /// old one no longer describes it.
    #[error("pid {pid} exec'd {}: it runs another program now", path.display())]
    Execd { pid: i32, path: std::path::PathBuf },
    /// The kernel refused `op` with `errno` (for a syscall goat had the
    /// target run, the errno that call returned there).
    #[error("{op}: {errno}")]
    Os {
        op: Op,
        #[serde(with = "errno_number")]
        errno: Errno,
    },
    /// An I/O error without an errno (a short read of `/proc/PID/mem`).
    #[error("{op}: {detail}")]
    Io { op: Op, detail: String },
    /// A syscall goat had the target run returned what no errno is.
    #[error("{op} returned {ret}")]
    TargetSyscall { op: Op, ret: i64 },
    /// `waiting_for` says what, starting with "waiting for".
    #[error("timed out {waiting_for}")]
    TimedOut { waiting_for: Op },
    #[error("a breakpoint is already set at {addr:#x}")]
    BreakpointExists { addr: u64 },
    /// Another debugger's, or the program's own.
    #[error("there is already an int3 instruction at {addr:#x} (not goat's)")]
    ForeignInt3 { addr: u64 },
    #[error("writing the target's code at {addr:#x} did not take: another byte reads back")]
    WriteNotVerified { addr: u64 },
    /// A debug register covers 1, 2, 4 or 8 bytes at a multiple of that.
    #[error("cannot watch {size} byte(s) at {addr:#x}: a watchpoint covers 1, 2, 4 or 8 bytes aligned to their size")]
    WatchUnaligned { addr: u64, size: u8 },
    #[error("every debug register is in use (4 watchpoints at most); clear one first")]
    WatchSlotsFull,
    #[error("no thread can run an injected syscall (each is in a job-control stop or delivering a signal)")]
    NoInjectionThread,
    #[error("thread {tid} is in a job-control stop")]
    JobControlStop { tid: i32 },
    #[error("the injected syscall did not finish")]
    InjectionUnfinished,
    #[error(
        "no thread of the target can be given a way back (its free stack or state is unknown), \
         so goat runs no syscall in it: a tracer killed in the middle would leave the thread \
         with borrowed registers"
    )]
    NoWayBack,
    #[error("the target's text has no thread-exit loop for the snapshot copy's reaper thread")]
    NoExitLoop,
    #[error("the snapshot copy's reaper thread {tid} {what}")]
    Reaper { tid: i32, what: String },
    #[error("a snapshot copy already exists")]
    CopyExists,
    #[error("the target's clone was not traced: no snapshot copy")]
    CopyUntraced,
    #[error("the snapshot copy {pid} died before its first stop")]
    CopyDied { pid: i32 },
    #[error("wait4 in the target did not reap the snapshot copy {pid}")]
    CopyNotReaped { pid: i32 },
    #[error("the tracer holds no borrowed descriptor {fd}")]
    NoSuchFd { fd: i32 },
    #[error("thread {tid} cannot take a function call: {why}")]
    CallThread { tid: i32, why: Op },
    #[error("function call: {detail}")]
    CallProtocol { detail: String },
    #[error("goat's ptrace thread is gone")]
    TracerThreadGone,
    #[error("goat's tracer process is gone")]
    TracerProcessGone,
    #[error("an unexpected reply from the tracer")]
    UnexpectedReply,
    #[error("the tracer could not read a request: {detail}")]
    UnreadableRequest { detail: String },
    /// `step-instruction` on a thread the tracer does not hold stopped.
    #[error("thread {tid} is not stopped under goat")]
    ThreadNotStopped { tid: i32 },
}

impl AttachError {
    pub(super) fn os(op: impl Into<Op>, errno: Errno) -> AttachError {
        AttachError::Os {
            op: op.into(),
            errno,
        }
    }

    /// `Os` with the error's errno, or `Io` if it has none.
    pub(super) fn io(op: impl Into<Op>, e: &std::io::Error) -> AttachError {
        match e.raw_os_error() {
            Some(n) => AttachError::os(op, Errno::from_raw(n)),
            None => AttachError::Io {
                op: op.into(),
                detail: e.to_string(),
            },
        }
    }

    pub(super) fn timed_out(waiting_for: impl Into<Op>) -> AttachError {
        AttachError::TimedOut {
            waiting_for: waiting_for.into(),
        }
    }

    /// A failed syscall the target ran for goat, from its raw return
    /// value: the kernel returns -errno, -4095..=-1 (anything else comes
    /// from registers that are not that call's result).
    pub(super) fn in_target(op: impl Into<Op>, ret: i64) -> AttachError {
        match ret.checked_neg().and_then(|n| i32::try_from(n).ok()) {
            Some(n @ 1..=4095) => AttachError::os(op, Errno::from_raw(n)),
            _ => AttachError::TargetSyscall { op: op.into(), ret },
        }
    }
}

/// How a traced process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// It exited with this status.
    Status(i32),
    /// A signal killed it (its number).
    Signal(i32),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ending::Status(code) => write!(f, "exited with status {code}"),
            Ending::Signal(n) => match nix::sys::signal::Signal::try_from(n) {
                Ok(sig) => write!(f, "was killed by {}", sig.as_str()),
                Err(_) => write!(f, "was killed by signal {n}"),
            },
        }
    }
}

/// An [`Errno`] as its number on the tracer pipe.
mod errno_number {
    use nix::errno::Errno;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(errno: &Errno, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*errno as i32)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        i32::deserialize(d).map(Errno::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosses_the_pipe_unchanged() {
        let errors = [
            AttachError::os("PTRACE_SEIZE", Errno::EPERM),
            AttachError::BreakpointExists { addr: 0x401000 },
            AttachError::Ended {
                pid: 7,
                how: Ending::Signal(9),
            },
            AttachError::timed_out("waiting for threads to stop"),
        ];
        for e in errors {
            let line = serde_json::to_string(&e).unwrap_or_default();
            let back: Result<AttachError, _> = serde_json::from_str(&line);
            assert_eq!(back.map(|b| b.to_string()).ok(), Some(e.to_string()));
        }
    }

    #[test]
    fn reads_well() {
        assert_eq!(
            AttachError::os("PTRACE_SEIZE", Errno::EPERM).to_string(),
            "PTRACE_SEIZE: EPERM: Operation not permitted"
        );
        assert_eq!(
            AttachError::timed_out("waiting for threads to stop").to_string(),
            "timed out waiting for threads to stop"
        );
        let ended = |how| AttachError::Ended { pid: 7, how }.to_string();
        assert_eq!(ended(Ending::Status(3)), "pid 7 exited with status 3");
        assert_eq!(ended(Ending::Signal(9)), "pid 7 was killed by SIGKILL");
    }

    #[test]
    fn a_target_syscall_errno_is_only_what_the_kernel_returns() {
        let errno = |ret| match AttachError::in_target("clone in the target", ret) {
            AttachError::Os { errno, .. } => Some(errno),
            _ => None,
        };
        assert_eq!(errno(-12), Some(Errno::ENOMEM));
        assert_eq!(errno(-4096), None);
        assert_eq!(errno(i64::MIN), None);
        assert_eq!(errno(0), None);
        assert_eq!(errno(5), None);
    }
}
