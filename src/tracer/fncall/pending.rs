//! A call goat no longer waits for: Ctrl-C while the function ran (the
//! session goes on), or goat gone (the tracer lets go). The runtime ends a
//! call only when the function returns: the goroutine that made it is
//! parked in `debugCallWrap` until then, and its registers come back only
//! at the restore stop (R12 = 16), which the tracer must answer (the
//! runtime restores the integer registers itself, not the flags nor X0–
//! X15, and each stop is an int3 that kills an untraced program). So the
//! call stays here, unattended: whatever the session does meanwhile (runs,
//! stops), each protocol stop is answered as it comes, and the call ends
//! when the function returns.
//!
//! Letting go ([`Tracer::narrow_to_call`]): since Go 1.21 the runtime
//! locks the called goroutine to the call's thread, and every later stop
//! of the protocol comes on that thread (it resumes the calling goroutine
//! there, directly, and neither runtime function is preemptible), so the
//! tracer keeps only that thread and detaches the others. On Go 1.19 and
//! 1.20 the callee may move to any thread: every thread stays traced until
//! the function returns.

use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::super::ptrace::{State, StopKind, Tracer};
use super::super::signals;
use super::Progress;

impl Tracer {
    /// Whether a call waits at its results for goat.
    pub(in crate::tracer) fn call_held(&self) -> bool {
        self.call.as_ref().is_some_and(|c| c.holding)
    }

    /// Answers the protocol stop an unattended call's thread is in, if it
    /// is in one. Not during a stop (`stopping`): the thread would run
    /// again behind the stop's back; the next resume answers it.
    pub(in crate::tracer) fn serve_unattended_call(&mut self, stopping: bool) {
        let Some(c) = self.call.as_ref() else {
            return;
        };
        let (tid, start) = (c.plan.tid, c.start_tid);
        let waiting = c.unattended && !c.holding && c.event.is_some();
        if stopping || !waiting || self.threads.get(&tid) != Some(&State::Stopped(StopKind::Event))
        {
            return;
        }
        let ended = match self.on_protocol_stop() {
            Ok(Progress::Running) => return,
            Ok(Progress::Done) => {
                crate::eprintln_quiet!(
                    "goat: the function call made on thread {tid} returned; its goroutine \
                     goes on where it was"
                );
                true
            }
            Ok(Progress::Report(_)) => false,
            Err(e) => {
                crate::eprintln_quiet!(
                    "goat: finishing a function call that had been left to run: {e}"
                );
                true
            }
        };
        if ended {
            self.call = None;
            signals::set_calling(false);
            self.moved(start, tid);
        }
        if ptrace::cont(Pid::from_raw(tid), None).is_ok() {
            self.threads.insert(tid, State::Running);
        }
    }

    /// Before an unattended call runs on to its end: every thread but the
    /// call's detached, when the runtime keeps the call on that thread
    /// (module docs). Its breakpoints and watchpoints are out first.
    pub(super) fn narrow_to_call(&mut self) {
        let Some(c) = self.call.as_ref() else {
            return;
        };
        if !c.plan.callee_locked || c.narrowed {
            return;
        }
        let keep = c.plan.tid;
        if self.stop_all().is_err() || !self.threads.contains_key(&keep) {
            return;
        }
        let pid = self.pid;
        self.bps.disarm(pid);
        self.let_children_go();
        self.clear_debug_registers();
        // Threads and children the call's thread starts stay untraced.
        if ptrace::setoptions(Pid::from_raw(keep), Options::empty()).is_err() {
            return;
        }
        let others: Vec<(i32, State)> = self
            .threads
            .iter()
            .filter(|(&t, _)| t != keep)
            .map(|(&t, &s)| (t, s))
            .collect();
        for (tid, state) in others {
            let sig: Option<Signal> = match state {
                State::Stopped(StopKind::Signal(sig)) => Some(sig),
                _ => None,
            };
            let _ = ptrace::detach(Pid::from_raw(tid), sig);
            self.threads.remove(&tid);
        }
        if let Some(c) = self.call.as_mut() {
            c.narrowed = true;
        }
        crate::eprintln_quiet!(
            "goat tracer: a function call has not returned: pid {pid} runs on, traced only on \
             thread {keep}, where the call's goroutine is locked, until the function returns"
        );
    }
}
