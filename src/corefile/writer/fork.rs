//! Whether fork mode (and live mode, which injects syscalls too) can be
//! used on a target.

use thiserror::Error;

use crate::process::procfs;

/// Why fork or live mode cannot be used on a target (goat then writes
/// the core in another mode and says why).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Infeasible {
    #[error("the target is in a job-control stop (SIGSTOP): no thread can run a syscall")]
    JobControlStop,
    /// A filter may answer an injected syscall with SECCOMP_RET_KILL.
    #[error("the target runs under a seccomp filter, which could kill it for an injected syscall")]
    Seccomp,
    #[error(
        "its cgroup has {} MiB of memory headroom, less than its {} MiB of anonymous memory a copy could need",
        room >> 20,
        anon >> 20
    )]
    NoHeadroom { room: u64, anon: u64 },
}

/// Whether cloning the target is safe and likely to work; `Err(why)` if not.
pub fn fork_feasible(pid: i32) -> Result<(), Infeasible> {
    injection_feasible(pid, false)?;
    memory_headroom(pid)
}

/// Whether syscalls may be run in the target at all; `Err(why)` if not.
/// `under_seccomp`: try even under a seccomp filter (tests only, against a
/// fixture whose filter answers EPERM, to check that a refused call leaves
/// the target as it was).
pub fn injection_feasible(pid: i32, under_seccomp: bool) -> Result<(), Infeasible> {
    let seccomp = procfs::status(pid).and_then(|s| s.seccomp);
    if in_job_control_stop(pid) {
        return Err(Infeasible::JobControlStop);
    }
    // A filter may answer an injected syscall with SECCOMP_RET_KILL, which
    // would kill the target: never try.
    if seccomp.is_some_and(|v| v != 0) && !under_seccomp {
        return Err(Infeasible::Seccomp);
    }
    Ok(())
}

/// Whether `pid` stays stopped: seized by goat already, a job-control stop
/// shows as 't', but so does, for a moment, a thread goat has just
/// resumed from its own stop (attaching, a core before this one). A
/// job-control stop lasts; that moment does not.
fn in_job_control_stop(pid: i32) -> bool {
    // Sampled every 2 ms for 18 ms: any moment out of the stop ends it.
    let stopped = || procfs::status(pid).is_some_and(|s| s.state.starts_with(['T', 't']));
    let ms = std::time::Duration::from_millis;
    crate::poll::poll_until(ms(18), ms(2), || (!stopped()).then_some(())).is_none()
}

/// Whether the target's cgroup has room for a copy of its anonymous
/// memory (what a fork may come to need); `Err(why)` if not.
pub fn memory_headroom(pid: i32) -> Result<(), Infeasible> {
    let anon = procfs::kb_to_bytes(procfs::status(pid).and_then(|s| s.rssanon));
    if let Some(path) = procfs::cgroup_v2_path(pid) {
        let dir = format!("/sys/fs/cgroup{path}");
        let rd = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        if let (Some(max), Some(cur)) = (rd("memory.max"), rd("memory.current")) {
            if let (Ok(max), Ok(cur)) = (max.trim().parse::<u64>(), cur.trim().parse::<u64>()) {
                let room = max.saturating_sub(cur);
                if room < anon {
                    return Err(Infeasible::NoHeadroom { room, anon });
                }
            }
        }
    }
    Ok(())
}
