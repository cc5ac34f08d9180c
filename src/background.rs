//! goat's CPU-bound threads yield the CPU to the program it looks at.
//!
//! Decoding a million goroutines, or compressing their copy, keeps every
//! CPU busy for seconds while the target runs; at the same priority the
//! target's threads wait their turn, and its heartbeat saw gaps of up to
//! 37 ms beside two busy loops on a 2-CPU machine. Threads doing only such
//! work run at a lower priority, so the target's threads take a CPU as
//! soon as they want one.
//!
//! Only threads that hold nothing the target may wait for: never one that
//! reads the target's memory or changes its page tables (those hold its
//! mmap lock, and a thread of lower priority holding it would keep the
//! target waiting longer, not shorter), and never in a stop.

/// The nice value of such a thread: a share of about a tenth of a CPU
/// against a busy thread at the default priority.
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority (Linux sets it per thread). Failing
/// changes nothing but the priority, so it is ignored.
pub(crate) fn lower_this_thread() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority takes plain integers and touches no memory of
    // ours; `tid` names this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE);
    }
}
