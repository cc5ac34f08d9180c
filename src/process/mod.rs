//! A process as memory + threads + registers, live or from a core.
//!
//! Everything above this layer is generic over [`Memory`] / [`Target`], so the
//! same goroutine reader works on a stopped live process, a core file and the
//! in-memory [`CapturedMemory`] copied out during a stop.

use serde::{Deserialize, Serialize};

mod captured;
pub mod freed;
mod live_memory;
pub mod mapped;
mod memory;
pub mod preflight;
pub mod procfs;
pub mod readahead;
pub mod regs;
pub mod writetrack;

pub use captured::{temporary_dir, CaptureReader, CapturedMemory};
pub use live_memory::ProcessMemory;
#[cfg(test)]
pub(crate) use memory::Unreadable;
pub use memory::{Memory, MemoryExt, ReadFault};
pub use preflight::{Check, ExeInfo, Report};
pub use procfs::{has_exited, read_mappings};
pub use regs::{Regs, USER_REGS_WORDS};

/// One thread of the target, with the registers it had when stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thread {
    /// The id goat (ptrace, `/proc`) knows the thread by.
    pub tid: i32,
    /// The thread's id in the target's own pid namespace, where it differs
    /// from `tid` (a container seen from the host): what the Go runtime
    /// stores in `m.procid`.
    #[serde(default)]
    pub ns_tid: Option<i32>,
    pub regs: Regs,
}

impl Thread {
    /// The id the Go runtime knows the thread by (`m.procid`).
    pub fn go_tid(&self) -> i32 {
        self.ns_tid.unwrap_or(self.tid)
    }
}

/// One line of `/proc/PID/maps` (or of a core's `NT_FILE` + `PT_LOAD`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub private: bool,
    pub offset: u64,
    /// The mapped file's path, or a pseudo-name like `[heap]`; `None` if anonymous.
    pub path: Option<String>,
}

/// The read-only view every backend gives while its state is frozen.
///
/// A live process implements it only while all threads are stopped; a core
/// file implements it always. Control (resume, write, breakpoints) is a
/// separate interface only the live backend has.
pub trait Target: Memory {
    /// The process id, when there is a process.
    fn pid(&self) -> Option<i32>;
    /// Every thread with the registers it was stopped with.
    fn threads(&self) -> &[Thread];
    /// The address-space layout.
    fn mappings(&self) -> &[Mapping];
}

/// Memory alone as a [`Target`]: no process, no threads, no mappings. What
/// a copy made while the target runs reads through (its running
/// goroutines' stacks are taken in the stop), and what tests and fuzz
/// targets hand the capture.
pub struct Threadless<'a>(pub &'a dyn Memory);

impl Memory for Threadless<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        self.0.read(addr, buf)
    }
    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        self.0.read_batch(reqs)
    }
}

impl Target for Threadless<'_> {
    fn pid(&self) -> Option<i32> {
        None
    }
    fn threads(&self) -> &[Thread] {
        &[]
    }
    fn mappings(&self) -> &[Mapping] {
        &[]
    }
}
