//! Having the stopped target open a userfaultfd and taking goat's own copy
//! of it, for the write tracking of live-mode snapshots
//! (`corefile/writer/live.rs`). A userfaultfd watches the address space of the
//! process that created it, so the target must make the call; goat then
//! copies the descriptor with `pidfd_getfd` and has the target close its
//! own, in the same stop: afterwards the target's file table is as it was,
//! and the tracking ends when goat's copy is closed (or goat dies).
//!
//! The injections are the tracer's work, and the tracer may be a process of
//! its own (`remote.rs`): it then keeps its copy of the descriptor until
//! goat has taken one from it (`pidfd_getfd` on the tracer process, goat's
//! own child) and asks it to close its copy. Were goat to die in between,
//! the tracer's copy closes as the tracer exits: the target's file table
//! is as it was either way.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::inject::{Makes, ThenClose};
use super::live::{Link, LiveProcess, Stopped};
use super::ptrace::{AttachError, Tracer};
use super::wire::{protocol_error, Reply, Request};

const SYS_USERFAULTFD: u64 = 323;
/// Faults in user mode only: what unprivileged processes may ask for when
/// `vm.unprivileged_userfaultfd` is 0, and all that write tracking needs.
const UFFD_USER_MODE_ONLY: u64 = 1;

fn os(op: &'static str, errno: Errno) -> AttachError {
    AttachError::os(op, errno)
}

/// The lowest descriptor number `pid` has free, the one its next new
/// descriptor gets (every thread is stopped: nothing takes it meanwhile).
fn lowest_free_fd(pid: i32) -> u64 {
    let used: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap_or(0)
}

/// `pidfd_getfd(pidfd_open(pid), fd)`: goat's own copy of the target's `fd`.
fn copy_fd(pid: i32, fd: i32) -> Result<OwnedFd, AttachError> {
    // SAFETY: plain syscalls with integer arguments; each result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(os("pidfd_open", Errno::last()));
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let mine = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if mine < 0 {
        return Err(os("pidfd_getfd", Errno::last()));
    }
    // SAFETY: pidfd_getfd returned a new descriptor (close-on-exec).
    Ok(unsafe { OwnedFd::from_raw_fd(mine as i32) })
}

impl Tracer {
    /// With every thread stopped: runs `userfaultfd(O_CLOEXEC | O_NONBLOCK |
    /// UFFD_USER_MODE_ONLY)` in the target, copies the new descriptor into
    /// the tracer's process and closes it in the target again (also when
    /// the copy fails). Returns the number of the tracer's copy, kept in
    /// `borrowed_fds` until [`LiveProcess::take_fd`] takes it.
    pub(super) fn userfaultfd_in(&mut self) -> Result<i32, AttachError> {
        let tid = self.injection_thread()?;
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | UFFD_USER_MODE_ONLY;
        // One borrow: the close runs on the thread's way back, so that a
        // tracer killed between the two leaves no descriptor behind.
        let then = ThenClose {
            fd: lowest_free_fd(self.pid),
            copy: copy_fd,
        };
        let r = self.inject_making(
            tid,
            SYS_USERFAULTFD,
            [flags, 0, 0, 0, 0, 0],
            Makes::Nothing,
            Some(then),
        )?;
        if r.ret < 0 {
            return Err(AttachError::in_target("userfaultfd in the target", r.ret));
        }
        let Some((mine, closed)) = r.copied else {
            return Err(AttachError::InjectionUnfinished);
        };
        let mine = mine?;
        if closed != 0 {
            return Err(AttachError::in_target("close in the target", closed));
        }
        let n = mine.as_raw_fd();
        self.borrowed_fds.insert(n, mine);
        Ok(n)
    }
}

impl LiveProcess {
    /// goat's own copy of descriptor `n` of the tracer's `borrowed_fds`,
    /// which the tracer then closes.
    fn take_fd(&self, n: i32) -> Result<OwnedFd, AttachError> {
        let not_held = || AttachError::NoSuchFd { fd: n };
        let tracer = match &self.link {
            Link::Thread(t) => {
                return t
                    .call(move |t| t.borrowed_fds.remove(&n))?
                    .ok_or_else(not_held)
            }
            Link::Process(p) => p.pid(),
        };
        let mine = copy_fd(tracer, n);
        let closed = self.request(Request::CloseFd(n));
        let mine = mine?;
        match closed? {
            Reply::Found(true) => Ok(mine),
            Reply::Found(false) => Err(not_held()),
            _ => Err(protocol_error()),
        }
    }
}

impl Stopped<'_> {
    /// A userfaultfd watching the target's address space, created by the
    /// target (an injected syscall, `inject.rs`) and owned by goat alone.
    pub fn open_userfaultfd(&self) -> Result<OwnedFd, AttachError> {
        match self.process.request(Request::OpenUserfaultfd)? {
            Reply::Fd(n) => self.process.take_fd(n),
            _ => Err(protocol_error()),
        }
    }
}
