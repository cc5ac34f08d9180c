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
//! detaches as usual; a call whose function does not return is left to
//! run on unattended, with only the threads its end needs traced
//! (`fncall/pending.rs`). User breakpoints are not armed while a call runs:
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

mod pending;
mod steps;
use steps::current_g;

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
    /// The session's run command the call is part of (see `RunPlan`): a
    /// Ctrl-C for it leaves the call under way and returns
    /// [`CallStop::Interrupted`].
    #[serde(default)]
    pub command: u64,
    /// The runtime locks the called goroutine to the call's thread (every
    /// release since Go 1.21: `debugCallWrap` calls `lockOSThread`), so
    /// every later stop of the protocol comes on that thread; a call let
    /// go of needs only it traced (`pending.rs`).
    #[serde(default)]
    pub callee_locked: bool,
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
    /// Ctrl-C while the function ran: the call goes on in the program,
    /// unattended (`pending.rs`), and every thread is stopped.
    Interrupted,
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
    /// Only the call's thread is traced now (`pending.rs`).
    pub(super) narrowed: bool,
}

pub(super) enum Progress {
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
            narrowed: false,
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
        signals::set_calling(true);
        if let Err(e) = self.inject_level() {
            self.call = None;
            signals::set_calling(false);
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
        let returned = std::mem::take(&mut c.holding);
        // At its results the function has returned: the rest is quick.
        if !returned {
            self.narrow_to_call();
        }
        self.resume_all();
        if let Err(e) = self.drive() {
            crate::eprintln_quiet!("goat tracer: finishing a function call: {e}");
        }
        self.call = None;
        signals::set_calling(false);
    }

    /// Runs the target, handling the call's protocol stops, until one to
    /// report; then stops every thread.
    fn drive(&mut self) -> Result<(CallStop, Vec<Thread>), AttachError> {
        let result = self.drive_to_stop();
        // Still under way only when held at its results.
        signals::set_calling(self.call.is_some());
        result
    }

    fn drive_to_stop(&mut self) -> Result<(CallStop, Vec<Thread>), AttachError> {
        let command = self.call.as_ref().map_or(0, |c| c.plan.command);
        signals::set_running(true, command);
        let result = self.drive_running(command);
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

    fn drive_running(&mut self, command: u64) -> Result<CallStop, AttachError> {
        loop {
            // Ended unattended, as any event may end it (pending.rs).
            let Some(tid) = self.call.as_ref().map(|c| c.plan.tid) else {
                return Ok(CallStop::Finished);
            };
            if signals::take_abort() && self.call.as_ref().is_some_and(|c| !c.unattended) {
                // goat is gone: the call runs on unattended, with as few
                // threads traced as its end needs (pending.rs).
                if let Some(c) = self.call.as_mut() {
                    c.unattended = true;
                }
                self.narrow_to_call();
                self.resume_all();
                continue;
            }
            let attended = self.call.as_ref().is_some_and(|c| !c.unattended);
            if attended && signals::interrupted(command) {
                // The user leaves the call to run on (pending.rs).
                if let Some(c) = self.call.as_mut() {
                    c.unattended = true;
                }
                return Ok(CallStop::Interrupted);
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
        if stop == CallStop::Interrupted {
            process.let_tracer_linger();
        }
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
