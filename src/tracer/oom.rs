//! Keeping the out-of-memory killer off goat's helper processes.
//!
//! goat is used on the very box where a leaking service has eaten the
//! memory, and the OOM killer (the kernel's, or a cgroup's) picks the
//! process whose death frees the most: goat itself, with its copy of the
//! target, is a fine choice, and its tracer and guardian undo what goat
//! did when goat dies. But a tracer that dies holding a thread in a state
//! of its making (an injected syscall, a trap in flight) can harm the
//! target, and a guardian that dies with it can no longer take int3s out.
//! Both are small, so each asks, at start, never to be chosen:
//! `oom_score_adj` -1000. Lowering it needs CAP_SYS_RESOURCE (root has it,
//! unless a container or sandbox took it away); without it the value stays
//! as inherited, and `--stats` says so.

use std::path::PathBuf;

/// The `oom_score_adj` that exempts a process from the OOM killer.
pub const NEVER_KILL: i32 = -1000;

/// Asks the kernel never to pick this process; whether it agreed.
pub(super) fn exempt_self() -> bool {
    std::fs::write("/proc/self/oom_score_adj", NEVER_KILL.to_string()).is_ok()
        && score_adj(std::process::id() as i32) == Some(NEVER_KILL)
}

/// The `oom_score_adj` of process `pid`, if it can be read.
pub fn score_adj(pid: i32) -> Option<i32> {
    let path: PathBuf = ["/proc", &pid.to_string(), "oom_score_adj"]
        .iter()
        .collect();
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One of goat's helper processes as `--stats` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// `goat-tracer` or `goat-guardian`.
    pub name: String,
    pub pid: i32,
    /// Its `oom_score_adj`, `None` when it could not be read (it exited).
    pub oom_score_adj: Option<i32>,
}

impl std::fmt::Display for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {}): oom_score_adj ", self.name, self.pid)?;
        match self.oom_score_adj {
            Some(NEVER_KILL) => write!(f, "{NEVER_KILL}, never chosen by the OOM killer"),
            Some(v) => write!(
                f,
                "{v}: not lowered (that needs CAP_SYS_RESOURCE, which goat lacks here), so an \
                 OOM kill may take it with goat"
            ),
            None => write!(f, "unknown (it has exited)"),
        }
    }
}

/// Tracer process `tracer` and its children (the guardian) as helpers.
pub(super) fn helpers_of(tracer: i32) -> Vec<Helper> {
    let name_of = |pid| {
        crate::process::procfs::comm(pid)
            .map(|c| c.trim_end().to_string())
            .unwrap_or_else(|| "goat-tracer".into())
    };
    std::iter::once(tracer)
        .chain(crate::process::procfs::children(tracer))
        .map(|pid| Helper {
            name: name_of(pid),
            pid,
            oom_score_adj: score_adj(pid),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_score_and_says_what_a_value_means() {
        let me = std::process::id() as i32;
        assert!(score_adj(me).is_some_and(|v| (-1000..=1000).contains(&v)));
        assert_eq!(score_adj(-1), None);
        let h = |v| Helper {
            name: "goat-tracer".into(),
            pid: 7,
            oom_score_adj: v,
        };
        assert!(h(Some(-1000)).to_string().contains("never chosen"));
        assert!(h(Some(0)).to_string().contains("CAP_SYS_RESOURCE"));
        assert!(h(None).to_string().contains("exited"));
    }
}
