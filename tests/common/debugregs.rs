//! The x86 debug registers of a program goat has left: every watchpoint
//! must be gone from every thread (the kernel keeps DR7 past a tracer's
//! detach or death, and a watchpoint that fires untraced kills the program
//! with SIGTRAP).

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Byte offset of debug register `n` in `struct user`.
fn dr_offset(n: usize) -> usize {
    std::mem::offset_of!(libc::user, u_debugreg) + n * 8
}

/// DR7 of each thread of `pid`, read by seizing it briefly (interrupt,
/// PEEKUSER, detach, handing back any signal caught on the way). Only for
/// a program no one traces any more (goat is gone).
pub fn dr7_of_threads(pid: i32) -> Result<Vec<(i32, u64)>, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("threads of {pid}: {e}"))?;
    let mut out = Vec::new();
    for t in tasks.filter_map(Result::ok) {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let p = Pid::from_raw(tid);
        match ptrace::seize(p, ptrace::Options::empty()) {
            Ok(()) => {}
            Err(Errno::ESRCH) => continue,
            Err(e) => {
                let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                    .unwrap_or_default();
                let tracer = status.lines().find(|l| l.starts_with("TracerPid:"));
                return Err(format!("seize thread {tid}: {e} ({tracer:?})"));
            }
        }
        let _ = ptrace::interrupt(p);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut sig = None;
        loop {
            match waitpid(p, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(WaitStatus::PtraceEvent(..)) => break,
                Ok(WaitStatus::Stopped(_, s)) => {
                    sig = Some(s);
                    break;
                }
                Ok(_) | Err(_) => return Err(format!("thread {tid} ended while read")),
            }
            if Instant::now() > deadline {
                return Err(format!("thread {tid} did not stop"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Errno::clear();
        // SAFETY: PTRACE_PEEKUSER takes an offset, no pointers.
        let v = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, tid, dr_offset(7), 0usize) };
        let failed = v == -1 && Errno::last_raw() != 0;
        let _ = ptrace::detach(p, sig);
        if failed {
            return Err(format!("PEEKUSER DR7 of thread {tid}: {}", Errno::last()));
        }
        out.push((tid, v as u64));
    }
    Ok(out)
}

/// Asserts no thread of `pid` has a debug register enabled.
pub fn assert_no_debug_registers(pid: i32) {
    let regs = dr7_of_threads(pid).unwrap_or_else(|e| panic!("{e}"));
    let set: Vec<_> = regs.iter().filter(|(_, v)| v & 0xff != 0).collect();
    assert!(
        set.is_empty(),
        "debug registers left enabled in pid {pid}: {set:x?}"
    );
}
