//! Goroutines in a system call: the call's number is the thread's
//! `orig_rax` (what the kernel keeps of `rax` at entry), its first
//! argument still in `rdi` for the calls that take a descriptor there.

use super::WaitsOn;
use crate::goruntime::GoroutineBrief;
use crate::process::Thread;

/// x86-64 numbers of the calls a Go program blocks in, and whether the
/// first argument is a descriptor.
const NAMES: &[(u64, &str, bool)] = &[
    (0, "read", true),
    (1, "write", true),
    (3, "close", true),
    (7, "poll", false),
    (17, "pread64", true),
    (18, "pwrite64", true),
    (19, "readv", true),
    (20, "writev", true),
    (23, "select", false),
    (34, "pause", false),
    (35, "nanosleep", false),
    (42, "connect", true),
    (43, "accept", true),
    (44, "sendto", true),
    (45, "recvfrom", true),
    (46, "sendmsg", true),
    (47, "recvmsg", true),
    (61, "wait4", false),
    (74, "fsync", true),
    (128, "rt_sigtimedwait", false),
    (202, "futex", false),
    (230, "clock_nanosleep", false),
    (232, "epoll_wait", true),
    (247, "waitid", false),
    (257, "openat", false),
    (270, "pselect6", false),
    (271, "ppoll", false),
    (281, "epoll_pwait", true),
    (288, "accept4", true),
    (295, "preadv", true),
    (296, "pwritev", true),
    (441, "epoll_pwait2", true),
];

pub fn waits_on(g: &GoroutineBrief, threads: &[Thread]) -> WaitsOn {
    let thread =
        g.m.and_then(|m| threads.iter().find(|t| i64::from(t.go_tid()) == m.tid));
    let Some(t) = thread else {
        return WaitsOn::Syscall {
            nr: None,
            name: None,
            fd: None,
        };
    };
    // -1: the thread is not in a system call after all (it stopped in
    // user code on its way in or out).
    let nr = (t.regs.orig_rax as i64 >= 0).then_some(t.regs.orig_rax);
    let known = nr.and_then(|nr| NAMES.iter().find(|(n, _, _)| *n == nr));
    WaitsOn::Syscall {
        nr,
        name: known.map(|k| k.1),
        fd: known
            .filter(|k| k.2)
            .and_then(|_| i32::try_from(t.regs.rdi).ok()),
    }
}
