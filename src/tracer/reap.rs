//! Releasing the snapshot copy without stopping the target.
//!
//! The copy made by `inject.rs` is a child of the target, so once dead it is
//! a zombie only the target can reap. Two costs used to sit inside a second
//! stop of every thread: the copy's death (its exit tears down a page table
//! as large as the target's, ~45 ms at 2 GiB) and the stop itself. Now:
//!
//! 1. the copy is killed and its exit collected (we are its tracer, so its
//!    status comes to us first) while the target runs: the teardown happens
//!    in the copy's own context, before it turns into a zombie;
//! 2. one thread alone, preferably one asleep in the kernel (a Go thread
//!    parked in `futex`), is interrupted to run `wait4` on the zombie. The
//!    other threads never stop. For the Go runtime this is no different from
//!    that thread being descheduled for a few microseconds: an idle M was
//!    not running Go code, and one that was holds nothing the kernel does
//!    not already let it hold across a preemption.
//!
//! If no single thread can be stopped (all in a job-control stop, or each
//! exits under us), every thread is stopped as before.
//!
//! Not chosen: `CLONE_PARENT` would make the target's *parent* (a shell,
//! systemd, a container runtime) the copy's parent: it would get a SIGCHLD
//! (the exit signal is inherited from the target) and a zombie it never
//! asked for, and the kernel refuses it for a namespace's init. goat is the
//! parent of no target it attaches to, so it cannot take that role itself.

use super::wire::{protocol_error, Reply, Request};
use serde::{Deserialize, Serialize};

use std::time::{Duration, Instant};

use crate::poll::{poll_until, poll_until_deadline};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::inject::{wait_one, INJECT_TIMEOUT};
use super::live::LiveProcess;
use super::ptrace::{is_group_stop_signal, listen, AttachError, State, StopKind, Tracer};

/// A single thread's interrupt stop: how long to wait for it.
const STOP_ONE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a dead tracer may keep its tracees before goat gives up on
/// reaping the copy it left.
const DEAD_TRACER_PATIENCE: Duration = Duration::from_secs(5);
/// Threads tried (each may exit under us) before stopping them all.
const STOP_ONE_ATTEMPTS: usize = 3;

/// How the copy was reaped.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Reaped {
    /// How long the target (or the one thread) was stopped for `wait4`:
    /// zero when the copy's reaper thread reaped it (`reaper.rs`).
    pub pause: Duration,
    /// Whether only one thread was stopped (false: every thread).
    pub one_thread: bool,
    /// Killing the copy and waiting for its exit, while the target ran.
    pub kill: Duration,
    /// Zombies of copies that killed goats had left, reaped in the same stop.
    pub leftovers: usize,
}

fn os(op: &'static str) -> impl Fn(Errno) -> AttachError {
    move |errno| AttachError::os(op, errno)
}

/// The scheduler state letter of thread `tid` (`S`: asleep in the kernel).
fn task_state(pid: i32, tid: i32) -> Option<u8> {
    u8::try_from(crate::process::procfs::task_stat(pid, tid)?.state).ok()
}

impl Tracer {
    /// Kills the copy and waits for its exit status while the target runs,
    /// servicing the target's own stops meanwhile (a signal for it must
    /// not wait on us).
    fn kill_copy(&mut self, child: i32) -> Result<(), AttachError> {
        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        let deadline = Instant::now() + INJECT_TIMEOUT;
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
        let (first, max) = (Duration::from_micros(20), Duration::from_millis(1));
        poll_until_deadline(deadline, first, max, || {
            match waitpid(Pid::from_raw(child), Some(flags)) {
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => return Some(Ok(())),
                // Collected already (by `service`, which ignores the copy).
                Err(Errno::ECHILD) => return Some(Ok(())),
                Err(Errno::EINTR) | Ok(_) => {}
                Err(errno) => return Some(Err(AttachError::os("waitpid", errno))),
            }
            self.service();
            None
        })
        .unwrap_or_else(|| {
            Err(AttachError::timed_out(
                "waiting for the snapshot copy to exit",
            ))
        })
    }

    /// A running thread to interrupt, other than those in `tried`: one
    /// asleep in the kernel if any (it was doing nothing), the leader first.
    fn idle_thread(&self, tried: &[i32]) -> Option<i32> {
        let running: Vec<i32> = self
            .threads
            .iter()
            .filter(|(t, s)| **s == State::Running && !tried.contains(t))
            .map(|(t, _)| *t)
            .collect();
        let asleep = running
            .iter()
            .copied()
            .find(|&t| task_state(self.pid, t) == Some(b'S'));
        asleep.or_else(|| running.first().copied())
    }

    /// Interrupts `tid` alone and waits for its interrupt stop; other
    /// threads run on and their stops are answered meanwhile. On a timeout
    /// the interrupt may still land later: `service` then continues it.
    fn stop_one(&mut self, tid: i32) -> Result<(), AttachError> {
        let p = Pid::from_raw(tid);
        ptrace::interrupt(p).map_err(os("PTRACE_INTERRUPT"))?;
        let deadline = Instant::now() + STOP_ONE_TIMEOUT;
        loop {
            match wait_one(tid, deadline, "waiting for one thread to stop")? {
                WaitStatus::PtraceEvent(_, sig, libc::PTRACE_EVENT_STOP) => {
                    if is_group_stop_signal(sig) {
                        // A job-control stop: keep it in force, do not run code.
                        let _ = listen(tid);
                        return Err(AttachError::JobControlStop { tid });
                    }
                    self.threads.insert(tid, State::Stopped(StopKind::Event));
                    return Ok(());
                }
                ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    self.on_event(ws, false);
                    return Err(AttachError::Exited { pid: tid });
                }
                // A clone or a signal on its way: answered as usual; the
                // interrupt is still pending and traps next.
                ws => self.on_event(ws, false),
            }
        }
    }

    fn resume_one(&mut self, tid: i32) {
        let p = Pid::from_raw(tid);
        let _ = match self.threads.get(&tid) {
            Some(State::Stopped(StopKind::Event)) => ptrace::cont(p, None),
            Some(State::Stopped(StopKind::Signal(sig))) => ptrace::cont(p, *sig),
            Some(State::Stopped(StopKind::Group(_))) => listen(tid),
            _ => return,
        };
        self.threads.insert(tid, State::Running);
    }

    /// Stops one idle thread alone for an injection, and when it was stopped:
    /// one that can be given a way back (`rescue.rs`). `None`: every thread
    /// must be stopped instead (then the choice is among all of them).
    fn stop_one_for_injection(&mut self) -> Option<(i32, Instant)> {
        if !self.prepare_injection() {
            return None;
        }
        let mut tried = Vec::new();
        for _ in 0..STOP_ONE_ATTEMPTS {
            let tid = self.idle_thread(&tried)?;
            tried.push(tid);
            let since = Instant::now();
            match self.stop_one(tid) {
                Ok(()) => {
                    let rescued = ptrace::getregs(Pid::from_raw(tid))
                        .is_ok_and(|r| self.plan_way_back(tid, &r).is_some());
                    if rescued {
                        return Some((tid, since));
                    }
                    self.resume_one(tid);
                }
                Err(AttachError::Exited { .. }) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Reaps what dead tracers left (target running), with one idle thread;
    /// nothing is stopped when nothing is left.
    pub(super) fn reap_leftovers_running(&mut self) -> Result<Reaped, AttachError> {
        if super::inject::leftover_copies(self.pid, self.fork_child).is_empty() {
            return Ok(Reaped::default());
        }
        if let Some((tid, since)) = self.stop_one_for_injection() {
            let leftovers = self.reap_leftovers(tid);
            self.resume_one(tid);
            return Ok(Reaped {
                pause: since.elapsed(),
                one_thread: true,
                kill: Duration::ZERO,
                leftovers,
            });
        }
        let since = Instant::now();
        if let Err(e) = self.stop_all() {
            self.resume_all();
            return Err(e);
        }
        let leftovers = self
            .injection_thread()
            .map_or(0, |tid| self.reap_leftovers(tid));
        self.resume_all();
        Ok(Reaped {
            pause: since.elapsed(),
            one_thread: false,
            kill: Duration::ZERO,
            leftovers,
        })
    }

    /// Kills the copy (target running); its reaper thread (`reaper.rs`)
    /// then reaps it and ends, with no stop. Without one (it ended early),
    /// one idle thread is stopped to reap it; every thread only if no
    /// single one can be.
    pub(super) fn release_fork_running(&mut self) -> Result<Reaped, AttachError> {
        let Some(child) = self.fork_child else {
            return Ok(Reaped::default());
        };
        let since = Instant::now();
        self.kill_copy(child)?;
        if self.reaper_finished() {
            self.fork_child = None;
            return Ok(Reaped {
                pause: Duration::ZERO,
                one_thread: false,
                kill: since.elapsed(),
                leftovers: 0,
            });
        }
        let kill = since.elapsed();
        if let Some((tid, since)) = self.stop_one_for_injection() {
            let r = self.reap_in(tid);
            let leftovers = if r.is_ok() {
                self.reap_leftovers(tid)
            } else {
                0
            };
            self.resume_one(tid);
            let pause = since.elapsed();
            return r.map(|()| Reaped {
                pause,
                one_thread: true,
                kill,
                leftovers,
            });
        }
        let since = Instant::now();
        if let Err(e) = self.stop_all() {
            self.resume_all();
            return Err(e);
        }
        let r = self.release_fork_stopped();
        let leftovers = match (&r, self.injection_thread()) {
            (Ok(()), Ok(tid)) => self.reap_leftovers(tid),
            _ => 0,
        };
        self.resume_all();
        r.map(|()| Reaped {
            pause: since.elapsed(),
            one_thread: false,
            kill,
            leftovers,
        })
    }
}

impl LiveProcess {
    /// Has `pid` reap the zombies of snapshot copies that a dead tracer
    /// left (see `inject.rs`'s `leftover_copies`), attaching for that from
    /// goat's own process and stopping one idle thread for a moment (every
    /// thread if none can be stopped alone); how many.
    pub fn reap_leftover_copies(pid: i32) -> Result<usize, AttachError> {
        // A tracer that was just killed still holds the target until its
        // last thread has exited (longer when it is itself traced, say by
        // strace): wait for the kernel to let the target go.
        let live =
            poll_until(
                DEAD_TRACER_PATIENCE,
                Duration::from_millis(10),
                || match LiveProcess::attach(pid) {
                    Err(AttachError::AlreadyTraced { .. }) => None,
                    r => Some(r),
                },
            )
            // Still traced at the deadline: the last attempt's own error.
            .unwrap_or_else(|| LiveProcess::attach(pid))?;
        match live.request(Request::ReapLeftovers)? {
            Reply::Reaped(r) => Ok(r.leftovers),
            _ => Err(protocol_error()),
        }
    }

    /// Kills the copy made by [`Stopped::fork_copy`](super::Stopped::fork_copy)
    /// and has the target reap it, stopping one of its threads for a moment.
    pub fn release_copy(&self) -> Result<Reaped, AttachError> {
        match self.request(Request::ReleaseCopy)? {
            Reply::Reaped(r) => Ok(r),
            _ => Err(protocol_error()),
        }
    }
}
