//! The snapshot copy's reaper: a thread of the target's, not the Go
//! runtime's, that makes the fork-mode copy and then waits for it, so that
//! the copy never outlives goat and never stays a zombie, even when every
//! goat process (goat, its tracer, its guardian) is killed at once.
//!
//! The copy (`inject.rs`) is a child of the target. Once dead it is a
//! zombie that only the target can reap, and the target never does: Go
//! waits for the children it started, by pid, and the copy's exit signal
//! is 0, which plain `wait4` skips. goat's tracer used to have a target
//! thread run `wait4` after killing the copy; killed first, it left the
//! zombie (or, killed between the clone and `PTRACE_O_EXITKILL`, a running
//! copy of the program on its sockets). No ordering of tracer steps closes
//! that: something in the target must do the waiting.
//!
//! So, with every thread stopped:
//!
//! 1. A borrowed thread T (with its way back, `rescue.rs`, and every signal
//!    blocked through `PTRACE_SETSIGMASK`, which the way back's frame undoes)
//!    runs `clone(CLONE_THREAD | CLONE_VM | …)`: a new thread H, born in a
//!    ptrace stop with every signal blocked, so no Go signal handler ever
//!    runs on it. H shares T's TLS but never runs Go code.
//! 2. H is given registers for `clone(0, S)`: a copy-on-write copy of the
//!    target whose exit signal is 0 (the snapshot), and a stack pointer at
//!    a signal frame written at the bottom of T's free stack. After the
//!    clone H returns into `rt_sigreturn`, which loads
//!    `waitid(P_ALL, 0, NULL, WEXITED | __WCLONE, NULL)` at the `syscall`
//!    of Go's thread-exit loop (`runtime·clone`'s "keep exiting"): H waits
//!    for the copy, reaps it, and falls into the loop, which ends H. No
//!    memory of the target is needed after the frame is read.
//! 3. `__WCLONE` takes only children whose exit signal is not SIGCHLD: the
//!    copies, never a program's own `os/exec` children. Zombies of earlier
//!    copies are reaped before H is made, so H's one `waitid` is the copy's.
//!
//! What each moment of a goat killed whole leaves:
//!
//! - before H runs its `clone`: H `ret`s to the word at S, the loop's
//!   start, and exits; T runs its way back. No copy.
//! - after the `clone`, before the tracer sets `PTRACE_O_EXITKILL` on the
//!   copy: the untraced copy `ret`s to the same word and exits (its memory
//!   is the target's at the clone, word included); H reaps it.
//! - any later moment: `PTRACE_O_EXITKILL` kills the copy, and H reaps it.
//!
//! goat itself kills the copy when it is done and collects its exit as its
//! tracer; the kernel then hands the zombie to H, which reaps it and exits.
//! The target is not stopped a second time.
//!
//! The one window left: H's stack word S and its frame lie in T's free
//! stack, below T's own way back. Were the tracer to die between H's birth
//! and H's reading of its frame (the clone in between takes a fork's time),
//! T would run on at once and could, in principle, reach that deep into
//! its stack first. T is chosen asleep in a system call it restarts
//! (`injection_thread`), and the frame is put as far below T's stack
//! pointer as T's stack allows.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::inject::{wait_one, Makes, INJECT_TIMEOUT};
use super::ptrace::{AttachError, Tracer};
use super::rescue::{self, ExitLoop, Gadgets, SIGFRAME};

const SYS_CLONE: u64 = 56;
const SYS_WAITID: u64 = 247;
const P_ALL: u64 = 0;
const WEXITED: u64 = 4;
const WCLONE: u64 = 0x8000_0000;
/// A thread of the target: its memory, files, signal handlers and group.
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;
/// Stops H goes through from its `clone` to its `waitid`: entry and exit
/// of each syscall, the clone event, with room to spare.
const MAX_STOPS: usize = 16;

fn os(op: &'static str) -> impl Fn(Errno) -> AttachError {
    move |errno| AttachError::os(op, errno)
}

fn reaper_error(tid: i32, what: &str) -> AttachError {
    AttachError::Reaper {
        tid,
        what: what.to_string(),
    }
}

/// Where H's words go in T's free stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Area {
    /// The word H (and the copy) `ret` to after a clone: the exit loop.
    birth_sp: u64,
    /// H's signal frame (`pretcode` first).
    frame: u64,
}

impl Area {
    /// The lowest place that leaves `rescue`'s margin above `floor`, below
    /// `ceiling` (T's own way back); `None` if it does not fit.
    fn between(floor: u64, ceiling: u64) -> Option<Area> {
        let birth_sp = floor.checked_add(rescue::FLOOR_MARGIN)?.checked_add(15)? & !15;
        let frame = birth_sp.checked_add(16)?;
        let end = frame.checked_add(SIGFRAME)?;
        (end <= ceiling).then_some(Area { birth_sp, frame })
    }

    /// The bytes to write at `birth_sp`.
    fn bytes(&self, g: &Gadgets, exit: ExitLoop, cs_ss: (u64, u64)) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + SIGFRAME as usize);
        b.extend_from_slice(&exit.start.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&rescue::sigframe(
            &waitid_regs(exit, self.birth_sp, cs_ss),
            u64::MAX,
            0,
            g.sigreturn,
        ));
        b
    }
}

/// The registers `rt_sigreturn` gives H: `waitid` for any clone child, at
/// the exit loop's `syscall`.
fn waitid_regs(exit: ExitLoop, sp: u64, (cs, ss): (u64, u64)) -> libc::user_regs_struct {
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    r.rip = exit.syscall;
    r.rax = SYS_WAITID;
    r.rdi = P_ALL;
    r.rsi = 0;
    r.rdx = 0;
    r.r10 = WEXITED | WCLONE;
    r.r8 = 0;
    r.rsp = sp;
    r.eflags = 0x202;
    r.cs = cs;
    r.ss = ss;
    r
}

impl Tracer {
    /// With every thread stopped: makes the reaper thread H in thread
    /// `tid` and has H clone the copy (see the module's text); returns the
    /// copy's pid and how long H's clone took. H is left waiting for it.
    pub(super) fn fork_with_reaper(&mut self, tid: i32) -> Result<(i32, Duration), AttachError> {
        let g = self.found_gadgets()?;
        let exit = g.exit_loop.ok_or(AttachError::NoExitLoop)?;
        let saved = ptrace::getregs(Pid::from_raw(tid)).map_err(os("PTRACE_GETREGS"))?;
        let (plan, mem) = self
            .plan_way_back(tid, &saved)
            .ok_or(AttachError::NoWayBack)?;
        let area = Area::between(plan.floor, plan.at).ok_or(AttachError::NoWayBack)?;
        let words = area.bytes(&g, exit, (saved.cs, saved.ss));
        rescue::write(&mem, area.birth_sp, &words).map_err(os("writing the reaper's frame"))?;
        let made = self.inject_making(
            tid,
            SYS_CLONE,
            [THREAD_FLAGS, area.birth_sp, 0, 0, 0, 0],
            Makes::Reaper,
            None,
        )?;
        if made.ret < 0 {
            return Err(AttachError::in_target(
                "clone of the reaper thread",
                made.ret,
            ));
        }
        let h = self
            .reaper
            .ok_or_else(|| reaper_error(tid, "was not traced"))?;
        let made = self.reaper_clones_copy(h, &g, area);
        if made.is_err() && self.fork_child.is_none() {
            // Its frame lies in T's stack, which T is about to use again:
            // it must not be left to return through it.
            self.dismiss_reaper(h, exit);
        }
        made
    }

    /// Sends reaper `h`, stopped and with no copy to wait for, straight
    /// into the exit loop, and collects its end.
    fn dismiss_reaper(&mut self, h: i32, exit: ExitLoop) {
        let p = Pid::from_raw(h);
        if let Ok(mut regs) = ptrace::getregs(p) {
            regs.rip = exit.start;
            regs.orig_rax = u64::MAX;
            if ptrace::setregs(p, regs).is_ok() && ptrace::cont(p, None).is_ok() {
                self.reaper_finished();
            }
        }
    }

    /// Runs reaper H from its first stop through its `clone` of the target
    /// to the entry of its `waitid`, then lets it wait.
    fn reaper_clones_copy(
        &mut self,
        h: i32,
        g: &Gadgets,
        area: Area,
    ) -> Result<(i32, Duration), AttachError> {
        let p = Pid::from_raw(h);
        let deadline = Instant::now() + INJECT_TIMEOUT;
        match wait_one(h, deadline, "waiting for the reaper thread's first stop")? {
            WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..) => {}
            _ => return Err(self.reaper_gone(h, "ended before its first stop")),
        }
        let mut regs = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        regs.rip = g.syscall_ret;
        regs.rax = SYS_CLONE;
        regs.orig_rax = u64::MAX;
        regs.rdi = 0;
        regs.rsi = area.birth_sp;
        regs.rdx = 0;
        regs.r10 = 0;
        regs.r8 = 0;
        regs.rsp = area.frame;
        ptrace::setregs(p, regs).map_err(os("PTRACE_SETREGS"))?;
        let opts = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_TRACESYSGOOD;
        ptrace::setoptions(p, opts).map_err(os("PTRACE_SETOPTIONS"))?;
        let start = Instant::now();
        let mut clone = None;
        for _ in 0..MAX_STOPS {
            ptrace::syscall(p, None).map_err(os("PTRACE_SYSCALL"))?;
            match wait_one(h, deadline, "waiting for the reaper thread's clone")? {
                WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_CLONE) => {
                    let copy = ptrace::getevent(p).map_err(os("PTRACE_GETEVENTMSG"))?;
                    // From now on it is ours to kill, whatever happens.
                    self.fork_child = Some(copy as i32);
                    clone = Some(start.elapsed());
                }
                WaitStatus::PtraceSyscall(_) => {
                    let r = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
                    if r.orig_rax == SYS_WAITID {
                        break;
                    }
                    if r.orig_rax == SYS_CLONE && (r.rax as i64) < 0 && r.rax as i64 != -38 {
                        return Err(AttachError::in_target("clone in the target", r.rax as i64));
                    }
                }
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    return Err(self.reaper_gone(h, "ended before it waited for the copy"))
                }
                // Every signal is blocked but SIGSTOP's (a job-control stop
                // of the whole target), which it keeps as the others do.
                _ => {}
            }
        }
        let copy = self
            .fork_child
            .ok_or_else(|| reaper_error(h, "made no copy"))?;
        // It waits in the kernel from now on, with no memory to read.
        ptrace::cont(p, None).map_err(os("PTRACE_CONT"))?;
        Ok((copy, clone.unwrap_or_default()))
    }

    /// Forgets reaper `h`, which ended; the error that says so.
    fn reaper_gone(&mut self, h: i32, what: &str) -> AttachError {
        self.reaper = None;
        reaper_error(h, what)
    }

    /// Waits (while the target runs) for the reaper to reap the dead copy
    /// and end; whether it did. The copy must be dead and collected.
    pub(super) fn reaper_finished(&mut self) -> bool {
        let Some(h) = self.reaper else {
            return std::mem::take(&mut self.reaper_ended);
        };
        let deadline = Instant::now() + INJECT_TIMEOUT;
        loop {
            match wait_one(h, deadline, "waiting for the reaper thread to end") {
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => break,
                // A job-control stop of the whole target: let it wait on.
                Ok(WaitStatus::PtraceEvent(..)) | Ok(WaitStatus::Stopped(..)) => {
                    let _ = ptrace::cont(Pid::from_raw(h), None);
                }
                Ok(_) => {}
                // Collected already by a wait for every tracee.
                Err(AttachError::Os {
                    errno: Errno::ECHILD,
                    ..
                }) => break,
                Err(_) => return false,
            }
        }
        self.reaper = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT: ExitLoop = ExitLoop {
        start: 0x40_1000,
        syscall: 0x40_100a,
    };

    #[test]
    fn the_area_sits_at_the_bottom_of_the_free_stack() {
        let a = Area::between(0x7000_0000, 0x7000_4000).unwrap();
        assert_eq!(a.birth_sp, 0x7000_0000 + 512);
        assert_eq!(a.frame, a.birth_sp + 16);
        assert_eq!(a.birth_sp % 16, 0);
        // No room between the floor and T's own way back.
        assert_eq!(Area::between(0x7000_0000, 0x7000_0300), None);
        assert_eq!(Area::between(u64::MAX - 100, u64::MAX), None);
    }

    #[test]
    fn the_reaper_waits_for_clone_children_then_exits() {
        let g = Gadgets {
            syscall_ret: 0x1000,
            sigreturn: 0x2000,
            exit_loop: Some(EXIT),
        };
        let a = Area::between(0x7000_0000, 0x7000_4000).unwrap();
        let b = a.bytes(&g, EXIT, (0x33, 0x2b));
        let word = |at: u64| {
            let i = (at - a.birth_sp) as usize;
            u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
        };
        // A `ret` at birth goes to the exit loop; the frame's `ret` to
        // rt_sigreturn.
        assert_eq!(word(a.birth_sp), EXIT.start);
        assert_eq!(word(a.frame), g.sigreturn);
        // The sigcontext: r10, rdi, rsi, rdx, rax, rsp, rip (its word order).
        let sc = a.frame + 8 + crate::process::regs::UCONTEXT_SIGCONTEXT;
        let gpr = |i: u64| word(sc + 8 * i);
        assert_eq!(gpr(2), WEXITED | WCLONE, "r10: options");
        assert_eq!((gpr(8), gpr(9), gpr(12)), (P_ALL, 0, 0), "rdi, rsi, rdx");
        assert_eq!(gpr(13), SYS_WAITID, "rax");
        assert_eq!(gpr(16), EXIT.syscall, "rip");
        // Every signal blocked, no FPU state.
        assert_eq!(word(a.frame + 8 + 296), u64::MAX);
        assert_eq!(word(sc + 184), 0);
    }
}
