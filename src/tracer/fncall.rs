//! Function calls in a live target (`call`), through the Go runtime's own
//! debugger-call protocol: `runtime.debugCallV2` (runtime/asm_amd64.s,
//! runtime/debugcall.go; the same in every release goat supports).
//!
//! The protocol, as the runtime states it: with the goroutine running on a
//! stopped thread, push its pc (as a CALL would), write the argument frame
//! size at SP-16, save every register and jump to `debugCallV2`. The
//! runtime checks the caller (`debugCallCheck`), starts a goroutine of its
//! own locked to this thread, and talks back through int3s in its own text
//! with a code in R12: 8 refused (the reason string at SP), 0 a frame of
//! the size asked for is ready at SP (set the arguments, push the pc, jump
//! to the function), 1 it returned (results in registers and at SP), 2 it
//! panicked (the `interface{}` value at SP), 16 restore the registers and
//! go on. The stops up to the function's start are on the thread the call
//! started on; later ones may come on another: Go 1.19 locks the callee's
//! goroutine to that thread only if the caller was locked, and the caller
//! may resume on any thread (later releases lock both).
//!
//! A string or boxed value goat builds is placed in memory the runtime's
//! own allocator gives (`runtime.mallocgc`, called through the same
//! protocol, as Delve does). To keep that block alive until the function
//! holds it, the next call is made *from* the allocation's return stop
//! (the runtime allows calls from its `debugCallNNN` frames for this):
//! the nested `debugCallV2` saves the registers, the block's address in
//! RAX among them, in a frame the garbage collector scans conservatively.
//!
//! The call is driven here, by the tracer, so that goat's death cannot
//! leave it half made: a goat that goes away mid-call (end of the tracer's
//! stdin, see remote.rs) only makes the call run on, unattended, to its
//! end, where the thread's registers are put back; then the tracer
//! detaches as usual. User breakpoints are not armed while a call runs:
//! other goroutines run freely and cannot stop it halfway. A tracer that
//! is itself killed mid-call leaves the thread to the runtime's int3s,
//! which the program does not survive (no guardian can take them out: they
//! are the runtime's own code).

use std::fs::File;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::live::Stopped;
use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::signals;
use super::wire::{protocol_error, Reply, Request};
use crate::process::{procfs, Thread};

/// `si_code` of a SIGTRAP raised by an int3 instruction.
const SI_KERNEL: i32 = 0x80;
/// The runtime's R12 codes.
const FRAME_READY: u64 = 0;
const RETURNED: u64 = 1;
const PANICKED: u64 = 2;
const REFUSED: u64 = 8;
const RESTORE: u64 = 16;
/// Free stack `debugCallV2` needs below the goroutine's stack pointer.
const MIN_FREE_STACK: u64 = 256;
/// Frame asked for an allocation: `mallocgc`'s three register arguments'
/// spill space and more.
const ALLOC_FRAME: u64 = 64;
/// The largest frame the runtime provides (`debugCall65536`).
pub const MAX_FRAME: u64 = 65536;
/// Longest refusal reason read (the runtime's are a few words).
const MAX_REASON: u64 = 256;
/// Instructions single-stepped out of `debugCallV2` when its stack moved.
const MAX_STEP_OUT: usize = 64;
/// Integer argument registers of Go's register ABI, in order.
pub const INT_ARG_REGS: usize = 9;
/// Floating-point argument registers (X0–X14).
pub const FLOAT_ARG_REGS: usize = 15;
/// Offset of XMM0 in the FXSAVE area `PTRACE_GETFPREGS` gives.
const XMM0: usize = 160;
const NT_X86_XSTATE: usize = 0x202;

/// A word goat wants written: a number, or the address of the `n`th
/// [`Block`] once the runtime has allocated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Word {
    Lit(u64),
    Block(usize),
}

/// Bytes goat places in the target before the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Block {
    pub bytes: Vec<u8>,
    /// Words of `bytes` that are an earlier block's address.
    pub words: Vec<(u64, Word)>,
    /// Run-time address of the runtime type of a value that holds
    /// pointers (the allocation is then scanned), 0 for plain bytes.
    pub rtype: u64,
}

/// One call, as goat has marshalled it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallPlan {
    /// The thread the goroutine runs on.
    pub tid: i32,
    /// Run-time addresses of `runtime.debugCallV2` and `runtime.mallocgc`.
    pub debug_call: u64,
    pub mallocgc: u64,
    /// Run-time `[start, end)` of the runtime functions whose int3s are
    /// the protocol's (`debugCallV2`, `debugCall32`…, `debugCallPanicked`).
    pub protocol: Vec<(u64, u64)>,
    /// Where a thread keeps its `g` (see `RunPlan`).
    pub g_tls_offset: i64,
    pub blocks: Vec<Block>,
    /// Run-time entry of the function called.
    pub func: u64,
    /// The argument frame asked of the runtime (at most [`MAX_FRAME`]).
    pub frame_size: u64,
    /// RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11, as far as used.
    pub int_regs: Vec<Word>,
    /// The low 8 bytes of X0, X1, … as far as used.
    pub float_regs: Vec<u64>,
    /// The stack-assigned arguments, written at SP.
    pub stack: Vec<u8>,
    /// Words of `stack` that are a block's address.
    pub stack_words: Vec<(u64, Word)>,
}

/// Where a call stands when the tracer answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallStop {
    /// The function returned; every thread is stopped with the results in
    /// place: the call thread's registers, `xmm` (the low 8 bytes of X0–
    /// X14) and its frame at SP. [`Stopped::finish_call`] ends the call.
    Returned { tid: i32, xmm: Vec<u64> },
    /// It panicked: the `interface{}` panic value is at the thread's SP.
    /// [`Stopped::finish_call`] ends the call.
    Panicked { tid: i32 },
    /// The runtime refused the call (its reason); nothing was called and
    /// the thread is as it was.
    Refused(String),
    /// The call is over and the thread as it was.
    Finished,
}

/// A call under way.
pub(super) struct CallState {
    plan: CallPlan,
    /// The thread the call started on (`plan.tid` follows the callee).
    start_tid: i32,
    mem: File,
    /// Registers and extended state at each nested injection.
    saved: Vec<(libc::user_regs_struct, Option<Vec<u8>>)>,
    /// Where the runtime placed each block so far.
    addrs: Vec<u64>,
    /// R12 of a protocol stop not handled yet.
    event: Option<u64>,
    refused: Option<String>,
    failed: Option<String>,
    /// goat went away: no stop at the results, on to the end.
    unattended: bool,
    /// Stopped at the results, waiting for goat.
    holding: bool,
}

enum Progress {
    Running,
    Report(CallStop),
    Done,
}

fn os(op: &'static str) -> impl Fn(Errno) -> AttachError {
    move |errno| AttachError::os(op, errno)
}

fn protocol(detail: impl Into<String>) -> AttachError {
    AttachError::CallProtocol {
        detail: detail.into(),
    }
}

impl CallState {
    fn read_u64(&self, addr: u64) -> Result<u64, AttachError> {
        let mut b = [0u8; 8];
        self.mem
            .read_exact_at(&mut b, addr)
            .map_err(|e| AttachError::io("reading the target's memory", &e))?;
        Ok(u64::from_le_bytes(b))
    }

    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), AttachError> {
        self.mem
            .write_all_at(bytes, addr)
            .map_err(|e| AttachError::io("writing the target's memory", &e))
    }

    fn word(&self, w: Word) -> Result<u64, AttachError> {
        match w {
            Word::Lit(v) => Ok(v),
            Word::Block(i) => self
                .addrs
                .get(i)
                .copied()
                .ok_or_else(|| protocol(format!("no block {i}"))),
        }
    }

    /// The nesting level (0: the first injection).
    fn level(&self) -> usize {
        self.saved.len().saturating_sub(1)
    }

    /// Whether the current level runs the user's function (the levels
    /// before it allocate the blocks).
    fn at_main(&self) -> bool {
        self.level() >= self.plan.blocks.len()
    }
}

impl Tracer {
    /// Handles a SIGTRAP signal-delivery-stop of the call thread at one of
    /// the protocol's int3s: records the code and turns the stop into a
    /// signal-less event stop (as a breakpoint's). False for other traps.
    pub(super) fn call_trap(&mut self, tid: i32) -> bool {
        // Any thread: the callee's goroutine may move to another thread
        // (Go 1.19 locks it to the first only if the caller was locked).
        let Some(call) = self.call.as_ref() else {
            return false;
        };
        let p = Pid::from_raw(tid);
        let Ok(regs) = ptrace::getregs(p) else {
            return false;
        };
        let at = regs.rip.wrapping_sub(1);
        if !call.plan.protocol.iter().any(|&(b, e)| b <= at && at < e) {
            return false;
        }
        let mut byte = [0u8];
        if call.mem.read_exact_at(&mut byte, at).is_err() || byte[0] != 0xcc {
            return false;
        }
        if ptrace::getsiginfo(p).is_ok_and(|i| i.si_code != SI_KERNEL) {
            return false;
        }
        if let Some(c) = self.call.as_mut() {
            c.event = Some(regs.r12);
            c.plan.tid = tid;
        }
        let _ = ptrace::interrupt(p);
        let _ = ptrace::cont(p, None);
        self.threads.insert(tid, State::Running);
        self.bps.pending_trap.insert(tid, regs.rip);
        true
    }

    /// Starts the call of `plan` (every thread stopped) and runs the
    /// target until the function returns or panics, the runtime refuses,
    /// or the call is over; every thread is stopped again on return.
    pub(super) fn call_start(
        &mut self,
        plan: CallPlan,
    ) -> Result<(CallStop, Vec<Thread>), AttachError> {
        if self.detached {
            return Err(self.gone());
        }
        if self.call.is_some() {
            return Err(protocol("another call is in progress"));
        }
        let tid = plan.tid;
        let refuse = |why: &'static str| AttachError::CallThread {
            tid,
            why: why.into(),
        };
        if self.threads.get(&tid) != Some(&State::Stopped(StopKind::Event)) {
            return Err(refuse(
                "it is not in a plain stop (a signal is being delivered to it)",
            ));
        }
        if plan.frame_size > MAX_FRAME || plan.stack.len() as u64 > plan.frame_size {
            return Err(protocol("the argument frame is larger than the runtime's"));
        }
        let mem = procfs::open_mem(self.pid, true)
            .map_err(|e| AttachError::io("open /proc/PID/mem", &e))?;
        let regs = ptrace::getregs(Pid::from_raw(tid)).map_err(os("PTRACE_GETREGS"))?;
        let call = CallState {
            start_tid: plan.tid,
            plan,
            mem,
            saved: Vec::new(),
            addrs: Vec::new(),
            event: None,
            refused: None,
            failed: None,
            unattended: false,
            holding: false,
        };
        // debugCallV2's own precondition: room on the goroutine's stack.
        let g = current_g(&call, &regs);
        let bounds = g.and_then(|g| Some((call.read_u64(g).ok()?, call.read_u64(g + 8).ok()?)));
        match bounds {
            Some((lo, hi)) if lo < regs.rsp && regs.rsp <= hi => {
                if regs.rsp - lo < MIN_FREE_STACK {
                    return Err(refuse(
                        "its goroutine has less than 256 bytes of stack free",
                    ));
                }
            }
            _ => return Err(refuse("it is not on its goroutine's stack")),
        }
        self.call = Some(Box::new(call));
        if let Err(e) = self.inject_level() {
            self.call = None;
            return Err(e);
        }
        self.resume_all();
        self.drive()
    }

    /// Goes on from the results of a call to its end.
    pub(super) fn call_finish(&mut self) -> Result<(CallStop, Vec<Thread>), AttachError> {
        let tid = match self.call.as_mut() {
            Some(c) if c.holding => {
                c.holding = false;
                c.plan.tid
            }
            _ => return Err(protocol("no call is waiting at its results")),
        };
        self.resume_all();
        if self.threads.get(&tid) != Some(&State::Running) {
            return Err(protocol("the call thread did not resume"));
        }
        self.drive()
    }

    /// A call goat no longer attends (it went away, or asks for something
    /// else): runs it to its end.
    pub(super) fn call_abandon(&mut self) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.unattended = true;
        if c.holding {
            c.holding = false;
        }
        self.resume_all();
        if let Err(e) = self.drive() {
            eprintln!("goat tracer: finishing a function call: {e}");
        }
        self.call = None;
    }

    /// Runs the target, handling the call's protocol stops, until one to
    /// report; then stops every thread.
    fn drive(&mut self) -> Result<(CallStop, Vec<Thread>), AttachError> {
        signals::set_running(true, 0);
        let result = self.drive_running();
        signals::set_running(false, 0);
        let stop = match result {
            Ok(s) => s,
            Err(e) => {
                self.call = None;
                return Err(e);
            }
        };
        if matches!(stop, CallStop::Refused(_) | CallStop::Finished) {
            let call = self.call.take();
            if let Some(c) = &call {
                self.moved(c.start_tid, c.plan.tid);
            }
            let failed = call.and_then(|c| c.failed);
            if let Some(f) = failed {
                self.stop_all()?;
                return Err(protocol(f));
            }
        }
        self.stop_all()?;
        Ok((stop, self.read_threads()?))
    }

    fn drive_running(&mut self) -> Result<CallStop, AttachError> {
        loop {
            let tid = self.call.as_ref().map(|c| c.plan.tid).unwrap_or(0);
            if signals::take_abort() {
                if let Some(c) = self.call.as_mut() {
                    c.unattended = true;
                }
            }
            let ready = self.call.as_ref().is_some_and(|c| c.event.is_some())
                && self.threads.get(&tid) == Some(&State::Stopped(StopKind::Event));
            if ready {
                match self.on_protocol_stop()? {
                    Progress::Running => {}
                    Progress::Report(stop) => return Ok(stop),
                    Progress::Done => {
                        let refused = self.call.as_ref().and_then(|c| c.refused.clone());
                        return Ok(refused.map_or(CallStop::Finished, CallStop::Refused));
                    }
                }
                continue;
            }
            // Blocks until a tracee changes state (a SIGTERM or goat's end
            // wakes it through the run thread, see signals.rs).
            match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(ws) => self.on_event(ws, false),
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => self.threads.clear(),
                Err(errno) => return Err(AttachError::os("waitpid", errno)),
            }
            if self.threads.is_empty() {
                return Err(self.gone());
            }
        }
    }

    /// One stop of the protocol on the call thread (stopped, at an event
    /// stop just after the runtime's int3).
    fn on_protocol_stop(&mut self) -> Result<Progress, AttachError> {
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
                eprintln!("goat tracer: unknown debug-call code {other:#x} in R12");
            }
        }
        ptrace::cont(p, None).map_err(os("PTRACE_CONT"))?;
        self.threads.insert(tid, State::Running);
        Ok(Progress::Running)
    }

    /// The goroutine came back on thread `to`: a step over the breakpoint
    /// it stood at is now that thread's (else it would hit it again).
    fn moved(&mut self, from: i32, to: i32) {
        for entry in self.bps.step_over.iter_mut() {
            if entry.0 == from {
                entry.0 = to;
            }
        }
    }

    /// Pushes the thread's pc and jumps to `debugCallV2`, saving its
    /// registers for the level's restore.
    fn inject_level(&mut self) -> Result<(), AttachError> {
        let Some(call) = self.call.as_mut() else {
            return Err(protocol("no call"));
        };
        let p = Pid::from_raw(call.plan.tid);
        let regs = ptrace::getregs(p).map_err(os("PTRACE_GETREGS"))?;
        let xstate = super::regset::getxstate(call.plan.tid).ok();
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
    fn set_up_allocation(&mut self, regs: &libc::user_regs_struct) -> Result<(), AttachError> {
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
    fn set_up_function(&mut self, regs: &libc::user_regs_struct) -> Result<(), AttachError> {
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
    fn jump_to(
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
    fn restore_level(&mut self, regs: &libc::user_regs_struct) -> Result<bool, AttachError> {
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
fn current_g(call: &CallState, regs: &libc::user_regs_struct) -> Option<u64> {
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
    super::regset::getfpregs(tid)
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
    if buf.len() < super::regset::FPREGS_SIZE {
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

/// What goat's side of a stop with a call under way can do.
impl<'a> Stopped<'a> {
    /// Starts a call (see the module docs); returns the new stop and where
    /// the call stands. On error the target is left running, with the
    /// thread as it was.
    pub fn call(mut self, plan: CallPlan) -> Result<(Stopped<'a>, CallStop), AttachError> {
        self.resumed = true;
        let process = self.process;
        let Reply::CallStopped(stop, threads) = process.request(Request::CallStart(plan))? else {
            return Err(protocol_error());
        };
        Ok((Stopped::new(process, threads), stop))
    }

    /// Ends a call stopped at its results: the thread as it was.
    pub fn finish_call(mut self) -> Result<Stopped<'a>, AttachError> {
        self.resumed = true;
        let process = self.process;
        let Reply::CallStopped(_, threads) = process.request(Request::CallFinish)? else {
            return Err(protocol_error());
        };
        Ok(Stopped::new(process, threads))
    }
}
