//! The guardian: a small process that outlives the tracer and takes int3
//! bytes out of the target if the tracer dies (even by SIGKILL) while they
//! are armed. In a session the tracer is already a process of its own that
//! outlives goat (`remote.rs`); the guardian is the second line, for the
//! tracer process itself being killed.
//!
//! gdb and Delve leave their breakpoint bytes behind when killed, and the
//! program dies of SIGTRAP the next time it runs over one. The tracer writes
//! int3s only while the target runs (it disarms at every stop), and tells
//! the guardian, over a pipe, what it is about to arm and when it has
//! disarmed. When the pipe closes without a goodbye while bytes are armed,
//! the tracer is dead: the guardian writes the original bytes back first
//! (through `/proc/PID/mem`, which needs no tracer), then attaches, rewinds
//! any thread that executed an int3 whose SIGTRAP is still pending,
//! discards that SIGTRAP, and detaches.
//!
//! The window that remains: a thread whose int3 trap the tracer had
//! received but not yet converted into a signal-less stop when it died gets
//! its SIGTRAP from the kernel as the tracing ends (microseconds per hit),
//! and a thread that runs into an int3 between the kernel detaching it and
//! the guardian's write gets one too (the guardian's wake-up latency).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use thiserror::Error;

use super::inject::wait_one;
use super::live::ThreadLink;
use super::ptrace::{task_ids, AttachError};
use crate::poll::{poll_until, poll_until_deadline};
use crate::process::procfs;

const INT3: u8 = 0xcc;
/// How long the guardian waits for goat's tracing to end before it gives up
/// attaching (the bytes are already restored by then).
const SEIZE_PATIENCE: Duration = Duration::from_secs(3);
/// How long it waits for the threads it attached to report a stop.
const STOP_PATIENCE: Duration = Duration::from_secs(3);
/// The hidden subcommand that runs [`run`].
pub const SUBCOMMAND: &str = "guardian";

/// Why there is no guardian.
#[derive(Debug, Error)]
pub enum GuardianError {
    /// `goat guardian PID` could not be started.
    #[error(transparent)]
    Spawn(#[from] std::io::Error),
    /// The tracer thread is gone.
    #[error(transparent)]
    Observer(#[from] AttachError),
}

/// Why a guardian could not undo what a dead tracer left (the error is
/// shown inline, not as a source: the guardian prints it on one line).
#[derive(Debug, Error)]
enum RescueError {
    #[error("cannot open /proc/{pid}/mem to restore the code: {error}")]
    OpenMem { pid: i32, error: std::io::Error },
    #[error("cannot restore the byte at {addr:#x}: {error}")]
    Restore { addr: u64, error: std::io::Error },
    #[error("the bytes are restored, but {threads} thread(s) stayed traced by someone else")]
    StillTraced { threads: usize },
}

/// Starts a guardian for target `pid` and has its tracer thread tell it
/// of every int3 it arms.
pub(super) fn watch_over(pid: i32, tracer: &ThreadLink) -> Result<(), GuardianError> {
    let g = Guardian::spawn(pid)?;
    Ok(tracer.set_arm_observer(Box::new(g))?)
}

/// goat's end of the pipe to a guardian process.
pub struct Guardian {
    child: Child,
    pipe: Option<ChildStdin>,
    /// Set once a write failed (the guardian is gone): warned once.
    broken: bool,
}

impl Guardian {
    /// Starts `goat guardian PID` (this executable) with a pipe as its stdin.
    pub fn spawn(pid: i32) -> std::io::Result<Guardian> {
        let mut child = Command::new(procfs::OWN_EXE)
            .arg(SUBCOMMAND)
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Guardian {
            child,
            pipe,
            broken: false,
        })
    }

    fn send(&mut self, line: &str) {
        let Some(pipe) = self.pipe.as_mut() else {
            return;
        };
        if pipe.write_all(line.as_bytes()).is_err() && !self.broken {
            self.broken = true;
            crate::eprintln_quiet!("goat: the guardian process is gone; breakpoints would stay behind if goat were killed");
        }
    }

    /// Every (address, original byte) about to get an int3.
    pub fn armed(&mut self, bytes: &[(u64, u8)]) {
        let mut line = String::from("arm");
        for (addr, orig) in bytes {
            line.push_str(&format!(" {addr:x}:{orig:02x}"));
        }
        line.push('\n');
        self.send(&line);
    }

    /// Every original byte is back.
    pub fn disarmed(&mut self) {
        self.send("disarm\n");
    }

    /// Debug registers are in use (a watchpoint is set), or no longer.
    pub fn watching(&mut self, on: bool) {
        self.send(if on { "watch\n" } else { "unwatch\n" });
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.send("bye\n");
        self.pipe = None;
        // It exits as soon as it reads the goodbye; never hang goat on it.
        let exited = || self.child.try_wait().ok().flatten();
        if poll_until(Duration::from_secs(1), Duration::from_millis(2), exited).is_some() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl super::ArmObserver for Guardian {
    fn armed(&mut self, bytes: &[(u64, u8)]) {
        Guardian::armed(self, bytes);
    }
    fn disarmed(&mut self) {
        Guardian::disarmed(self);
    }
    fn watching(&mut self, on: bool) {
        Guardian::watching(self, on);
    }
}

/// What the guardian last heard.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Goodbye,
    /// The pipe closed; these bytes were armed at the time, and debug
    /// registers were in use or not.
    Closed(BTreeMap<u64, u8>, bool),
}

fn listen(input: impl BufRead) -> Heard {
    let mut armed = BTreeMap::new();
    let mut watching = false;
    for line in input.lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("bye") => return Heard::Goodbye,
            Some("disarm") => armed.clear(),
            Some("watch") => watching = true,
            Some("unwatch") => watching = false,
            Some("arm") => {
                for w in words {
                    let parsed = w.split_once(':').and_then(|(a, b)| {
                        Some((
                            u64::from_str_radix(a, 16).ok()?,
                            u8::from_str_radix(b, 16).ok()?,
                        ))
                    });
                    if let Some((addr, orig)) = parsed {
                        armed.insert(addr, orig);
                    }
                }
            }
            _ => {}
        }
    }
    Heard::Closed(armed, watching)
}

/// The guardian process: listens on stdin until goat says goodbye or dies.
/// Returns the exit status.
pub fn run(pid: i32) -> i32 {
    // Its own session: a Ctrl-C meant for goat's terminal must not reach it.
    let _ = nix::unistd::setsid();
    // Its own name, as the tracer's (see remote.rs).
    let _ = nix::sys::prctl::set_name(c"goat-guardian");
    // Its death with the tracer's would leave int3s in the target.
    super::oom::exempt_self();
    let stdin = std::io::stdin();
    match listen(stdin.lock()) {
        Heard::Goodbye => 0,
        Heard::Closed(armed, false) if armed.is_empty() => 0,
        Heard::Closed(armed, watching) => {
            match rescue(pid, &armed, watching) {
                Ok(r) => {
                    crate::eprintln_quiet!(
                    "goat guardian: goat died with breakpoints in pid {pid}: restored {} byte(s), \
                     rewound {} thread(s), cleared the debug registers of {} thread(s); \
                     pid {pid} runs on untraced",
                    r.restored, r.rewound, r.unwatched
                );
                    0
                }
                Err(e) => {
                    crate::eprintln_quiet!(
                        "goat guardian: goat died with breakpoints in pid {pid}: {e}"
                    );
                    1
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Rescue {
    restored: usize,
    rewound: usize,
    unwatched: usize,
}

/// Puts the original bytes back, then fixes threads caught on an int3.
fn rescue(pid: i32, armed: &BTreeMap<u64, u8>, watching: bool) -> Result<Rescue, RescueError> {
    let mut out = Rescue::default();
    let mem = procfs::open_mem(pid, true).map_err(|error| RescueError::OpenMem { pid, error })?;
    // Speed first: every microsecond an int3 stays, a thread may run into it.
    for (&addr, &orig) in armed {
        let mut cur = [0u8];
        if mem.read_exact_at(&mut cur, addr).is_ok() && cur[0] == INT3 {
            mem.write_all_at(&[orig], addr)
                .map_err(|error| RescueError::Restore { addr, error })?;
            out.restored += 1;
        }
    }
    // Copies of the memory in children forked meanwhile (forks.rs).
    let originals: Vec<(u64, u8)> = armed.iter().map(|(&a, &b)| (a, b)).collect();
    super::forks::scrub_children(pid, &originals);
    (out.rewound, out.unwatched) = rewind_trapped(pid, armed, watching)?;
    Ok(out)
}

/// `SIGTRAP` pending on `tid` (its own queue: int3 traps are thread-directed).
pub(super) fn sigtrap_pending(pid: i32, tid: i32) -> bool {
    procfs::task_status(pid, tid)
        .is_some_and(|s| s.sigpnd & (1 << (Signal::SIGTRAP as u64 - 1)) != 0)
}

/// Attaches to every thread (waiting for goat's tracing to end), rewinds
/// those that executed an armed int3 and still have its SIGTRAP pending,
/// discards that SIGTRAP, and detaches everything. With `watching`, it
/// also clears each thread's DR7 (the kernel keeps debug registers past
/// the tracer's death) and discards a watchpoint's SIGTRAP. Returns how
/// many threads were rewound, and how many had their DR7 cleared.
fn rewind_trapped(
    pid: i32,
    armed: &BTreeMap<u64, u8>,
    watching: bool,
) -> Result<(usize, usize), RescueError> {
    let mut seized: Vec<i32> = Vec::new();
    let deadline = Instant::now() + SEIZE_PATIENCE;
    let mut pending: Vec<i32> = task_ids(pid).unwrap_or_default();
    let nap = Duration::from_micros(100);
    poll_until_deadline(deadline, nap, nap, || {
        pending.retain(
            |&tid| match ptrace::seize(Pid::from_raw(tid), ptrace::Options::empty()) {
                Ok(()) => {
                    seized.push(tid);
                    false
                }
                // Still traced by the dying goat: try again shortly.
                Err(Errno::EPERM) => true,
                Err(_) => false, // exited
            },
        );
        pending.is_empty().then_some(())
    });
    if !pending.is_empty() {
        detach_all(&seized, &BTreeMap::new());
        return Err(RescueError::StillTraced {
            threads: pending.len(),
        });
    }
    for &tid in &seized {
        let _ = ptrace::interrupt(Pid::from_raw(tid));
    }
    // Signals caught on the way to a stop, to hand back at detach.
    let mut signals: BTreeMap<i32, Signal> = BTreeMap::new();
    let mut stopped: Vec<i32> = Vec::new();
    let mut rewound = 0;
    let nap = Duration::from_micros(50);
    poll_until(STOP_PATIENCE, nap, || loop {
        if stopped.len() >= seized.len() {
            return Some(());
        }
        match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(WaitStatus::Stopped(p, sig)) => {
                let tid = p.as_raw();
                // An armed int3's trap is dropped at detach; any other
                // signal is handed back.
                if sig == Signal::SIGTRAP && watching && watch_fired(tid) {
                    // The write is done; only the trap is dropped.
                } else if sig == Signal::SIGTRAP && rewind_if_armed(tid, armed) {
                    rewound += 1;
                } else {
                    signals.insert(tid, sig);
                }
                if !stopped.contains(&tid) {
                    stopped.push(tid);
                }
            }
            Ok(WaitStatus::PtraceEvent(p, _, _)) => {
                if !stopped.contains(&p.as_raw()) {
                    stopped.push(p.as_raw());
                }
            }
            Ok(WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _)) => {
                seized.retain(|&t| t != p.as_raw());
            }
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return Some(()),
        }
    });
    let mut unwatched = 0;
    for &tid in &stopped {
        if signals.contains_key(&tid) || !sigtrap_pending(pid, tid) {
            continue;
        }
        let fired = watching && watch_fired(tid);
        if fired {
            if ptrace::cont(Pid::from_raw(tid), None).is_ok() {
                wait_for_sigtrap(tid);
            }
        } else if rewind_if_armed(tid, armed) {
            rewound += 1;
            // Let it take the pending SIGTRAP into a signal-delivery-stop
            // (before any user instruction), where detaching drops it.
            if ptrace::cont(Pid::from_raw(tid), None).is_ok() {
                wait_for_sigtrap(tid);
            }
        }
    }
    if watching {
        for &tid in &stopped {
            if super::hwbreak::clear_dr7(tid) {
                unwatched += 1;
            }
        }
    }
    detach_all(&seized, &signals);
    Ok((rewound, unwatched))
}

/// Whether a debug register's condition bit is set in `tid`'s DR6 (one of
/// goat's watchpoints fired: DR6 is goat's to clear).
fn watch_fired(tid: i32) -> bool {
    super::hwbreak::peek_dr(tid, 6).is_ok_and(|dr6| dr6 & 0xf != 0)
}

/// Moves `tid` back onto the int3 it just executed, if its rip is right past
/// one of the armed addresses (whose original byte is now back).
fn rewind_if_armed(tid: i32, armed: &BTreeMap<u64, u8>) -> bool {
    let p = Pid::from_raw(tid);
    let Ok(mut regs) = ptrace::getregs(p) else {
        return false;
    };
    let at = regs.rip.wrapping_sub(1);
    if !armed.contains_key(&at) {
        return false;
    }
    regs.rip = at;
    ptrace::setregs(p, regs).is_ok()
}

fn wait_for_sigtrap(tid: i32) {
    let deadline = Instant::now() + STOP_PATIENCE;
    loop {
        match wait_one(tid, deadline, "waiting for a thread's SIGTRAP") {
            Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => return,
            Ok(WaitStatus::Stopped(p, sig)) => {
                // Another signal came first: deliver it and keep waiting.
                let _ = ptrace::cont(p, sig);
            }
            Ok(WaitStatus::PtraceEvent(p, _, _)) => {
                let _ = ptrace::cont(p, None);
            }
            Ok(_) => return,
            Err(AttachError::TimedOut { .. }) => break,
            Err(_) => return,
        }
    }
    let _ = ptrace::interrupt(Pid::from_raw(tid));
}

/// Detaches every thread, handing back the signals in `signals`; a thread in
/// a signal-delivery-stop not in it loses that signal (an armed int3's trap).
fn detach_all(seized: &[i32], signals: &BTreeMap<i32, Signal>) {
    for &tid in seized {
        let sig = signals.get(&tid).copied();
        if ptrace::detach(Pid::from_raw(tid), sig).is_err() {
            // Not in a ptrace-stop (it never reported): stop it, then detach.
            let _ = ptrace::interrupt(Pid::from_raw(tid));
            match wait_one(
                tid,
                Instant::now() + Duration::from_millis(200),
                "waiting for a thread to stop",
            ) {
                Ok(WaitStatus::Stopped(p, s)) => {
                    let _ = ptrace::detach(p, s);
                }
                Ok(_) => {
                    let _ = ptrace::detach(Pid::from_raw(tid), None);
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_to_arm_disarm_and_goodbye() {
        let h = listen("arm 401000:55 401f00:48\ndisarm\narm 402000:e8\n".as_bytes());
        assert_eq!(h, Heard::Closed(BTreeMap::from([(0x402000, 0xe8)]), false));
        let h = listen("watch\narm 1:2\ndisarm\n".as_bytes());
        assert_eq!(h, Heard::Closed(BTreeMap::new(), true));
        let h = listen("watch\nunwatch\n".as_bytes());
        assert_eq!(h, Heard::Closed(BTreeMap::new(), false));
        assert_eq!(listen("arm 401000:55\nbye\n".as_bytes()), Heard::Goodbye);
        assert_eq!(
            listen("arm 1:2 junk zz:1 3:4\n".as_bytes()),
            Heard::Closed(BTreeMap::from([(1, 2), (3, 4)]), false)
        );
        assert_eq!(listen("".as_bytes()), Heard::Closed(BTreeMap::new(), false));
    }
}
