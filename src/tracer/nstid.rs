//! The ids a containerised target's threads have in its own pid namespace.
//! The Go runtime records those (`m.procid`); ptrace and `/proc` on the
//! host use others. Read once per thread, when the tracer first reports it,
//! and only when the target's pid namespace is not goat's: a target in
//! goat's own namespace costs nothing in a stop.

use std::collections::HashMap;

use crate::process::procfs::{self, Who};

#[derive(Debug, Default)]
pub(super) struct NsTids {
    /// Whether the target's pid namespace differs from goat's; unknown
    /// until first asked.
    other: Option<bool>,
    known: HashMap<i32, Option<i32>>,
}

impl NsTids {
    /// The id thread `tid` of `pid` has in the target's own namespace, when
    /// it differs from `tid`.
    pub fn of(&mut self, pid: i32, tid: i32) -> Option<i32> {
        let other = *self.other.get_or_insert_with(|| {
            let mine = procfs::ns_link(Who::Me, "pid");
            mine.is_some() && mine != procfs::ns_link(Who::Pid(pid), "pid")
        });
        if !other {
            return None;
        }
        *self
            .known
            .entry(tid)
            .or_insert_with(|| procfs::ns_tid(pid, tid).filter(|&inner| inner != tid))
    }

    /// Forgets threads that exited (their ids may be reused).
    pub fn keep_only(&mut self, alive: impl Fn(i32) -> bool) {
        self.known.retain(|&tid, _| alive(tid));
    }
}
