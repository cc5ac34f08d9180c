//! Running one system call inside a stopped target thread, for snapshots:
//! `clone` (a frozen copy-on-write copy of the address space) and `wait4`
//! (reaping that copy again, so the target is left without a zombie).
//!
//! No code is ever written into the target: the thread's registers are
//! saved, `rip` is pointed at an existing `syscall` instruction (`0f 05`),
//! the thread runs to the syscall's exit, then the registers are put back
//! exactly. Setting `orig_rax` to -1 keeps the kernel from restarting the
//! syscall the thread was interrupted in while our call runs; restoring
//! the saved `orig_rax` and `rax` (-ERESTARTSYS and friends) in an
//! interrupt stop makes it restart that syscall on resume, just as if the
//! thread had only been stopped. Where it can, the thread is borrowed with
//! a way back written below its stack pointer (`rescue.rs`), so that not
//! even the tracer's death in the middle can leave it with borrowed
//! registers.

use std::time::{Duration, Instant};

use crate::poll::poll_until_deadline;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::live::{LiveProcess, Stopped};
use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::rescue::{self, SYS_CLOSE};
use super::wire::{protocol_error, Reply, Request};
use crate::process::procfs;

const SYS_WAIT4: u64 = 61;
const WNOHANG: u64 = 1;
const WCLONE: u64 = 0x8000_0000;
/// A fork of a large process copies its page tables; allow for that.
pub(super) const INJECT_TIMEOUT: Duration = Duration::from_secs(10);

fn os(op: &'static str) -> impl Fn(Errno) -> AttachError {
    move |errno| AttachError::os(op, errno)
}

/// Waits (polling, bounded) for the next status of `pid` alone; the
/// timeout's error says it was `waiting_for` that.
pub(super) fn wait_one(
    pid: i32,
    deadline: Instant,
    waiting_for: &'static str,
) -> Result<WaitStatus, AttachError> {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
    // Short naps: the target is stopped while we wait (a fork takes tens of
    // milliseconds), and each nap can add its length to that.
    let (first, max) = (Duration::from_micros(10), Duration::from_micros(200));
    poll_until_deadline(deadline, first, max, || {
        match waitpid(Some(Pid::from_raw(pid)), Some(flags)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => None,
            Ok(ws) => Some(Ok(ws)),
            Err(errno) => Some(Err(AttachError::os("waitpid", errno))),
        }
    })
    .unwrap_or_else(|| Err(AttachError::timed_out(waiting_for)))
}

/// What an injected `clone` makes, for the tracer to record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Makes {
    #[default]
    Nothing,
    /// The reaper thread of `reaper.rs`.
    Reaper,
}

/// What an injected syscall returned.
pub(super) struct Injected {
    pub(super) ret: i64,
    /// With [`ThenClose`]: goat's copy of the descriptor the syscall
    /// returned (taken before the target closed its own), and what the
    /// target's `close` returned.
    pub(super) copied: Option<(Result<std::os::fd::OwnedFd, AttachError>, i64)>,
}

/// A `close` the borrowed thread runs on its way back, of the descriptor
/// its syscall returned, through a second signal frame (`rescue::sigframe`)
/// laid below the way back: `syscall; ret` into `rt_sigreturn`, which
/// loads `close(fd)` at the same `syscall; ret`, whose `ret` goes on into
/// the way back. The descriptor is guessed beforehand (`fd`: the lowest
/// free one, which the kernel hands out, and nothing else can take while
/// every thread is stopped), so that a tracer dying at any moment leaves
/// the target no descriptor of goat's making. Between the two syscalls
/// the tracer takes goat's copy of it (`copy`).
pub(super) struct ThenClose {
    pub fd: u64,
    pub copy: fn(i32, i32) -> Result<std::os::fd::OwnedFd, AttachError>,
}

/// Between a [`ThenClose`]'s two syscalls: aims the close at descriptor
/// `fd` the first returned, should the guess have been wrong (a moment in
/// which a dying tracer would have the target close the guess). A failed
/// first syscall leaves the guess, which is free: its close fails,
/// harmlessly.
fn aim_close(c: &CloseFrame, fd: i64) -> Result<(), AttachError> {
    if fd < 0 || fd as u64 == c.then.fd {
        return Ok(());
    }
    let n = i32::try_from(fd).map_err(|_| AttachError::in_target("the injected syscall", fd))?;
    rescue::write(&c.mem, c.fd_word, &u64::from(n as u32).to_le_bytes())
        .map_err(os("aiming the way back's close"))
}

/// Where a [`ThenClose`]'s frame lies and holds the descriptor.
struct CloseFrame {
    /// The frame's `rdi`, the descriptor `close` is given.
    fd_word: u64,
    mem: std::fs::File,
    then: ThenClose,
}

/// A frozen copy of the target (see [`Stopped::fork_copy`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Forked {
    pub child: i32,
    /// How long the kernel's fork took: the floor of the target's pause,
    /// as it copies the page tables of every private writable mapping.
    pub clone: Duration,
}

impl Tracer {
    /// A thread in a plain interrupt stop (not delivering a signal, not in
    /// a group stop) that can be given a way back (`rescue.rs`): one asleep
    /// in a system call first (it sleeps again at once when it is given
    /// back, `reaper.rs`), the leader first among equals. Without a way
    /// back no syscall is run: a tracer that died during it would leave
    /// the thread with borrowed registers.
    pub(super) fn injection_thread(&mut self) -> Result<i32, AttachError> {
        let ok = |s: &State| *s == State::Stopped(StopKind::Event);
        let mut candidates: Vec<(i32, libc::user_regs_struct)> = self
            .threads
            .iter()
            .filter(|(_, s)| ok(s))
            .filter_map(|(t, _)| Some((*t, ptrace::getregs(Pid::from_raw(*t)).ok()?)))
            .collect();
        if candidates.is_empty() {
            return Err(AttachError::NoInjectionThread);
        }
        // Stable: among threads alike, the leader stays first.
        candidates.sort_by_key(|(t, r)| ((r.orig_rax as i64) < 0, *t != self.pid));
        candidates
            .into_iter()
            .find(|(t, r)| self.plan_way_back(*t, r).is_some())
            .map(|(t, _)| t)
            .ok_or(AttachError::NoWayBack)
    }

    /// Runs syscall `nr` with `args` in stopped thread `tid`, then restores
    /// its registers. The thread is given a way back should the tracer die
    /// meanwhile (`rescue.rs`) and runs a `syscall; ret` that leads there;
    /// a thread that cannot be given one is not borrowed (`NoWayBack`).
    ///
    /// The thread is resumed with `PTRACE_SYSCALL` up to the syscall's exit,
    /// never single-stepped: a dying tracer leaves the trap flag of a
    /// single-step set (the kernel does not clear it as it does the syscall
    /// tracing), which would kill the target with SIGTRAP after the step.
    /// From the syscall's exit an interrupt takes the thread to an ordinary
    /// interrupt stop, where its registers are put back: resuming from
    /// there restarts the syscall it was stopped in, exactly as if it had
    /// only been stopped.
    ///
    /// While borrowed the thread blocks every signal (`PTRACE_SETSIGMASK`):
    /// a signal for it stays pending in the kernel instead of coming to the
    /// tracer, which would have to hold it (and lose it if it died), and a
    /// thread it clones starts with every signal blocked. The way back's
    /// frame holds the thread's own mask, so a tracer dying meanwhile
    /// undoes that too.
    pub(super) fn inject(
        &mut self,
        tid: i32,
        nr: u64,
        args: [u64; 6],
    ) -> Result<Injected, AttachError> {
        self.inject_making(tid, nr, args, Makes::Nothing, None)
    }

    /// [`Tracer::inject`] of a `clone` that `makes` what it says.
    pub(super) fn inject_making(
        &mut self,
        tid: i32,
        nr: u64,
        args: [u64; 6],
        makes: Makes,
        then: Option<ThenClose>,
    ) -> Result<Injected, AttachError> {
        let p = Pid::from_raw(tid);
        let saved = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        let mut regs = saved;
        let (plan, mem) = self
            .plan_way_back(tid, &saved)
            .ok_or(AttachError::NoWayBack)?;
        rescue::write(&mem, plan.at, &plan.bytes).map_err(os("writing the way back"))?;
        regs.rip = plan.syscall_ret;
        regs.rsp = plan.way.rsp;
        let close = match then {
            None => None,
            Some(then) => {
                let g = self.found_gadgets()?;
                let (at, bytes) = rescue::close_frame(&plan, &saved, then.fd, g.sigreturn)
                    .ok_or(AttachError::NoWayBack)?;
                rescue::write(&mem, at, &bytes).map_err(os("writing the way back"))?;
                regs.rsp = at;
                Some(CloseFrame {
                    fd_word: rescue::close_frame_fd_word(at),
                    mem,
                    then,
                })
            }
        };
        regs.rax = nr;
        regs.orig_rax = u64::MAX;
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        // Syscall stops told from signals (PTRACE_O_TRACESYSGOOD), for this
        // thread and only while it is borrowed.
        let opts = Tracer::options();
        ptrace::setoptions(p, opts | Options::PTRACE_O_TRACESYSGOOD)
            .map_err(os("PTRACE_SETOPTIONS"))?;
        ptrace::setregs(p, regs).map_err(os("PTRACE_SETREGS"))?;
        // Only once the way back is in place: every prefix of these steps
        // leaves the thread able to restore itself, mask included.
        let own_mask = super::regset::sigmask(tid).map_err(os("PTRACE_GETSIGMASK"))?;
        let blocked = super::regset::set_sigmask(tid, u64::MAX).map_err(os("PTRACE_SETSIGMASK"));
        let mut pending: Option<Signal> = None;
        let result = blocked.and_then(|()| self.run_borrowed(tid, makes, close, &mut pending));
        // Put the thread back as it was, whatever happened. If the syscall
        // never finished the thread is still in a ptrace stop, so this works.
        // The mask before the registers: with borrowed registers the way
        // back still restores it, with its own it would stay blocked.
        let unmasked =
            super::regset::set_sigmask(tid, own_mask).map_err(os("PTRACE_SETSIGMASK (restore)"));
        // Still borrowed: the way back restores the mask when it runs.
        unmasked?;
        let restored = ptrace::setregs(p, saved).map_err(os("PTRACE_SETREGS (restore)"));
        let _ = ptrace::setoptions(p, opts);
        if let Some(sig) = pending {
            self.threads
                .insert(tid, State::Stopped(StopKind::Signal(sig)));
        }
        let out = result?;
        restored?;
        Ok(out)
    }

    /// Runs borrowed thread `tid` through its syscall to an interrupt stop
    /// after it (see [`Tracer::inject`]). A signal that arrives for the
    /// thread meanwhile is kept in `pending`, to be delivered on resume.
    fn run_borrowed(
        &mut self,
        tid: i32,
        makes: Makes,
        mut close: Option<CloseFrame>,
        pending: &mut Option<Signal>,
    ) -> Result<Injected, AttachError> {
        let p = Pid::from_raw(tid);
        let deadline = Instant::now() + INJECT_TIMEOUT;
        let mut entered = false;
        let mut ret = None;
        // With a close to follow: the first syscall's result and goat's
        // copy of it, once its exit is seen.
        let mut first: Option<(i64, Result<std::os::fd::OwnedFd, AttachError>)> = None;
        for _ in 0..32 {
            let resumed = match ret {
                None => ptrace::syscall(p, None).map_err(os("PTRACE_SYSCALL")),
                Some(_) => ptrace::cont(p, None).map_err(os("PTRACE_CONT")),
            };
            resumed?;
            match wait_one(tid, deadline, "waiting for the injected syscall")? {
                WaitStatus::PtraceSyscall(_) if !entered => entered = true,
                WaitStatus::PtraceSyscall(_) => {
                    entered = false;
                    let r = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
                    match (&close, first.is_some()) {
                        (Some(c), false) => {
                            let fd = r.rax as i64;
                            // A close that could not be re-aimed must not
                            // run: the borrow ends here, its registers put
                            // back (the descriptor stays in the target).
                            aim_close(c, fd)?;
                            first = Some((fd, (c.then.copy)(self.pid, fd as i32)));
                        }
                        // On its way back, past `rt_sigreturn`: the close.
                        (Some(_), true) if r.orig_rax != SYS_CLOSE => {}
                        _ => {
                            ret = Some(r.rax as i64);
                            ptrace::interrupt(p).map_err(os("PTRACE_INTERRUPT"))?;
                        }
                    }
                }
                WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_CLONE) => {
                    if let (Ok(c), Makes::Reaper) = (ptrace::getevent(p), makes) {
                        self.reaper = Some(c as i32);
                    }
                }
                WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_STOP) if ret.is_some() => {
                    let ret = ret.unwrap_or_default();
                    return Ok(match (first.take(), close.take()) {
                        (Some((fd, copy)), Some(_)) => Injected {
                            ret: fd,
                            copied: Some((copy, ret)),
                        },
                        _ => Injected { ret, copied: None },
                    });
                }
                // A signal on its way to the thread: delivered on resume.
                WaitStatus::Stopped(_, sig) => *pending = Some(sig),
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    self.threads.remove(&tid);
                    return Err(AttachError::Exited { pid: self.pid });
                }
                _ => {}
            }
        }
        Err(AttachError::InjectionUnfinished)
    }

    /// The text sequences a way back uses, found before (by
    /// `plan_way_back`); `NoWayBack` without them.
    pub(super) fn found_gadgets(&self) -> Result<rescue::Gadgets, AttachError> {
        self.gadgets
            .get()
            .copied()
            .flatten()
            .ok_or(AttachError::NoWayBack)
    }

    /// Finds, once, the text sequences a way back uses; whether there are.
    pub(super) fn prepare_injection(&mut self) -> bool {
        let pid = self.pid;
        self.gadgets
            .get_or_init(|| rescue::find_gadgets(pid))
            .is_some()
    }

    /// The way back (`rescue.rs`) an injection writes below thread `tid`'s
    /// stack pointer, and the target's memory to write it to; `None` where
    /// the thread's free stack or state is not known.
    pub(super) fn plan_way_back(
        &mut self,
        tid: i32,
        saved: &libc::user_regs_struct,
    ) -> Option<(rescue::Plan, std::fs::File)> {
        let pid = self.pid;
        self.prepare_injection();
        let g = (*self.gadgets.get()?)?;
        let mem = procfs::open_mem(pid, true).ok()?;
        let floor = rescue::stack_floor(pid, tid, saved, &mem)?;
        let xstate = super::regset::getxstate(tid).ok()?;
        let mask = rescue::blocked_signals(pid, tid)?;
        let plan = rescue::build(saved, &xstate, mask, &g)?;
        // Room for one frame more below it: a close on the way back
        // (`ThenClose`), or the reaper's (`reaper.rs`), whichever this
        // injection turns out to need.
        let lowest = plan.at.checked_sub(rescue::SIGFRAME + 32)?;
        rescue::fits(lowest, floor).then_some((rescue::Plan { floor, ..plan }, mem))
    }

    /// With every thread stopped: clones the target (flags 0: a copy of the
    /// address space, exit signal 0 so the target gets no SIGCHLD), through
    /// a reaper thread that waits for the copy in the target (`reaper.rs`).
    /// The copy is auto-attached (TRACECLONE) and born in a ptrace stop, so
    /// it never runs; it gets `PTRACE_O_EXITKILL` so it dies with goat.
    pub(super) fn fork_copy(&mut self) -> Result<Forked, AttachError> {
        if self.fork_child.is_some() || self.reaper.is_some() {
            return Err(AttachError::CopyExists);
        }
        self.reaper_ended = false;
        let tid = self.injection_thread()?;
        // The reaper's one wait must be for this copy, not an older one.
        self.reap_leftovers(tid);
        let (child, clone) = self.fork_with_reaper(tid)?;
        let deadline = Instant::now() + INJECT_TIMEOUT;
        loop {
            match wait_one(
                child,
                deadline,
                "waiting for the snapshot copy's first stop",
            )? {
                WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..) => break,
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    self.fork_child = None;
                    return Err(AttachError::CopyDied { pid: child });
                }
                _ => {}
            }
        }
        let opts = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_EXITKILL;
        ptrace::setoptions(Pid::from_raw(child), opts).map_err(os("PTRACE_SETOPTIONS"))?;
        Ok(Forked { child, clone })
    }

    /// With every thread stopped: kills the copy, reaps it as its tracer,
    /// then has the target reap it as its parent. The path for detaching
    /// (errors, signals); a normal snapshot uses [`Tracer::release_fork_running`].
    pub(super) fn release_fork_stopped(&mut self) -> Result<(), AttachError> {
        let Some(child) = self.fork_child else {
            return Ok(());
        };
        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        let deadline = Instant::now() + INJECT_TIMEOUT;
        loop {
            match wait_one(child, deadline, "waiting for the snapshot copy to exit") {
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => break,
                Ok(_) => {}
                Err(AttachError::Os {
                    errno: Errno::ECHILD,
                    ..
                }) => break,
                Err(e) => return Err(e),
            }
        }
        if self.reaper_finished() {
            self.fork_child = None;
            return Ok(());
        }
        // No reaper, or one that did not end: the target reaps the copy now.
        let tid = self.injection_thread()?;
        self.reap_in(tid)
    }

    /// Has stopped thread `tid` reap the dead copy (see [`Tracer::wait4_in`]).
    pub(super) fn reap_in(&mut self, tid: i32) -> Result<(), AttachError> {
        if !self.wait4_in(tid)? {
            return Err(AttachError::CopyNotReaped {
                pid: self.fork_child.unwrap_or_default(),
            });
        }
        self.fork_child = None;
        Ok(())
    }

    /// Reaps, with stopped thread `tid`, the zombies of copies that goats
    /// killed mid-write left behind (see [`leftover_copies`]); returns how
    /// many. Best effort: a zombie that will not go is left as it was.
    pub(super) fn reap_leftovers(&mut self, tid: i32) -> usize {
        let left = leftover_copies(self.pid, self.fork_child).len();
        (0..left)
            .take_while(|_| self.wait4_in(tid).unwrap_or(false))
            .count()
    }

    /// Has stopped thread `tid` run `wait4(-1, NULL, __WCLONE|WNOHANG,
    /// NULL)`: it reaps one dead "clone" child (exit signal other than
    /// SIGCHLD), which only the copies are (`leftover_copies`), never the
    /// program's own children, and never a copy still alive. Any thread of
    /// the target will do: wait4 looks at the children of every thread in
    /// the group (no `__WNOTHREAD`). No pid is named: a containerised
    /// target knows its children by ids of its own pid namespace, not the
    /// ones goat sees. Whether one was reaped.
    fn wait4_in(&mut self, tid: i32) -> Result<bool, AttachError> {
        self.prepare_injection();
        let r = self.inject(tid, SYS_WAIT4, [u64::MAX, 0, WCLONE | WNOHANG, 0, 0, 0])?;
        if r.ret < 0 && r.ret != -i64::from(libc::ECHILD) {
            return Err(AttachError::in_target("wait4 in the target", r.ret));
        }
        Ok(r.ret > 0)
    }
}

/// Zombie children of `pid` that are snapshot copies whose tracer was
/// killed before it could have them reaped: exit signal 0 (a "clone" child,
/// which the program's own `wait4` never takes), killed by SIGKILL
/// (`PTRACE_O_EXITKILL`) or exited with status 0 through their way back
/// (`rescue.rs`), under the target's own name. Go never makes such
/// children; a program that did would also have to wait for them with
/// `__WALL` itself.
pub(super) fn leftover_copies(pid: i32, except: Option<i32>) -> Vec<i32> {
    let Some(name) = procfs::comm(pid) else {
        return Vec::new();
    };
    procfs::children(pid)
        .into_iter()
        .filter(|&c| Some(c) != except)
        .filter(|&c| {
            procfs::stat(c).is_some_and(|st| is_killed_copy(&st))
                && procfs::comm(c).as_ref() == Some(&name)
        })
        .collect()
}

/// Whether a `stat` is a zombie with exit signal 0 that SIGKILL or
/// an exit ended (the way back's `exit_group(0)`, the reaper's exit loop).
fn is_killed_copy(stat: &procfs::Stat) -> bool {
    stat.state == 'Z'
        && stat.exit_signal == Some(0)
        && stat
            .exit_code
            .is_some_and(|code| code & 0x7f == libc::SIGKILL || code & 0x7f == 0)
}

impl LiveProcess {
    /// Has the tracer look, while the target runs, for the sequences in its
    /// text that give an injected syscall a way back should the tracer die
    /// during it (see `rescue.rs`); whether it found them. Injections work
    /// either way; call it before the stop that injects, which it shortens.
    pub fn prepare_injection(&self) -> Result<bool, AttachError> {
        match self.request(Request::PrepareInjection)? {
            Reply::Found(found) => Ok(found),
            _ => Err(protocol_error()),
        }
    }
}

impl Stopped<'_> {
    /// Clones the stopped target into a frozen copy (see [`Tracer::fork_copy`]),
    /// made by a reaper thread the target is lent for it (`reaper.rs`). Returns the
    /// copy's pid: read its memory while the target runs on, then call
    /// [`LiveProcess::release_copy`]. Registers of the target's threads are
    /// unchanged (and are those of [`Target::threads`](crate::process::Target::threads)).
    pub fn fork_copy(&self) -> Result<Forked, AttachError> {
        match self.process.request(Request::ForkCopy)? {
            Reply::Forked(f) => Ok(f),
            _ => Err(protocol_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::process::procfs::parse_stat;

    fn is_killed_copy(stat: &str) -> bool {
        parse_stat(stat).is_some_and(|s| super::is_killed_copy(&s))
    }

    /// A `/proc/PID/stat` line: `state`, then fields 4..=52 with
    /// exit_signal (38) and exit_code (52) set.
    fn stat(name: &str, state: &str, exit_signal: i64, exit_code: i64) -> String {
        let mut f: Vec<String> = (4..=52).map(|_| "0".to_string()).collect();
        f[38 - 4] = exit_signal.to_string();
        f[52 - 4] = exit_code.to_string();
        format!("4242 ({name}) {state} {}", f.join(" "))
    }

    #[test]
    fn tells_a_killed_snapshot_copy_from_other_children() {
        assert!(is_killed_copy(&stat("ticker", "Z", 0, 9)));
        // A name with spaces and parentheses does not shift the fields.
        assert!(is_killed_copy(&stat("a) Z 1 (b", "Z", 0, 9)));
        // Still running, a child that signals its parent, or another death.
        assert!(!is_killed_copy(&stat("ticker", "S", 0, 9)));
        assert!(!is_killed_copy(&stat("ticker", "Z", 17, 9)));
        assert!(!is_killed_copy(&stat("ticker", "Z", 0, 0x0b)));
        // The exit loop a copy `ret`s to when its tracer died: exit(111).
        assert!(is_killed_copy(&stat("ticker", "Z", 0, 111 << 8)));
        // Its way back after its tracer died: exit_group(0).
        assert!(is_killed_copy(&stat("ticker", "Z", 0, 0)));
        assert!(!is_killed_copy("4242 (ticker"));
        assert!(!is_killed_copy(""));
    }
}
