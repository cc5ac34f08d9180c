//! Processes the program forks while goat traces it, handled as gdb does by
//! default (`follow-fork-mode parent`, `detach-on-fork on`): goat stays
//! with the program, and each child runs on untraced, without a single int3.
//!
//! A child is born with the parent's memory: a copy of it (`fork`), int3s
//! included when the program ran under breakpoints, or the very same
//! memory (`CLONE_VM`; Go's `forkExec` on linux/amd64 uses
//! `CLONE_VM|CLONE_VFORK`). A child that runs an int3 untraced dies of
//! SIGTRAP. `PTRACE_O_TRACEFORK`/`TRACEVFORK` make the kernel attach the
//! child to goat and hold it in a stop before its first instruction; the
//! parent reports the event. Then:
//! - a copy gets the original bytes written back into its own memory;
//! - a child that shares the memory has the int3s taken out of it, for
//!   the parent as well, until it lets go of that memory: the vfork parent
//!   is suspended until then, and `PTRACE_EVENT_VFORK_DONE` says when (the
//!   other threads of the program run meanwhile without breakpoints, as
//!   under gdb). Writing the originals into shared memory while the
//!   parent's int3s stayed would be the same write: there is one copy.
//!
//! Either way the child's debug registers are cleared (the kernel starts
//! a child without goat's watchpoints; this makes sure) and it is
//! detached. The first time, goat says that a breakpoint in code that only
//! a child runs never stops. Should the tracer die, the guardian writes the
//! bytes back into the copies too ([`scrub_children`]).

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::inject::wait_one;
use super::ptrace::{State, StopKind, Tracer};
use crate::process::procfs;

const INT3: u8 = 0xcc;
/// `kcmp`'s type for "the same address space".
const KCMP_VM: libc::c_long = 1;
/// How long a fork event waits for the child's first stop (it is on its
/// way: the kernel stops it before it returns to user space).
const FIRST_STOP: Duration = Duration::from_secs(2);

/// What the tracer knows of the program's children.
#[derive(Default)]
pub(super) struct Forks {
    /// Children whose first stop came before their parent's fork event:
    /// held stopped until the event says what they are.
    early: BTreeSet<i32>,
    /// The user was told that children run without breakpoints.
    told: bool,
}

/// Whether process `child` uses the same address space as `pid` (`kcmp`;
/// false once it exec'd or exited, or when that cannot be told).
pub(super) fn shares_memory(pid: i32, child: i32) -> bool {
    // SAFETY: kcmp takes five integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, child, KCMP_VM, 0, 0) };
    r == 0
}

/// Whether `tid` is a thread of process `pid`.
fn is_thread_of(pid: i32, tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}

/// Writes `orig` back wherever process `child`'s own copy of the memory
/// holds an int3 at a breakpoint address. Returns how many bytes it wrote.
fn scrub_copy(child: i32, originals: &[(u64, u8)]) -> usize {
    let Ok(mem) = procfs::open_mem(child, true) else {
        return 0;
    };
    let mut restored = 0;
    for &(addr, orig) in originals {
        let mut cur = [0u8];
        if mem.read_exact_at(&mut cur, addr).is_ok()
            && cur[0] == INT3
            && mem.write_all_at(&[orig], addr).is_ok()
        {
            restored += 1;
        }
    }
    restored
}

/// For the guardian, whose tracer died with int3s armed: writes the
/// original bytes back into every child of `pid` that has a copy of its
/// memory (one that shares it was fixed with the target). Best effort: a
/// child already gone, or one another user owns, is left.
pub(super) fn scrub_children(pid: i32, originals: &[(u64, u8)]) -> usize {
    let mut children: Vec<i32> = Vec::new();
    for tid in procfs::tasks(pid).unwrap_or_default() {
        let list = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children"));
        children.extend(
            list.unwrap_or_default()
                .split_whitespace()
                .filter_map(|w| w.parse::<i32>().ok()),
        );
    }
    children
        .into_iter()
        .filter(|&c| !shares_memory(pid, c))
        .map(|c| scrub_copy(c, originals))
        .sum()
}

impl Tracer {
    /// A `PTRACE_EVENT_FORK`/`VFORK` stop of thread `parent`: the child
    /// is made safe and let go; the parent stays stopped when `stopping`.
    pub(super) fn on_fork_event(&mut self, parent: i32, stopping: bool) {
        let p = Pid::from_raw(parent);
        if let Ok(child) = ptrace::getevent(p) {
            self.let_child_go(child as i32);
        }
        self.threads.insert(
            parent,
            if stopping {
                State::Stopped(StopKind::Event)
            } else {
                State::Running
            },
        );
        if !stopping {
            let _ = ptrace::cont(p, None);
        }
    }

    /// `PTRACE_EVENT_VFORK_DONE`: the child let go of the shared memory.
    pub(super) fn on_vfork_done(&mut self, parent: i32, stopping: bool) {
        let p = Pid::from_raw(parent);
        if let Ok(child) = ptrace::getevent(p) {
            let pid = self.pid;
            self.bps.child_released(pid, child as i32);
        }
        if stopping {
            self.threads.insert(parent, State::Stopped(StopKind::Event));
        } else {
            self.threads.insert(parent, State::Running);
            let _ = ptrace::cont(p, None);
        }
    }

    /// A `PTRACE_EVENT_STOP` of `tid`, which is neither a known thread nor
    /// a thread of the target: a child whose first stop came before the
    /// fork event. Held (true) until that event. False for anything else.
    pub(super) fn child_first_stop(&mut self, tid: i32) -> bool {
        if self.threads.contains_key(&tid)
            || Some(tid) == self.fork_child
            || self.bps.pending_trap.contains_key(&tid)
            || is_thread_of(self.pid, tid)
        {
            return false;
        }
        self.forks.early.insert(tid);
        true
    }

    /// Makes child `child` safe to run untraced, then detaches it.
    fn let_child_go(&mut self, child: i32) {
        let stop = if self.forks.early.remove(&child) {
            None
        } else {
            match wait_one(child, Instant::now() + FIRST_STOP, "a child's first stop") {
                Ok(WaitStatus::Stopped(_, sig)) => Some(sig),
                Ok(WaitStatus::PtraceEvent(..)) => None,
                // Gone already, or never stopped: nothing to undo in it.
                _ => return,
            }
        };
        let pid = self.pid;
        if shares_memory(pid, child) {
            self.bps.suspend_for(pid, child);
        } else {
            scrub_copy(child, &self.bps.originals());
        }
        // A trap taken before goat could help (never expected: the child
        // stops before its first instruction) is undone, not delivered.
        let sig = match stop {
            Some(Signal::SIGTRAP) if self.rewind_child(child) => None,
            other => other,
        };
        let _ = super::hwbreak::clear_dr7(child);
        let _ = ptrace::detach(Pid::from_raw(child), sig);
        if !self.forks.told && !self.bps.originals().is_empty() {
            self.forks.told = true;
            crate::eprintln_quiet!(
                "goat: pid {pid} started process {child}; goat stays with pid {pid} and lets \
                 its children run untraced, without breakpoints (as gdb does): a breakpoint in \
                 code that only a child runs, such as syscall.runtime_AfterForkInChild, never \
                 stops"
            );
        }
    }

    /// Moves a stopped child back onto the breakpoint it trapped on (its
    /// original byte is back by now). Whether it did.
    fn rewind_child(&mut self, child: i32) -> bool {
        let p = Pid::from_raw(child);
        let Ok(mut regs) = ptrace::getregs(p) else {
            return false;
        };
        let at = regs.rip.wrapping_sub(1);
        if !self.bps.originals().iter().any(|&(a, _)| a == at) {
            return false;
        }
        regs.rip = at;
        ptrace::setregs(p, regs).is_ok()
    }

    /// On detach: children held at an early first stop are let go too.
    pub(super) fn let_children_go(&mut self) {
        for child in std::mem::take(&mut self.forks.early) {
            self.forks.early.insert(child);
            self.let_child_go(child);
        }
        // A child that still shares the memory runs on without int3s.
        self.bps.sharing.clear();
    }
}
