//! Running the target under breakpoints: continue until a breakpoint that
//! counts is hit, Ctrl-C, or goat is told to quit.
//!
//! A breakpoint's SIGTRAP is never left pending: the thread's rip is
//! rewound to the breakpoint (PTRACE_SETREGS), and the signal-delivery-stop
//! is turned into a signal-less PTRACE_EVENT_STOP (PTRACE_INTERRUPT, then
//! PTRACE_CONT with no signal: the kernel takes the queued trap-stop before
//! the thread runs any user code, and the SIGTRAP is discarded). A thread
//! that hits while the others are being stopped is rewound and not
//! reported: it hits again on the next continue. Only the reported thread
//! is stepped over on resume, alone, with the original byte in place.

use serde::{Deserialize, Serialize};

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::breakpoints::{TempAction, TempBreakpoint};
use super::hwbreak::WatchHit;
use super::inject::wait_one;
use super::live::Stopped;
use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::signals;
use super::wire::{protocol_error, Reply, Request};
use crate::process::{Regs, Thread};

/// `si_code` of a SIGTRAP raised by an int3 instruction.
const SI_KERNEL: i32 = 0x80;
/// How long a single-step over a breakpoint may take (one instruction).
const STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Single-steps tried before giving up on a thread that keeps being
/// stopped by signals (each held-back signal costs one).
const MAX_STEP_ATTEMPTS: usize = 8;
/// Events handled after the first hit before the stop starts (a storm of
/// events must not delay the stop without end).
const DRAIN_AFTER_HIT: usize = 64;

/// What a continue or step needs from the session besides the user
/// breakpoints: the temporary ones, and where a thread keeps its `g`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunPlan {
    pub temps: Vec<TempBreakpoint>,
    /// Offset of the current `g` pointer from the thread's fs_base (TLS),
    /// `-8` for internally linked Go binaries. R14 holds `g` in Go's
    /// ABIInternal code and is the fallback.
    pub g_tls_offset: i64,
    /// The session's run command this run is part of
    /// ([`RunCommand::id`](super::signals::RunCommand::id)): a Ctrl-C for
    /// it stops the run, even one that came before the run started. 0: a
    /// run outside any command, which Ctrl-C does not stop (every run of a
    /// session has a number).
    #[serde(default)]
    pub command: u64,
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// `tid` hit the breakpoint at `addr`: the user breakpoint there, if
    /// any, and whether a temporary one's condition held.
    Breakpoint {
        tid: i32,
        addr: u64,
        user: Option<u32>,
        temp: bool,
        /// How long the program ran (every thread resumed) before the hit:
        /// the rest of the run it was stopped, which goat's cap on the
        /// slowdown of false conditions counts (`repl/slowdown.rs`).
        #[serde(default)]
        ran: Duration,
    },
    /// `tid`, of goroutine `g`, hit the [`TempAction::EnterCall`]
    /// breakpoint at `call` and was single-stepped through the call: it
    /// stands at `entry`, the callee's first instruction. The session
    /// decides where the step goes on (nothing was counted as a stop).
    CallEntered {
        tid: i32,
        call: u64,
        entry: u64,
        g: u64,
    },
    /// A watchpoint fired (`hwbreak.rs`): the thread stands after the
    /// access.
    Watchpoint(WatchHit),
    /// The program exec'd `path` (`execd.rs`): the image goat knew is
    /// gone; every later request but a resume fails.
    Exec { path: std::path::PathBuf },
    /// Ctrl-C.
    Interrupted,
    /// goat is being terminated (SIGTERM/SIGHUP): it detaches next.
    Aborted,
}

enum Woke {
    Hits,
    Execd,
    Interrupted,
    Aborted,
}

impl Tracer {
    /// Handles a SIGTRAP signal-delivery-stop if it is one of our int3s:
    /// rewinds the thread and turns the stop into a PTRACE_EVENT_STOP.
    /// Returns false for any other SIGTRAP (the program's: passed on).
    pub(super) fn breakpoint_trap(&mut self, tid: i32) -> bool {
        let p = Pid::from_raw(tid);
        let Ok(mut regs) = ptrace::getregs(p) else {
            return false;
        };
        let addr = regs.rip.wrapping_sub(1);
        if !self.bps.is_armed(addr) {
            return false;
        }
        if let Ok(info) = ptrace::getsiginfo(p) {
            if info.si_code != SI_KERNEL {
                return false;
            }
        }
        regs.rip = addr;
        if ptrace::setregs(p, regs).is_err() {
            return false;
        }
        let _ = ptrace::interrupt(p);
        let _ = ptrace::cont(p, None);
        self.threads.insert(tid, State::Running);
        self.bps.pending_trap.insert(tid, addr);
        if self.bps.collecting {
            self.bps.hits.push((tid, addr));
        }
        true
    }

    /// The PTRACE_EVENT_STOP that follows a rewound trap: the thread stays
    /// stopped whatever phase we are in. Returns false for other stops.
    pub(super) fn trap_stopped(&mut self, tid: i32) -> bool {
        let Some(addr) = self.bps.pending_trap.remove(&tid) else {
            return false;
        };
        self.threads.insert(tid, State::Stopped(StopKind::Event));
        // The trap-stop is taken before any user instruction: still there.
        if let Ok(r) = ptrace::getregs(Pid::from_raw(tid)) {
            if r.rip != addr {
                crate::eprintln_quiet!(
                    "goat: thread {tid} moved from the breakpoint at {addr:#x} to {:#x} \
                     before its stop",
                    r.rip
                );
            }
        }
        true
    }

    /// Continues every thread until a breakpoint that counts is hit, then
    /// stops them all. Every int3 is out of the target again on return.
    /// [`Tracer::run`], then the registers of the stopped threads.
    pub(super) fn run_and_read(
        &mut self,
        plan: RunPlan,
    ) -> Result<(StopReason, Vec<Thread>), AttachError> {
        let reason = self.run(plan)?;
        match self.read_threads() {
            Ok(threads) => Ok((reason, threads)),
            Err(e) => {
                self.resume_all();
                Err(e)
            }
        }
    }

    pub(super) fn run(&mut self, plan: RunPlan) -> Result<StopReason, AttachError> {
        if self.detached {
            return Err(self.gone());
        }
        self.bps.set_temps(self.pid, plan.temps)?;
        let result = self.run_until_stop(plan.g_tls_offset, plan.command);
        self.bps.clear_temps();
        result
    }

    fn run_until_stop(
        &mut self,
        g_tls_offset: i64,
        command: u64,
    ) -> Result<StopReason, AttachError> {
        let pid = self.pid;
        signals::set_running(true, command);
        let _running = scopeguard(|| signals::set_running(false, 0));
        let mut ran = Duration::ZERO;
        loop {
            // Every thread is stopped here: a Ctrl-C that came before the
            // run (or between two of its rounds) ends it at once.
            if signals::interrupted(command) {
                return Ok(StopReason::Interrupted);
            }
            // Watchpoints first: a write made by a stepped-over
            // instruction is a hit too.
            self.arm_debug_registers()?;
            self.step_over_reported();
            if let Err(e) = self.bps.arm(pid) {
                self.disarm_debug_registers();
                return Err(e);
            }
            self.bps.hits.clear();
            self.bps.collecting = true;
            self.resume_all();
            let resumed = Instant::now();
            let woke = self.wait_running(command);
            ran += resumed.elapsed();
            self.bps.collecting = false;
            // The int3s stay in until every thread is stopped: a thread
            // that runs on meanwhile (a goroutine woken from a sleep, the
            // stepping one among them) must not pass a breakpoint unseen.
            // One that traps now is rewound like any other (within
            // microseconds: the guardian covers the tracer's death in
            // between, as during the run) and hits again on the next
            // continue, so no hit is lost and no step ends late.
            widen_stop_window_for_tests();
            let stopped = self.stop_all();
            self.bps.disarm(pid);
            if stopped.is_ok() {
                self.take_pending_traps();
                self.disarm_debug_registers();
            }
            if let Err(e) = stopped {
                self.resume_all();
                return Err(e);
            }
            let hits = std::mem::take(&mut self.bps.hits);
            match woke? {
                Woke::Execd => {
                    let path = self.execd.clone().unwrap_or_default();
                    return Ok(StopReason::Exec { path });
                }
                Woke::Interrupted => return Ok(StopReason::Interrupted),
                Woke::Aborted => return Ok(StopReason::Aborted),
                Woke::Hits => {}
            }
            // A write is not repeated: it is reported first (threads at an
            // int3 were rewound and hit it again on the next continue).
            if let Some(hit) = self.take_watch_hit() {
                return Ok(StopReason::Watchpoint(hit));
            }
            for &(tid, addr) in &hits {
                let user = self.bps.user_at(addr).map(|b| b.id);
                let matched = self.temp_match(tid, addr, g_tls_offset);
                if let (None, Some(t)) = (user, matched) {
                    if let TempAction::EnterCall { next } = t.action {
                        let Some(entry) = self.enter_call(tid, addr, next) else {
                            // The CALL faulted (its handler runs now) or the
                            // thread did not move: nothing entered; a thread
                            // back at the CALL hits it again.
                            continue;
                        };
                        return Ok(StopReason::CallEntered {
                            tid,
                            call: addr,
                            entry,
                            g: t.g,
                        });
                    }
                }
                let temp = matched.is_some();
                if user.is_some() || temp {
                    self.bps.step_over = vec![(tid, addr)];
                    return Ok(StopReason::Breakpoint {
                        tid,
                        addr,
                        user,
                        temp,
                        ran,
                    });
                }
            }
            // Only other goroutines' (or frames') stepping breakpoints:
            // step those threads over them and go on.
            self.bps.step_over = hits;
        }
    }

    /// Waits (servicing every other stop) until a breakpoint is hit, Ctrl-C
    /// or an abort.
    fn wait_running(&mut self, command: u64) -> Result<Woke, AttachError> {
        let mut drained = 0;
        let mut block = false;
        loop {
            if signals::take_abort() {
                return Ok(Woke::Aborted);
            }
            if signals::interrupted(command) {
                return Ok(Woke::Interrupted);
            }
            // Nothing pending: block until a tracee stops (or the signal
            // thread wakes us for Ctrl-C), so that a trap is rewound
            // microseconds after it happens. A SIGKILLed goat hands a trap
            // not yet rewound to the program.
            let flags = if block {
                WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD
            } else {
                super::ptrace::wait_flags()
            };
            match waitpid(None, Some(flags)) {
                Ok(WaitStatus::StillAlive) => {
                    if !self.bps.hits.is_empty() || !self.hw.hits.is_empty() {
                        return Ok(Woke::Hits);
                    }
                    block = true;
                }
                Ok(ws) => {
                    block = false;
                    self.on_event(ws, false);
                    if self.execd.is_some() {
                        return Ok(Woke::Execd);
                    }
                    if !self.bps.hits.is_empty() || !self.hw.hits.is_empty() {
                        drained += 1;
                        if drained > DRAIN_AFTER_HIT {
                            return Ok(Woke::Hits);
                        }
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => self.threads.clear(),
                Err(errno) => return Err(AttachError::os("waitpid", errno)),
            }
            if self.threads.is_empty() {
                return Err(self.gone());
            }
        }
    }

    /// A thread interrupted just after executing an int3 reports the
    /// interrupt's stop first (the kernel takes job-control traps before
    /// dequeuing signals) and keeps its SIGTRAP queued, with rip past the
    /// int3. Left so, clearing that breakpoint or detaching would hand the
    /// SIGTRAP to the program, which dies of it. Each such thread takes its
    /// trap now (a queued signal is dequeued before any user instruction)
    /// and is rewound like any other hit, unreported.
    fn take_pending_traps(&mut self) {
        let pid = self.pid;
        let trapped: Vec<i32> = self
            .threads
            .iter()
            .filter(|(_, s)| **s == State::Stopped(StopKind::Event))
            .map(|(&t, _)| t)
            .filter(|&t| {
                ptrace::getregs(Pid::from_raw(t))
                    .is_ok_and(|r| self.bps.is_armed(r.rip.wrapping_sub(1)))
                    || self.watch_fired(t)
            })
            .filter(|&t| super::guardian::sigtrap_pending(pid, t))
            .collect();
        let mut left_running = false;
        for tid in trapped {
            let p = Pid::from_raw(tid);
            if ptrace::cont(p, None).is_err() {
                continue;
            }
            self.threads.insert(tid, State::Running);
            let deadline = Instant::now() + STEP_TIMEOUT;
            // Its SIGTRAP stop (rewound and turned into an event stop by
            // on_event), then that event stop.
            while self.threads.get(&tid) == Some(&State::Running) {
                match wait_one(tid, deadline, "waiting for a trapped thread's stop") {
                    Ok(ws) => self.on_event(ws, true),
                    Err(AttachError::TimedOut { .. }) => {
                        left_running = true;
                        break;
                    }
                    Err(_) => {
                        self.threads.remove(&tid);
                    }
                }
            }
        }
        if left_running {
            let _ = self.stop_all();
        }
    }

    /// The temporary breakpoint at `addr` that wants thread `tid` (stopped,
    /// rewound): its goroutine and, when asked, its frame. A plain stop
    /// wins over entering a call at the same address.
    fn temp_match(&mut self, tid: i32, addr: u64, g_tls_offset: i64) -> Option<TempBreakpoint> {
        let regs = ptrace::getregs(Pid::from_raw(tid)).ok()?;
        let tls_g = (regs.fs_base != 0)
            .then(|| {
                let at = regs.fs_base.wrapping_add_signed(g_tls_offset);
                self.bps.read_u64(self.pid, at).ok()
            })
            .flatten()
            .filter(|&g| g != 0);
        let g = tls_g.unwrap_or(regs.r14);
        self.bps
            .temps
            .iter()
            .filter(|t| {
                t.addr == addr
                    && (t.g == 0 || t.g == g)
                    && t.frame.is_none_or(|f| {
                        regs.rsp.wrapping_add_signed(f.sp_delta).wrapping_add(8) == f.cfa
                    })
            })
            .min_by_key(|t| t.action != TempAction::Stop)
            .copied()
    }

    /// Single-steps `tid`, stopped on the CALL at `addr` (every int3 out,
    /// every other thread stopped), into the callee. Returns the callee's
    /// entry, or None when the thread did not make exactly that call (the
    /// CALL faulted, and the thread is in the signal's handler now).
    fn enter_call(&mut self, tid: i32, addr: u64, next: u64) -> Option<u64> {
        let p = Pid::from_raw(tid);
        let before = ptrace::getregs(p).ok().filter(|r| r.rip == addr)?;
        let sig = match self.threads.get(&tid) {
            Some(State::Stopped(StopKind::Event)) => None,
            Some(State::Stopped(StopKind::Signal(sig))) => Some(*sig),
            _ => return None,
        };
        self.single_step(tid, sig);
        if !matches!(self.threads.get(&tid), Some(State::Stopped(_))) {
            // Interrupted after a step that did not end: every thread must
            // be stopped when the run returns.
            let _ = self.stop_all();
            return None;
        }
        let after = ptrace::getregs(p).ok()?;
        let pushed = after.rsp == before.rsp.wrapping_sub(8)
            && self.bps.read_u64(self.pid, after.rsp).ok() == Some(next);
        pushed.then_some(after.rip)
    }

    /// Single-steps each thread reported at the last stop over its
    /// breakpoint, alone, while no int3 is in place.
    fn step_over_reported(&mut self) {
        for (tid, addr) in std::mem::take(&mut self.bps.step_over) {
            let sig = match self.threads.get(&tid) {
                Some(State::Stopped(StopKind::Event)) => None,
                Some(State::Stopped(StopKind::Signal(sig))) => Some(*sig),
                _ => continue,
            };
            let p = Pid::from_raw(tid);
            if ptrace::getregs(p).map(|r| r.rip) != Ok(addr) {
                continue;
            }
            self.single_step(tid, sig);
        }
    }

    /// One instruction of `tid`. An asynchronous signal that arrives first
    /// (Go's SIGURG preemption, sent often to a goroutine that was stopped
    /// long) is held back and raised again once the step is done, as Delve
    /// does: delivered with the step, its handler would run instead of the
    /// instruction, and the thread would come back to the breakpoint and
    /// report the same hit twice, or miss the call a `step` goes into. A
    /// fault the instruction itself raises is delivered with the step.
    pub(super) fn single_step(&mut self, tid: i32, sig: Option<Signal>) {
        let mut held = Vec::new();
        let sig = sig.filter(|&s| !hold_back(s, &mut held));
        self.single_step_holding(tid, sig, &mut held);
        for s in held {
            // SAFETY: tgkill takes no pointers. A thread that is gone has
            // no use for the signal.
            unsafe { libc::syscall(libc::SYS_tgkill, self.pid, tid, s as i32) };
        }
    }

    fn single_step_holding(&mut self, tid: i32, mut sig: Option<Signal>, held: &mut Vec<Signal>) {
        let p = Pid::from_raw(tid);
        for _attempt in 0..MAX_STEP_ATTEMPTS {
            if ptrace::step(p, sig).is_err() {
                return;
            }
            self.threads.insert(tid, State::Running);
            let deadline = Instant::now() + STEP_TIMEOUT;
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
            let mut spins = 0u32;
            let ws = loop {
                match waitpid(p, Some(flags)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                    Ok(ws) => break Some(ws),
                    Err(_) => break None,
                }
                if Instant::now() > deadline {
                    // A blocking instruction: leave it to the coming stop.
                    let _ = ptrace::interrupt(p);
                    return;
                }
                // One instruction takes no time: spin first, so its trap is
                // made signal-less (quiet_stop) as soon as it is taken.
                spins += 1;
                if spins < 1000 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(20));
                }
            };
            match ws {
                Some(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {
                    // The step's own trap: not the program's. Turned into a
                    // signal-less stop at once, like a breakpoint's: a goat
                    // killed now must not leave the SIGTRAP to the program.
                    self.note_step_watch_hit(tid);
                    self.quiet_stop(tid);
                    return;
                }
                Some(WaitStatus::Stopped(_, other)) if hold_back(other, held) => sig = None,
                Some(WaitStatus::Stopped(_, other)) => sig = Some(other),
                Some(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_STOP)) => sig = None,
                Some(ws) => {
                    self.on_event(ws, true);
                    return;
                }
                None => {
                    self.threads.remove(&tid);
                    return;
                }
            }
        }
        self.threads.insert(
            tid,
            State::Stopped(sig.map_or(StopKind::Event, StopKind::Signal)),
        );
    }

    /// Turns `tid`'s signal-delivery-stop into a PTRACE_EVENT_STOP without
    /// the signal (taken before any user instruction) and waits for it.
    fn quiet_stop(&mut self, tid: i32) {
        let p = Pid::from_raw(tid);
        self.threads.insert(tid, State::Stopped(StopKind::Event));
        if ptrace::interrupt(p).is_err() || ptrace::cont(p, None).is_err() {
            return;
        }
        match wait_one(
            tid,
            Instant::now() + STEP_TIMEOUT,
            "waiting for a thread's stop",
        ) {
            Ok(WaitStatus::PtraceEvent(_, _, libc::PTRACE_EVENT_STOP)) => {}
            Ok(WaitStatus::Stopped(_, sig)) => {
                // A signal queued behind the trap: kept for the resume.
                self.threads
                    .insert(tid, State::Stopped(StopKind::Signal(sig)));
            }
            Ok(ws) => self.on_event(ws, true),
            // Still on its way: the stop arrives later like any other.
            Err(AttachError::TimedOut { .. }) => {}
            Err(_) => {
                self.threads.remove(&tid);
            }
        }
    }

    /// Every thread with its registers (after a stop).
    pub(super) fn read_threads(&mut self) -> Result<Vec<Thread>, AttachError> {
        let mut out = Vec::with_capacity(self.threads.len());
        let mut gone = Vec::new();
        let threads = &self.threads;
        self.ns_tids.keep_only(|tid| threads.contains_key(&tid));
        for &tid in self.threads.keys() {
            match ptrace::getregs(Pid::from_raw(tid)) {
                Ok(r) => out.push(Thread {
                    tid,
                    ns_tid: self.ns_tids.of(self.pid, tid),
                    regs: Regs::from_user_regs(&r),
                }),
                Err(_) => gone.push(tid),
            }
        }
        for tid in gone {
            self.threads.remove(&tid);
        }
        if out.is_empty() {
            return Err(self.gone());
        }
        Ok(out)
    }
}

/// Tests only (a `test-hooks` build): lets the threads run on for
/// `GOAT_TEST_STOP_DELAY_US` between a hit and the stop of the others, so
/// that a test can make threads reach breakpoints in that window.
#[cfg(feature = "test-hooks")]
fn widen_stop_window_for_tests() {
    let delay = std::env::var("GOAT_TEST_STOP_DELAY_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros);
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
}

#[cfg(not(feature = "test-hooks"))]
fn widen_stop_window_for_tests() {}

/// Keeps an asynchronous signal back from a single-step (once per signal:
/// standard signals do not queue twice either). Returns false for the
/// faults an instruction raises itself, which must come with it.
fn hold_back(sig: Signal, held: &mut Vec<Signal>) -> bool {
    use Signal::*;
    if matches!(sig, SIGSEGV | SIGBUS | SIGFPE | SIGILL | SIGTRAP | SIGSYS) {
        return false;
    }
    if !held.contains(&sig) {
        held.push(sig);
    }
    true
}

/// Runs `f` when dropped (the running flag is cleared on every path).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

impl<'a> Stopped<'a> {
    /// Lets the target run under `plan` and the user breakpoints until a
    /// stop; returns the new stop. On error the target is left running,
    /// with no int3 in it.
    pub fn run(mut self, plan: RunPlan) -> Result<(Stopped<'a>, StopReason), AttachError> {
        self.resumed = true;
        let process = self.process;
        let Reply::Stopped(reason, threads) = process.request(Request::Run(plan))? else {
            return Err(protocol_error());
        };
        Ok((Stopped::new(process, threads), reason))
    }
}
