//! A program that calls `exec` under goat: its image, every int3 in it and
//! every other thread are gone, and the process runs another program (the
//! kernel reports `PTRACE_EVENT_EXEC`, asked for with
//! `PTRACE_O_TRACEEXEC`). Nothing goat knew of the old image is true any
//! more: no byte is "restored" at the old addresses (they are the new
//! program's now, or nothing), a run in progress ends with
//! [`StopReason::Exec`](super::StopReason), and every later request but a
//! resume fails with [`AttachError::Execd`], so that no stale goroutine is
//! ever shown. The session then detaches; the new program runs on.

use nix::sys::ptrace;
use nix::unistd::Pid;

use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::signals;
use crate::process::procfs;

impl Tracer {
    /// The `PTRACE_EVENT_EXEC` stop of `tid` (the thread that exec'd, under
    /// the process's pid by now). It stays stopped during a run or a stop.
    pub(super) fn on_exec(&mut self, tid: i32, stopping: bool) {
        let pid = self.pid;
        let path = procfs::exe(pid).unwrap_or_else(|_| "an unknown program".into());
        self.execd = Some(path);
        self.bps.forget_image();
        // The kernel clears debug registers at exec; goat forgets its
        // watchpoints and tells the guardian.
        self.clear_debug_registers();
        // A function call cannot outlive the image it ran in.
        if self.call.take().is_some() {
            signals::set_calling(false);
        }
        // The other threads are gone (their exits may still be reported).
        self.threads.clear();
        let keep = stopping || self.bps.collecting;
        if keep {
            self.threads.insert(tid, State::Stopped(StopKind::Event));
        } else {
            self.threads.insert(tid, State::Running);
            let _ = ptrace::cont(Pid::from_raw(tid), None);
        }
    }

    /// The error every request gets once the program exec'd.
    pub(super) fn execd_error(&self) -> Option<AttachError> {
        self.execd.as_ref().map(|path| AttachError::Execd {
            pid: self.pid,
            path: path.clone(),
        })
    }
}
