//! Floating-point and extended register state of stopped threads, as the
//! kernel's core dumps hold them (`NT_FPREGSET`, `NT_X86_XSTATE`).

use serde::{Deserialize, Serialize};

use nix::errno::Errno;

use super::live::Stopped;
use super::ptrace::{AttachError, Tracer};
use super::wire::{protocol_error, Reply, Request};

/// Size of `struct user_fpregs_struct` (the FXSAVE area).
pub const FPREGS_SIZE: usize = 512;
/// Room for the largest XSAVE area (AMX tiles included) the kernel hands out.
const XSTATE_MAX: usize = 16 << 10;
const NT_X86_XSTATE: usize = 0x202;

/// One thread's floating-point state, raw as the kernel gives it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FpState {
    pub tid: i32,
    /// `PTRACE_GETFPREGS` (512 bytes), if it could be read.
    pub fpregs: Option<Vec<u8>>,
    /// `PTRACE_GETREGSET` `NT_X86_XSTATE`, as long as the kernel says.
    pub xstate: Option<Vec<u8>>,
}

pub(super) fn getfpregs(tid: i32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; FPREGS_SIZE];
    // SAFETY: PTRACE_GETFPREGS writes exactly sizeof(user_fpregs_struct)
    // (512) bytes to the buffer, which is that long.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETFPREGS,
            tid,
            0usize,
            buf.as_mut_ptr() as *mut libc::c_void,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(buf)
    }
}

pub(super) fn getxstate(tid: i32) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the kernel writes at most iov_len bytes into iov_base (our
    // buffer) and stores the length it wrote back into iov.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE,
            &mut iov as *mut libc::iovec as *mut libc::c_void,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    buf.truncate(iov.iov_len.min(XSTATE_MAX));
    Ok(buf)
}

impl Tracer {
    pub(super) fn read_fp_states(&mut self, tids: Vec<i32>) -> Vec<FpState> {
        tids.into_iter()
            .map(|tid| FpState {
                tid,
                fpregs: getfpregs(tid).ok(),
                xstate: getxstate(tid).ok(),
            })
            .collect()
    }
}

impl Stopped<'_> {
    /// Reads every stopped thread's FXSAVE and XSAVE areas (in the order of
    /// [`Target::threads`](crate::process::Target::threads)). A thread whose state
    /// cannot be read gets `None`s.
    pub fn fp_states(&self) -> Result<Vec<FpState>, AttachError> {
        use crate::process::Target;
        let tids: Vec<i32> = self.threads().iter().map(|t| t.tid).collect();
        match self.process.request(Request::FpStates(tids))? {
            Reply::FpStates(states) => Ok(states),
            _ => Err(protocol_error()),
        }
    }
}

/// `PTRACE_GETSIGMASK`.
pub(super) fn sigmask(tid: i32) -> Result<u64, Errno> {
    let mut mask: u64 = 0;
    // SAFETY: the kernel writes 8 bytes into `mask`, which lives across the call.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGMASK,
            tid,
            std::mem::size_of::<u64>(),
            &mut mask as *mut u64,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(mask)
    }
}

/// `PTRACE_SETSIGMASK` (SIGKILL and SIGSTOP stay deliverable whatever it says).
pub(super) fn set_sigmask(tid: i32, mask: u64) -> Result<(), Errno> {
    // SAFETY: the kernel reads 8 bytes from `mask`, which lives across the call.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETSIGMASK,
            tid,
            std::mem::size_of::<u64>(),
            &mask as *const u64,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
