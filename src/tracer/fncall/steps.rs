//! The protocol's stops, one at a time (see `fncall.rs`): injecting a
//! level, setting up an allocation or the user's function at a frame-ready
//! stop, and putting the registers back at a restore stop.

use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;

use super::super::ptrace::{AttachError, State, StopKind, Tracer};
use super::{
    os, protocol, CallState, CallStop, Progress, ALLOC_FRAME, FLOAT_ARG_REGS, FRAME_READY,
    INT_ARG_REGS, MAX_REASON, MAX_STEP_OUT, NT_X86_XSTATE, PANICKED, REFUSED, RESTORE, RETURNED,
    XMM0,
};

impl Tracer {
    /// One stop of the protocol on the call thread (stopped, at an event
    /// stop just after the runtime's int3).
    pub(super) fn on_protocol_stop(&mut self) -> Result<Progress, AttachError> {
        let Some(call) = self.call.as_mut() else {
            return Err(protocol("no call"));
        };
        let code = call.event.take().unwrap_or(u64::MAX);
        let tid = call.plan.tid;
        let p = Pid::from_raw(tid);
        let regs = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        match code {
            FRAME_READY => {
                if call.at_main() {
                    self.set_up_function(&regs)?;
                } else {
                    self.set_up_allocation(&regs)?;
                }
            }
            RETURNED if !call.at_main() => {
                let i = call.addrs.len();
                let block = &call.plan.blocks[i.min(call.plan.blocks.len() - 1)];
                if regs.rax == 0 {
                    return Err(protocol("the runtime allocated nothing"));
                }
                let mut bytes = block.bytes.clone();
                for &(off, w) in &block.words {
                    let v = call.word(w)?.to_le_bytes();
                    let at = usize::try_from(off).ok();
                    match at.and_then(|a| bytes.get_mut(a..a.checked_add(8)?)) {
                        Some(slot) => slot.copy_from_slice(&v),
                        None => return Err(protocol("a block's word lies outside it")),
                    }
                }
                call.write(regs.rax, &bytes)?;
                call.addrs.push(regs.rax);
                // The next call is made from here: the block's address in
                // RAX is saved where the collector sees it (module docs).
                self.inject_level()?;
            }
            RETURNED | PANICKED if call.at_main() && !call.unattended => {
                call.holding = true;
                return Ok(Progress::Report(if code == RETURNED {
                    CallStop::Returned {
                        tid,
                        xmm: xmm_lows(tid),
                    }
                } else {
                    CallStop::Panicked { tid }
                }));
            }
            RETURNED => {}
            PANICKED if !call.at_main() => {
                call.failed = Some("the runtime's allocation panicked".into());
            }
            PANICKED => {}
            REFUSED => {
                let reason = read_reason(call, regs.rsp);
                if call.level() == 0 {
                    call.refused = Some(reason);
                } else {
                    call.failed = Some(format!("a nested call was refused: {reason}"));
                }
            }
            RESTORE => {
                if self.restore_level(&regs)? {
                    return Ok(Progress::Done);
                }
            }
            other => {
                // Delve's choice too: an unknown code is passed over.
                crate::eprintln_quiet!("goat tracer: unknown debug-call code {other:#x} in R12");
            }
        }
        ptrace::cont(p, None).map_err(os("PTRACE_CONT"))?;
        self.threads.insert(tid, State::Running);
        Ok(Progress::Running)
    }

    /// The goroutine came back on thread `to`: a step over the breakpoint
    /// it stood at is now that thread's (else it would hit it again).
    pub(super) fn moved(&mut self, from: i32, to: i32) {
        for entry in self.bps.step_over.iter_mut() {
            if entry.0 == from {
                entry.0 = to;
            }
        }
    }

    /// Pushes the thread's pc and jumps to `debugCallV2`, saving its
    /// registers for the level's restore.
    pub(super) fn inject_level(&mut self) -> Result<(), AttachError> {
        let Some(call) = self.call.as_mut() else {
            return Err(protocol("no call"));
        };
        let p = Pid::from_raw(call.plan.tid);
        let regs = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        let xstate = super::super::regset::getxstate(call.plan.tid).ok();
        let frame = if call.saved.len() < call.plan.blocks.len() {
            ALLOC_FRAME
        } else {
            call.plan.frame_size
        };
        let sp = regs
            .rsp
            .checked_sub(8)
            .ok_or_else(|| protocol("stack pointer near zero"))?;
        let size_at = sp
            .checked_sub(16)
            .ok_or_else(|| protocol("stack pointer near zero"))?;
        call.write(sp, &regs.rip.to_le_bytes())?;
        call.write(size_at, &frame.to_le_bytes())?;
        let mut r = regs;
        r.rsp = sp;
        r.rip = call.plan.debug_call;
        // Not in a syscall now: nothing for the kernel to restart.
        r.orig_rax = u64::MAX;
        ptrace::setregs(p, r).map_err(os("PTRACE_SETREGS"))?;
        call.saved.push((regs, xstate));
        Ok(())
    }

    /// At a frame-ready stop for an allocation: `mallocgc(size, typ,
    /// needzero)` of the next block.
    pub(super) fn set_up_allocation(
        &mut self,
        regs: &libc::user_regs_struct,
    ) -> Result<(), AttachError> {
        let Some(call) = self.call.as_ref() else {
            return Err(protocol("no call"));
        };
        let block = &call.plan.blocks[call.addrs.len().min(call.plan.blocks.len() - 1)];
        let mut r = *regs;
        r.rax = block.bytes.len() as u64;
        r.rbx = block.rtype;
        r.rcx = u64::from(block.rtype != 0);
        let func = call.plan.mallocgc;
        self.jump_to(r, func, &[])
    }

    /// At the frame-ready stop of the user's function: its arguments.
    pub(super) fn set_up_function(
        &mut self,
        regs: &libc::user_regs_struct,
    ) -> Result<(), AttachError> {
        let Some(call) = self.call.as_ref() else {
            return Err(protocol("no call"));
        };
        let mut frame = call.plan.stack.clone();
        for &(off, w) in &call.plan.stack_words {
            let v = call.word(w)?.to_le_bytes();
            let at = usize::try_from(off).ok();
            match at.and_then(|a| frame.get_mut(a..a.checked_add(8)?)) {
                Some(slot) => slot.copy_from_slice(&v),
                None => return Err(protocol("a block's word lies outside the frame")),
            }
        }
        call.write(regs.rsp, &frame)?;
        let mut r = *regs;
        let ints: Vec<u64> = call
            .plan
            .int_regs
            .iter()
            .map(|&w| call.word(w))
            .collect::<Result<_, _>>()?;
        if ints.len() > INT_ARG_REGS || call.plan.float_regs.len() > FLOAT_ARG_REGS {
            return Err(protocol("more register arguments than the ABI has"));
        }
        let slots = [
            &mut r.rax, &mut r.rbx, &mut r.rcx, &mut r.rdi, &mut r.rsi, &mut r.r8, &mut r.r9,
            &mut r.r10, &mut r.r11,
        ];
        for (slot, v) in slots.into_iter().zip(ints) {
            *slot = v;
        }
        let floats = call.plan.float_regs.clone();
        let func = call.plan.func;
        self.jump_to(r, func, &floats)
    }

    /// Makes the call thread call `func` from the frame-ready stop with
    /// registers `r`: R14 the running `g` and X15 zero (the register ABI's
    /// fixed registers), the floating-point arguments, the return address
    /// pushed (the runtime's own next instruction).
    pub(super) fn jump_to(
        &mut self,
        mut r: libc::user_regs_struct,
        func: u64,
        floats: &[u64],
    ) -> Result<(), AttachError> {
        let Some(call) = self.call.as_ref() else {
            return Err(protocol("no call"));
        };
        let tid = call.plan.tid;
        if let Some(g) = current_g(call, &r) {
            r.r14 = g;
        }
        let mut fp = getfpregs(tid).map_err(os("PTRACE_GETFPREGS"))?;
        for i in 0..16 {
            let v = if i < floats.len() { floats[i] } else { 0 };
            // Unused argument registers keep their value, except X15.
            if i < floats.len() || i == 15 {
                let at = XMM0 + 16 * i;
                fp[at..at + 8].copy_from_slice(&v.to_le_bytes());
                fp[at + 8..at + 16].fill(0);
            }
        }
        setfpregs(tid, &fp).map_err(os("PTRACE_SETFPREGS"))?;
        let sp = r
            .rsp
            .checked_sub(8)
            .ok_or_else(|| protocol("stack pointer near zero"))?;
        call.write(sp, &r.rip.to_le_bytes())?;
        r.rsp = sp;
        r.rip = func;
        ptrace::setregs(Pid::from_raw(tid), r).map_err(os("PTRACE_SETREGS"))
    }

    /// At a restore stop: puts back the registers saved when this level
    /// was injected. Returns whether that was the first level (the call is
    /// over). Where the stack is where it was, which it is unless the
    /// runtime moved it, every register is put back, pc and SP included,
    /// which is what the rest of `debugCallV2` (reload the registers it
    /// saved, return to the pushed pc) would do; otherwise the runtime's
    /// way: all but pc and SP, then single steps until it has returned.
    pub(super) fn restore_level(
        &mut self,
        regs: &libc::user_regs_struct,
    ) -> Result<bool, AttachError> {
        let Some(call) = self.call.as_mut() else {
            return Err(protocol("no call"));
        };
        let tid = call.plan.tid;
        let p = Pid::from_raw(tid);
        let Some((saved, xstate)) = call.saved.pop() else {
            return Err(protocol("a restore with nothing saved"));
        };
        let last = call.saved.is_empty();
        let unmoved = saved.rsp.checked_sub(8).is_some_and(|slot| {
            call.read_u64(slot).ok() == Some(saved.rip)
                && regs.rsp < saved.rsp
                && saved.rsp - regs.rsp <= 4096
        });
        if let Some(x) = &xstate {
            let _ = setxstate(tid, x);
        }
        // The goroutine may have come back on another thread: that thread
        // keeps its own TLS base and segment registers.
        let mut saved = saved;
        saved.fs_base = regs.fs_base;
        saved.gs_base = regs.gs_base;
        saved.fs = regs.fs;
        saved.gs = regs.gs;
        saved.cs = regs.cs;
        saved.ss = regs.ss;
        saved.ds = regs.ds;
        saved.es = regs.es;
        if unmoved {
            ptrace::setregs(p, saved).map_err(os("PTRACE_SETREGS (restore)"))?;
            return Ok(last);
        }
        let mut r = saved;
        r.rip = regs.rip;
        r.rsp = regs.rsp;
        ptrace::setregs(p, r).map_err(os("PTRACE_SETREGS (restore)"))?;
        for _ in 0..MAX_STEP_OUT {
            self.single_step(tid, None);
            match ptrace::getregs(p) {
                Ok(now) if now.rip == saved.rip => {
                    let mut fixed = now;
                    fixed.eflags = saved.eflags;
                    ptrace::setregs(p, fixed).map_err(os("PTRACE_SETREGS (flags)"))?;
                    return Ok(last);
                }
                Ok(_) if self.threads.get(&tid) == Some(&State::Stopped(StopKind::Event)) => {}
                _ => break,
            }
        }
        Err(protocol("the thread did not return from debugCallV2"))
    }
}

/// The `g` running on a thread with registers `regs`: from its TLS slot,
/// else R14 (the register ABI keeps it there).
pub(super) fn current_g(call: &CallState, regs: &libc::user_regs_struct) -> Option<u64> {
    let tls = (regs.fs_base != 0)
        .then(|| regs.fs_base.checked_add_signed(call.plan.g_tls_offset))
        .flatten()
        .and_then(|at| call.read_u64(at).ok())
        .filter(|&g| g != 0);
    tls.or((regs.r14 != 0).then_some(regs.r14))
}

/// The runtime's reason for refusing, a Go string at SP.
fn read_reason(call: &CallState, sp: u64) -> String {
    let text = (|| {
        let ptr = call.read_u64(sp).ok()?;
        let len = call.read_u64(sp.checked_add(8)?).ok()?.min(MAX_REASON);
        let mut b = vec![0u8; len as usize];
        call.mem.read_exact_at(&mut b, ptr).ok()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    })();
    text.unwrap_or_else(|| "(its reason could not be read)".into())
}

/// The low 8 bytes of X0–X14 of a stopped thread (empty if unreadable).
fn xmm_lows(tid: i32) -> Vec<u64> {
    let Ok(fp) = getfpregs(tid) else {
        return Vec::new();
    };
    (0..FLOAT_ARG_REGS)
        .map(|i| {
            let at = XMM0 + 16 * i;
            u64::from_le_bytes(fp[at..at + 8].try_into().unwrap_or([0; 8]))
        })
        .collect()
}

fn getfpregs(tid: i32) -> Result<Vec<u8>, Errno> {
    super::super::regset::getfpregs(tid)
}

/// Puts back the extended state `PTRACE_GETREGSET` gave (`NT_X86_XSTATE`).
fn setxstate(tid: i32, buf: &[u8]) -> Result<(), Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the kernel reads at most iov_len bytes from iov_base (our
    // buffer, which is that long) and writes nothing to it.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            tid,
            NT_X86_XSTATE,
            &mut iov as *mut libc::iovec as *mut libc::c_void,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn setfpregs(tid: i32, buf: &[u8]) -> Result<(), Errno> {
    if buf.len() < super::super::regset::FPREGS_SIZE {
        return Err(Errno::EINVAL);
    }
    // SAFETY: PTRACE_SETFPREGS reads sizeof(user_fpregs_struct) (512)
    // bytes from the buffer, which is at least that long.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETFPREGS,
            tid,
            0usize,
            buf.as_ptr() as *mut libc::c_void,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
