//! `step-instruction`: one instruction of one thread while every other
//! thread stays stopped. No int3 is in the target at the prompt, so the
//! instruction is the program's own; a signal that arrives first is held
//! back and raised again after the step (see `single_step`).

use super::live::Stopped;
use super::ptrace::{AttachError, State, StopKind, Tracer};
use super::wire::{protocol_error, Reply, Request};
use crate::process::Thread;

impl Tracer {
    /// Steps `tid` over one instruction; the registers of every thread.
    pub(super) fn step_instruction(&mut self, tid: i32) -> Result<Vec<Thread>, AttachError> {
        if self.detached {
            return Err(self.gone());
        }
        let sig = match self.threads.get(&tid) {
            Some(State::Stopped(StopKind::Event)) => None,
            Some(State::Stopped(StopKind::Signal(sig))) => Some(*sig),
            _ => return Err(AttachError::ThreadNotStopped { tid }),
        };
        self.single_step(tid, sig);
        // A step that did not end (a blocking syscall) was interrupted:
        // every thread must be stopped when this returns.
        if !matches!(self.threads.get(&tid), Some(State::Stopped(_))) {
            self.stop_all()?;
        }
        // A thread reported at a breakpoint was stepped off it here: the
        // next run must not step it again.
        self.bps.step_over.retain(|&(t, _)| t != tid);
        self.read_threads()
    }
}

impl<'a> Stopped<'a> {
    /// One instruction of thread `tid`; returns the new stop. On error the
    /// caller stops the target again (it may have been left running).
    pub fn step_instruction(mut self, tid: i32) -> Result<Stopped<'a>, AttachError> {
        self.resumed = true;
        let process = self.process;
        let Reply::Threads(threads) = process.request(Request::StepInstruction(tid))? else {
            return Err(protocol_error());
        };
        Ok(Stopped::new(process, threads))
    }
}
