//! Writing the target's data for the session's `set`: through the
//! tracer's `/proc/PID/mem` (the same descriptor breakpoints use), every
//! thread stopped, each write read back.

use super::live::LiveProcess;
use super::ptrace::AttachError;
use super::wire::{protocol_error, Reply, Request};

impl LiveProcess {
    /// Writes `bytes` at `addr` of the (stopped) target.
    pub fn write_memory(&self, addr: u64, bytes: Vec<u8>) -> Result<(), AttachError> {
        match self.request(Request::WriteMemory(addr, bytes))? {
            Reply::Done => Ok(()),
            _ => Err(protocol_error()),
        }
    }
}
