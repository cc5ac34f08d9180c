//! The only code that calls ptrace.
//!
//! The kernel takes ptrace requests only from the thread that attached, so a
//! [`LiveProcess`](super::LiveProcess) owns one OS thread (`goat-ptrace`,
//! started in `live.rs`) that runs every ptrace and waitpid call, as the
//! [`Tracer`] here. Work goes to it as boxed closures over a crossbeam
//! channel, each with its own bounded(1) reply channel; what the rest of
//! goat asks is a plain-data `Request` (`wire.rs`), so that a session can
//! keep that thread in a tracer process of its own instead (`remote.rs`).
//!
//! Attach is `PTRACE_SEIZE` (+ `PTRACE_O_TRACECLONE`), stop is
//! `PTRACE_INTERRUPT`: no SIGSTOP is ever sent, so if goat dies (even by
//! SIGKILL) the kernel detaches and the target runs on. While attached and
//! running, the thread services the tracees' stops (new clones, signals on
//! their way to the target) every millisecond; with every tracee stopped it
//! blocks until a request or a tracee's exit (see `live.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::poll::poll_until_deadline;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::breakpoints::Breakpoints;
use crate::process::Thread;

// Every tracer file names the error through here, where it is returned most.
pub use super::error::AttachError;
use super::error::Ending;

/// How long a stop waits for every thread to report before giving up (a
/// thread in uninterruptible sleep, `D`, cannot stop until it wakes).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the ptrace thread services tracee stops while the target runs.
pub(super) const SERVICE_INTERVAL: Duration = Duration::from_millis(1);
const PTRACE_EVENT_CLONE: i32 = libc::PTRACE_EVENT_CLONE;
const PTRACE_EVENT_STOP: i32 = libc::PTRACE_EVENT_STOP;

/// Work for the ptrace thread.
pub(super) type Job = Box<dyn FnOnce(&mut Tracer) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopKind {
    /// `PTRACE_EVENT_STOP` from our interrupt (or a new clone's first stop).
    Event,
    /// Signal-delivery-stop: the signal is re-injected on resume.
    Signal(Signal),
    /// Group-stop (someone sent SIGSTOP/SIGTSTP…): resumed with `PTRACE_LISTEN`
    /// so the user's stop stays in force.
    Group(Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Running,
    Stopped(StopKind),
}

/// State owned by the ptrace thread. Only ever touched on that thread.
pub struct Tracer {
    pub(super) pid: i32,
    pub(super) threads: BTreeMap<i32, State>,
    pub(super) detached: bool,
    /// Breakpoints and their saved bytes (see `breakpoints.rs`, `exec.rs`).
    pub(super) bps: Breakpoints,
    /// Watchpoints in the debug registers (see `hwbreak.rs`).
    pub(super) hw: super::hwbreak::HwWatch,
    /// A process cloned from the target for a snapshot (see `inject.rs`):
    /// traced by us, never part of `threads`, killed and reaped on detach.
    pub(super) fork_child: Option<i32>,
    /// The thread of the target that made that copy and waits for it
    /// (`reaper.rs`): traced by us, never part of `threads`.
    pub(super) reaper: Option<i32>,
    /// That thread has ended (its exit seen by a wait for every tracee).
    pub(super) reaper_ended: bool,
    /// How the process ended, once its main thread's exit was seen.
    pub(super) ended: Option<Ending>,
    /// Descriptors taken from the target (`borrow_fd.rs`), held here until
    /// goat has its own copy; closed with the tracer at the latest.
    pub(super) borrowed_fds: BTreeMap<i32, std::os::fd::OwnedFd>,
    /// The target's `syscall; ret`, `rt_sigreturn` and thread-exit loop
    /// sequences, looked for once (see `rescue.rs`).
    pub(super) gadgets: std::cell::OnceCell<Option<super::rescue::Gadgets>>,
    /// Thread ids in a containerised target's own pid namespace.
    pub(super) ns_tids: super::nstid::NsTids,
    /// A function call under way (`fncall.rs`).
    pub(super) call: Option<Box<super::fncall::CallState>>,
    /// Children the program forked (`forks.rs`).
    pub(super) forks: super::forks::Forks,
    /// What the program exec'd, once it did (`execd.rs`): the image goat
    /// read is gone.
    pub(super) execd: Option<std::path::PathBuf>,
}

pub(super) fn wait_flags() -> WaitPidFlag {
    WaitPidFlag::WNOHANG | WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD
}

pub(super) fn is_group_stop_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

pub(super) fn listen(tid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_LISTEN takes no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_LISTEN, tid, 0usize, 0usize) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub(super) fn task_ids(pid: i32) -> Result<Vec<i32>, AttachError> {
    crate::process::procfs::tasks(pid).ok_or(AttachError::Exited { pid })
}

impl Tracer {
    /// Threads (CLONE), forked children (FORK, VFORK and its end: see
    /// `forks.rs`) and a new program image (EXEC: `execd.rs`). Every
    /// clone inherits them.
    pub(super) fn options() -> Options {
        Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACEVFORKDONE
            | Options::PTRACE_O_TRACEEXEC
    }

    /// Seizes every thread, re-reading `/proc/PID/task` until a pass finds
    /// no new one. Clones made meanwhile are auto-attached by TRACECLONE.
    pub(super) fn seize_all(&mut self) -> Result<(), AttachError> {
        let pid = self.pid;
        for _round in 0..100 {
            let mut new = 0;
            for tid in task_ids(pid)? {
                if self.threads.contains_key(&tid) {
                    continue;
                }
                match ptrace::seize(Pid::from_raw(tid), Self::options()) {
                    Ok(()) => {
                        self.threads.insert(tid, State::Running);
                        new += 1;
                    }
                    Err(Errno::ESRCH) => {} // the thread exited meanwhile
                    Err(Errno::EPERM) if !self.threads.is_empty() => {
                        // Most likely a clone already auto-attached to us whose
                        // first stop has not been collected yet.
                        self.threads.insert(tid, State::Running);
                        new += 1;
                    }
                    Err(Errno::EPERM) => return Err(permission_error(pid)),
                    Err(errno) => return Err(AttachError::os("PTRACE_SEIZE", errno)),
                }
            }
            self.service();
            if new == 0 {
                if self.threads.is_empty() {
                    return Err(AttachError::Exited { pid });
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Handles one wait status. `stopping`: keep stopped threads stopped
    /// (a stop is in progress) instead of continuing them.
    pub(super) fn on_event(&mut self, ws: WaitStatus, stopping: bool) {
        if ws
            .pid()
            .is_some_and(|p| Some(p.as_raw()) == self.fork_child)
        {
            // The snapshot copy stays stopped until it is killed; if it died
            // on its own, release_fork_stopped still has the target reap it.
            return;
        }
        if let Some(p) = ws.pid().filter(|p| Some(p.as_raw()) == self.reaper) {
            match ws {
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    self.reaper = None;
                    self.reaper_ended = true;
                }
                // Waiting for the copy, it stops only with the whole target.
                _ => {
                    let _ = ptrace::cont(p, None);
                }
            }
            return;
        }
        match ws {
            WaitStatus::PtraceEvent(p, _, PTRACE_EVENT_CLONE) => {
                let tid = p.as_raw();
                if let Ok(new) = ptrace::getevent(p) {
                    // The child starts with a PTRACE_EVENT_STOP of its own.
                    self.threads.entry(new as i32).or_insert(State::Running);
                }
                self.threads.insert(tid, State::Running);
                let _ = ptrace::cont(p, None);
                if stopping {
                    let _ = ptrace::interrupt(p);
                }
            }
            WaitStatus::PtraceEvent(p, _, libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK) => {
                self.on_fork_event(p.as_raw(), stopping);
            }
            WaitStatus::PtraceEvent(p, _, libc::PTRACE_EVENT_VFORK_DONE) => {
                self.on_vfork_done(p.as_raw(), stopping);
            }
            WaitStatus::PtraceEvent(p, _, libc::PTRACE_EVENT_EXEC) => {
                self.on_exec(p.as_raw(), stopping);
            }
            WaitStatus::PtraceEvent(p, _, PTRACE_EVENT_STOP) if self.trap_stopped(p.as_raw()) => {}
            WaitStatus::PtraceEvent(p, _, PTRACE_EVENT_STOP)
                if self.child_first_stop(p.as_raw()) => {}
            WaitStatus::PtraceEvent(p, sig, PTRACE_EVENT_STOP) => {
                let tid = p.as_raw();
                // A new clone's first stop comes before its first user
                // instruction: it gets the watchpoints here.
                self.sync_debug_registers(tid);
                let group = is_group_stop_signal(sig);
                if stopping {
                    let kind = if group {
                        StopKind::Group(sig)
                    } else {
                        StopKind::Event
                    };
                    self.threads.insert(tid, State::Stopped(kind));
                } else {
                    self.threads.insert(tid, State::Running);
                    let _ = if group {
                        listen(tid)
                    } else {
                        ptrace::cont(p, None)
                    };
                }
            }
            WaitStatus::PtraceEvent(p, _, _) | WaitStatus::PtraceSyscall(p) => {
                // Not requested; never swallow the thread.
                self.threads.insert(p.as_raw(), State::Running);
                let _ = ptrace::cont(p, None);
            }
            WaitStatus::Stopped(p, Signal::SIGTRAP) if self.breakpoint_trap(p.as_raw()) => {}
            WaitStatus::Stopped(p, Signal::SIGTRAP) if self.call_trap(p.as_raw()) => {}
            WaitStatus::Stopped(p, Signal::SIGTRAP) if self.watch_trap(p.as_raw()) => {}
            WaitStatus::Stopped(p, sig) => {
                // Signal-delivery-stop: pass the signal on (now or on resume).
                if stopping {
                    self.threads
                        .insert(p.as_raw(), State::Stopped(StopKind::Signal(sig)));
                } else {
                    self.threads.insert(p.as_raw(), State::Running);
                    let _ = ptrace::cont(p, sig);
                }
            }
            WaitStatus::Exited(p, code) => {
                self.threads.remove(&p.as_raw());
                if p.as_raw() == self.pid {
                    self.ended = Some(Ending::Status(code));
                }
            }
            WaitStatus::Signaled(p, sig, _) => {
                self.threads.remove(&p.as_raw());
                if p.as_raw() == self.pid {
                    self.ended = Some(Ending::Signal(sig as i32));
                }
            }
            WaitStatus::Continued(_) | WaitStatus::StillAlive => {}
        }
        // A call left to run on is answered wherever its stops come.
        self.serve_unattended_call(stopping);
    }

    /// Collects and answers every pending tracee stop without blocking.
    pub(super) fn service(&mut self) {
        loop {
            match waitpid(None, Some(wait_flags())) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(ws) => self.on_event(ws, false),
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Interrupts every thread and waits until each is in a ptrace-stop,
    /// re-reading `/proc/PID/task` until no thread is missing.
    pub(super) fn stop_all(&mut self) -> Result<(), AttachError> {
        let pid = self.pid;
        let deadline = Instant::now() + STOP_TIMEOUT;
        self.service();
        loop {
            let tasks = task_ids(pid)?;
            for &tid in &tasks {
                if self.threads.contains_key(&tid) || Some(tid) == self.reaper {
                    continue;
                }
                match ptrace::seize(Pid::from_raw(tid), Self::options()) {
                    Ok(()) | Err(Errno::EPERM) => {
                        self.threads.insert(tid, State::Running);
                    }
                    Err(_) => {}
                }
            }
            let running: Vec<i32> = self.running();
            for tid in running {
                if ptrace::interrupt(Pid::from_raw(tid)) == Err(Errno::ESRCH) {
                    // Gone, or not ours after all; its exit (if any) is reaped below.
                    self.threads.remove(&tid);
                }
            }
            // Every event that is there is handled before a nap.
            let (first, max) = (Duration::from_micros(20), Duration::from_millis(2));
            poll_until_deadline(deadline, first, max, || loop {
                if self.running().is_empty() {
                    return Some(Ok(()));
                }
                match waitpid(None, Some(wait_flags())) {
                    Ok(WaitStatus::StillAlive) => return None,
                    Ok(ws) => self.on_event(ws, true),
                    Err(Errno::EINTR) => {}
                    Err(Errno::ECHILD) => self.threads.clear(),
                    Err(errno) => return Some(Err(AttachError::os("waitpid", errno))),
                }
            })
            .unwrap_or_else(|| Err(AttachError::timed_out("waiting for threads to stop")))?;
            if self.threads.is_empty() {
                return Err(self.gone());
            }
            // Stable when every live task is known (and hence stopped).
            let after = task_ids(pid)?;
            if after
                .iter()
                .all(|t| self.threads.contains_key(t) || Some(*t) == self.reaper)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(AttachError::timed_out("waiting for threads to stop"));
            }
        }
    }

    /// The error for a process that is no more: how it ended, if seen.
    pub(super) fn gone(&self) -> AttachError {
        match self.ended {
            Some(how) => AttachError::Ended { pid: self.pid, how },
            None => AttachError::Exited { pid: self.pid },
        }
    }

    /// No tracee runs: nothing to service until a request (or an exit).
    pub(super) fn quiescent(&self) -> bool {
        self.threads.values().all(|s| *s != State::Running)
    }

    fn running(&self) -> Vec<i32> {
        self.threads
            .iter()
            .filter(|(_, s)| **s == State::Running)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Stops everything and reads each thread's registers.
    pub(super) fn stop_and_read(&mut self) -> Result<Vec<Thread>, AttachError> {
        if self.detached {
            return Err(self.gone());
        }
        if let Err(e) = self.stop_all() {
            self.resume_all();
            return Err(e);
        }
        self.read_threads()
    }

    pub(super) fn resume_all(&mut self) {
        // A stop of a call left to run on, taken in a stop: answered now.
        self.serve_unattended_call(false);
        for (&tid, state) in self.threads.iter_mut() {
            let p = Pid::from_raw(tid);
            let _ = match *state {
                State::Running => continue,
                State::Stopped(StopKind::Event) => ptrace::cont(p, None),
                State::Stopped(StopKind::Signal(sig)) => ptrace::cont(p, sig),
                State::Stopped(StopKind::Group(_)) => listen(tid),
            };
            *state = State::Running;
        }
    }

    /// Detaches every thread (stopping it first: the kernel detaches only
    /// tracees in a ptrace-stop). Pending signals are handed back.
    pub(super) fn detach_all(&mut self) {
        if self.detached {
            return;
        }
        // A call under way is run to its end first (fncall.rs).
        self.call_abandon();
        self.detached = true;
        let _ = self.stop_all();
        // Never armed at a stop; this covers an error path that skipped it.
        self.bps.disarm(self.pid);
        // Children held at their first stop go, without int3s.
        self.let_children_go();
        self.bps.step_over.clear();
        // The kernel keeps debug registers past a detach (hwbreak.rs).
        self.clear_debug_registers();
        if self.fork_child.is_some() {
            // Killed, reaped by us, then by the target (see inject.rs).
            let _ = self.release_fork_stopped();
        }
        for (&tid, state) in &self.threads {
            let sig = match *state {
                State::Stopped(StopKind::Signal(sig)) => Some(sig),
                _ => None,
            };
            let _ = ptrace::detach(Pid::from_raw(tid), sig);
        }
        // Anything not stopped in time is detached by the kernel when this
        // thread exits; a PTRACE_INTERRUPT stop never outlives the tracer.
        self.threads.clear();
    }
}

/// The error for EPERM from `PTRACE_SEIZE`, with preflight's advice.
fn permission_error(pid: i32) -> AttachError {
    if let Some((tracer_pid, tracer_name)) = crate::process::preflight::tracer_of(pid) {
        return AttachError::AlreadyTraced {
            pid,
            tracer_pid,
            tracer_name,
        };
    }
    AttachError::PermissionDenied {
        pid,
        advice: crate::process::preflight::permission_advice(pid),
    }
}
