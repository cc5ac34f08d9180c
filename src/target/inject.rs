//! Running one system call inside a stopped target thread, for snapshots:
//! `clone` (a frozen copy-on-write copy of the address space) and `wait4`
//! (reaping that copy again, so the target is left without a zombie).
//!
//! No code is ever written into the target: the thread's registers are
//! saved, `rip` is pointed at an existing `syscall` instruction (`0f 05`) and
//! single-stepped over it, then the registers are put back exactly. Setting
//! `orig_rax` to -1 keeps the kernel from restarting the syscall the thread
//! was interrupted in while our call runs; restoring the saved `orig_rax` and
//! `rax` (-ERESTARTSYS and friends) makes it restart that syscall on resume,
//! just as if the thread had only been stopped.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::live::Stopped;
use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::wire::{protocol_error, Reply, Request};

const SYS_CLONE: u64 = 56;
const SYS_WAIT4: u64 = 61;
const WNOHANG: u64 = 1;
const WALL: u64 = 0x4000_0000;
/// A fork of a large process copies its page tables; allow for that.
pub(super) const INJECT_TIMEOUT: Duration = Duration::from_secs(10);

fn os(op: &'static str) -> impl Fn(Errno) -> AttachError {
    move |errno| AttachError::Os { op, errno }
}

/// Waits (polling, bounded) for the next status of `pid` alone; the
/// timeout's error says it was `waiting_for` that.
pub(super) fn wait_one(
    pid: i32,
    deadline: Instant,
    waiting_for: &'static str,
) -> Result<WaitStatus, AttachError> {
    let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
    let mut nap = Duration::from_micros(10);
    loop {
        match waitpid(Some(Pid::from_raw(pid)), Some(flags)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(ws) => return Ok(ws),
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(AttachError::Os {
                    op: "waitpid",
                    errno,
                })
            }
        }
        if Instant::now() > deadline {
            return Err(AttachError::Os {
                op: waiting_for,
                errno: Errno::ETIMEDOUT,
            });
        }
        std::thread::sleep(nap);
        // Short naps: the target is stopped while we wait (a fork takes
        // tens of milliseconds), and each nap can add its length to that.
        nap = (nap * 2).min(Duration::from_micros(200));
    }
}

/// What an injected syscall returned.
pub(super) struct Injected {
    pub(super) ret: i64,
    /// The new process, when the syscall was a clone we were told about.
    child: Option<i32>,
    /// From the step into the syscall to the clone event (the kernel's
    /// work, plus at most one polling interval).
    until_clone: Option<Duration>,
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
    /// a group stop), the leader first.
    pub(super) fn injection_thread(&self) -> Result<i32, AttachError> {
        let ok = |s: &State| *s == State::Stopped(StopKind::Event);
        if self.threads.get(&self.pid).is_some_and(ok) {
            return Ok(self.pid);
        }
        self.threads
            .iter()
            .find(|(_, s)| ok(s))
            .map(|(t, _)| *t)
            .ok_or(AttachError::Os {
                op: "no thread can run an injected syscall (each is in a job-control stop or delivering a signal)",
                errno: Errno::EBUSY,
            })
    }

    /// Runs syscall `nr` with `args` in stopped thread `tid` by stepping over
    /// the `syscall` instruction at `insn`, then restores its registers.
    pub(super) fn inject(
        &mut self,
        tid: i32,
        insn: u64,
        nr: u64,
        args: [u64; 6],
    ) -> Result<Injected, AttachError> {
        let p = Pid::from_raw(tid);
        let saved = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        let mut regs = saved;
        regs.rip = insn;
        regs.rax = nr;
        regs.orig_rax = u64::MAX;
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        ptrace::setregs(p, regs).map_err(os("PTRACE_SETREGS"))?;
        let start = Instant::now();
        let deadline = start + INJECT_TIMEOUT;
        let mut child = None;
        let mut until_clone = None;
        let mut pending: Option<Signal> = None;
        let mut result = Err(AttachError::Os {
            op: "injected syscall did not finish",
            errno: Errno::ETIMEDOUT,
        });
        for _ in 0..32 {
            if let Err(errno) = ptrace::step(p, None) {
                result = Err(AttachError::Os {
                    op: "PTRACE_SINGLESTEP",
                    errno,
                });
                break;
            }
            match wait_one(tid, deadline, "waiting for the injected syscall") {
                Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_CLONE)) => {
                    until_clone = Some(start.elapsed());
                    if let Ok(c) = ptrace::getevent(p) {
                        child = Some(c as i32);
                        // From now on it is ours to kill, whatever happens.
                        self.fork_child = Some(c as i32);
                    }
                }
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {
                    result = ptrace::getregs(p)
                        .map(|r| Injected {
                            ret: r.rax as i64,
                            child,
                            until_clone,
                        })
                        .map_err(os("PTRACE_GETREGS"));
                    break;
                }
                // A signal on its way to the thread: delivered on resume.
                Ok(WaitStatus::Stopped(_, sig)) => pending = Some(sig),
                Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => {
                    self.threads.remove(&tid);
                    return Err(AttachError::Exited { pid: self.pid });
                }
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Put the thread back as it was, whatever happened. If the step never
        // finished the thread is still in a ptrace stop, so this works.
        let restored = ptrace::setregs(p, saved).map_err(os("PTRACE_SETREGS (restore)"));
        if let Some(sig) = pending {
            self.threads
                .insert(tid, State::Stopped(StopKind::Signal(sig)));
        }
        let out = result?;
        restored?;
        Ok(out)
    }

    /// With every thread stopped: clones the target (flags 0: a copy of the
    /// address space, exit signal 0 so the target gets no SIGCHLD). The
    /// copy is auto-attached (TRACECLONE) and born in a ptrace stop, so it
    /// never runs; it gets `PTRACE_O_EXITKILL` so it dies with goat.
    pub(super) fn fork_copy(&mut self, insn: u64) -> Result<Forked, AttachError> {
        if self.fork_child.is_some() {
            return Err(AttachError::Os {
                op: "a snapshot copy already exists",
                errno: Errno::EBUSY,
            });
        }
        let tid = self.injection_thread()?;
        self.syscall_insn = Some(insn);
        let r = self.inject(tid, insn, SYS_CLONE, [0; 6])?;
        if r.ret < 0 {
            return Err(AttachError::Os {
                op: "clone in the target",
                errno: Errno::from_raw(-r.ret as i32),
            });
        }
        let child = r.child.ok_or(AttachError::Os {
            op: "clone in the target was not traced",
            errno: Errno::ESRCH,
        })?;
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
                    return Err(AttachError::Os {
                        op: "the snapshot copy died",
                        errno: Errno::ESRCH,
                    });
                }
                _ => {}
            }
        }
        let opts = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_EXITKILL;
        ptrace::setoptions(Pid::from_raw(child), opts).map_err(os("PTRACE_SETOPTIONS"))?;
        Ok(Forked {
            child,
            clone: r.until_clone.unwrap_or_default(),
        })
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
        let tid = self.injection_thread()?;
        self.reap_in(tid, child)
    }

    /// Has stopped thread `tid` run `wait4(child, NULL, __WALL|WNOHANG,
    /// NULL)` on the dead copy. Any thread of the target will do: wait4
    /// looks at the children of every thread in the group (no
    /// `__WNOTHREAD`), and `__WALL` is needed because the copy's exit signal
    /// is 0, which makes it a "clone" child that plain wait4 skips — which
    /// is also why the program's own wait4(-1) never takes it.
    pub(super) fn reap_in(&mut self, tid: i32, child: i32) -> Result<(), AttachError> {
        self.wait4_in(tid, child)?;
        self.fork_child = None;
        Ok(())
    }

    /// Reaps, with stopped thread `tid`, the zombies of copies that goats
    /// killed mid-write left behind (see [`leftover_copies`]); returns how
    /// many. Best effort: a zombie that will not go is left as it was.
    pub(super) fn reap_leftovers(&mut self, tid: i32) -> usize {
        leftover_copies(self.pid, self.fork_child)
            .into_iter()
            .filter(|&z| self.wait4_in(tid, z).is_ok())
            .count()
    }

    fn wait4_in(&mut self, tid: i32, child: i32) -> Result<(), AttachError> {
        let insn = self.syscall_insn.ok_or(AttachError::Os {
            op: "no syscall instruction known",
            errno: Errno::EINVAL,
        })?;
        let r = self.inject(
            tid,
            insn,
            SYS_WAIT4,
            [child as u64, 0, WALL | WNOHANG, 0, 0, 0],
        )?;
        if r.ret != i64::from(child) {
            return Err(AttachError::Os {
                op: "wait4 in the target did not reap the snapshot copy",
                errno: if r.ret < 0 {
                    Errno::from_raw(-r.ret as i32)
                } else {
                    Errno::ECHILD
                },
            });
        }
        Ok(())
    }
}

/// Zombie children of `pid` that are snapshot copies whose goat was killed
/// before it could have them reaped: exit signal 0 (a "clone" child, which
/// the program's own `wait4` never takes), killed by SIGKILL
/// (`PTRACE_O_EXITKILL`), under the target's own name. Go never makes such
/// children; a program that did would also have to SIGKILL them itself.
fn leftover_copies(pid: i32, except: Option<i32>) -> Vec<i32> {
    let comm = |p: i32| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    let Some(name) = comm(pid) else {
        return Vec::new();
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut found: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect::<Vec<i32>>()
        })
        .filter(|&c| Some(c) != except)
        .filter(|&c| {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).unwrap_or_default();
            is_killed_copy(&stat) && comm(c).as_ref() == Some(&name)
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Whether a `/proc/PID/stat` line is a zombie with exit signal 0 that
/// SIGKILL ended.
fn is_killed_copy(stat: &str) -> bool {
    // The name, in parentheses, may itself hold spaces and parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field 38 is exit_signal, field 52 exit_code.
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    f.first() == Some(&"Z")
        && field(38) == Some(0)
        && field(52).is_some_and(|code| code & 0x7f == libc::SIGKILL as i64)
}

impl Stopped<'_> {
    /// Clones the stopped target into a frozen copy (see [`Tracer::fork_copy`])
    /// by running `clone` at `syscall_insn`, the address of an existing
    /// `syscall` instruction in the target's executable memory. Returns the
    /// copy's pid: read its memory while the target runs on, then call
    /// [`LiveProcess::release_copy`]. Registers of the target's threads are
    /// unchanged (and are those of [`Target::threads`](super::Target::threads)).
    pub fn fork_copy(&self, syscall_insn: u64) -> Result<Forked, AttachError> {
        match self.process.request(Request::ForkCopy(syscall_insn))? {
            Reply::Forked(f) => Ok(f),
            _ => Err(protocol_error()),
        }
    }
}

/// Finds a `syscall` instruction (`0f 05`) in `bytes`, mapped at `base`.
pub fn find_syscall_insn(bytes: &[u8], base: u64) -> Option<u64> {
    bytes
        .windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|i| base + i as u64)
}

#[cfg(test)]
mod tests {
    use super::is_killed_copy;

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
        assert!(!is_killed_copy(&stat("ticker", "Z", 0, 0x100)));
        assert!(!is_killed_copy("4242 (ticker"));
        assert!(!is_killed_copy(""));
    }
}
