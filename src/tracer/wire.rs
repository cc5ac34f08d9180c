//! What a [`LiveProcess`](super::LiveProcess) asks of its tracer, as plain
//! data: the same requests go to the ptrace thread in goat's own process
//! (`goat stacks`, `goat core`) and, one JSON line each, to the tracer
//! process of an interactive session (see `remote.rs`).

use serde::{Deserialize, Serialize};

use super::breakpoints::BreakpointInfo;
use super::exec::{RunPlan, StopReason};
use super::hwbreak::WatchpointInfo;
use super::hwwire::WatchRequest;
use super::inject::Forked;
use super::ptrace::{AttachError, Tracer};
use super::reap::Reaped;
use super::regset::FpState;
use crate::process::Thread;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Request {
    /// Stop every thread and read its registers.
    Stop,
    Resume,
    /// Run under the plan and the user breakpoints until a stop that counts.
    Run(RunPlan),
    FpStates(Vec<i32>),
    AddBreakpoint(u64),
    RemoveBreakpoint(u32),
    Breakpoints,
    ForkCopy,
    ReleaseCopy,
    /// Have the target reap copies dead tracers left (see `reap.rs`).
    ReapLeftovers,
    /// Look for what a way back for an injected syscall needs
    /// (`rescue.rs`) while the target runs, not in the stop that injects.
    PrepareInjection,
    /// Have the target open a userfaultfd (see `borrow_fd.rs`); the reply
    /// is the number of the tracer's copy.
    OpenUserfaultfd,
    /// Close the tracer's copy of a borrowed descriptor (goat has its own).
    CloseFd(i32),
    /// Watchpoints in the debug registers (`hwbreak.rs`).
    Watch(WatchRequest),
    /// Writes bytes into the target's memory (`set`).
    WriteMemory(u64, Vec<u8>),
    /// The directory goat is about to create a temporary core file in: a
    /// tracer process that outlives goat removes what goat left there (see
    /// `remote.rs`).
    Temporaries(Temporaries),
    /// Start a function call (`fncall.rs`); then finish one stopped at
    /// its results.
    CallStart(super::fncall::CallPlan),
    CallFinish,
    /// One instruction of one thread, the others stopped (`stepi.rs`).
    StepInstruction(i32),
}

/// Where goat writes temporaries (`outfile`), told before the first is
/// created: each is named for its writer's pid and held under an exclusive
/// `flock` while goat lives, so the tracer finds what a killed goat left,
/// even one killed before it could say the file's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Temporaries {
    pub dir: std::path::PathBuf,
    /// goat's pid, as temporaries' names give it.
    pub writer: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Reply {
    Done,
    Threads(Vec<Thread>),
    Stopped(StopReason, Vec<Thread>),
    FpStates(Vec<FpState>),
    Breakpoint(Option<BreakpointInfo>),
    Breakpoints(Vec<BreakpointInfo>),
    Found(bool),
    Forked(Forked),
    Reaped(Reaped),
    Fd(i32),
    CallStopped(super::fncall::CallStop, Vec<Thread>),
    Watchpoints(Vec<WatchpointInfo>),
    /// The error goat's own ptrace thread would have returned.
    Failed(AttachError),
}

/// The protocol was broken: a reply of the wrong kind, or an unreadable line.
pub(super) fn protocol_error() -> AttachError {
    AttachError::UnexpectedReply
}

impl Tracer {
    /// Carries out one request on the ptrace thread.
    pub(super) fn handle(&mut self, req: Request) -> Reply {
        let failed = Reply::Failed;
        // The program exec'd: nothing goat knew of it holds (execd.rs).
        if let Some(e) = self.execd_error() {
            if !matches!(req, Request::Resume | Request::Temporaries(_)) {
                return failed(e);
            }
        }
        // A call held at its results ends before anything else is done.
        if !matches!(req, Request::CallFinish) && self.call_held() {
            self.call_abandon();
        }
        match req {
            Request::Stop => self.stop_and_read().map_or_else(failed, Reply::Threads),
            Request::Resume => {
                self.resume_all();
                Reply::Done
            }
            Request::Run(plan) => match self.run_and_read(plan) {
                Ok((reason, threads)) => Reply::Stopped(reason, threads),
                Err(e) => failed(e),
            },
            Request::FpStates(tids) => Reply::FpStates(self.read_fp_states(tids)),
            Request::AddBreakpoint(addr) => {
                let pid = self.pid;
                match self.bps.add_user(pid, addr) {
                    Ok(b) => Reply::Breakpoint(Some(b)),
                    Err(e) => failed(e),
                }
            }
            Request::RemoveBreakpoint(id) => Reply::Breakpoint(self.bps.remove_user(id)),
            Request::Breakpoints => Reply::Breakpoints(self.bps.user.values().cloned().collect()),
            Request::ForkCopy => self.fork_copy().map_or_else(failed, Reply::Forked),
            Request::ReleaseCopy => self
                .release_fork_running()
                .map_or_else(failed, Reply::Reaped),
            Request::ReapLeftovers => self
                .reap_leftovers_running()
                .map_or_else(failed, Reply::Reaped),
            Request::PrepareInjection => Reply::Found(self.prepare_injection()),
            Request::OpenUserfaultfd => self.userfaultfd_in().map_or_else(failed, Reply::Fd),
            Request::CloseFd(n) => Reply::Found(self.borrowed_fds.remove(&n).is_some()),
            Request::Watch(w) => self.handle_watch(w),
            Request::WriteMemory(addr, bytes) => {
                let pid = self.pid;
                match self.bps.write_bytes(pid, addr, &bytes) {
                    Ok(()) => Reply::Done,
                    Err(e) => failed(e),
                }
            }
            // Only a tracer process outlives goat's temporaries (remote.rs).
            Request::Temporaries(_) => Reply::Done,
            Request::CallStart(plan) => match self.call_start(plan) {
                Ok((stop, threads)) => Reply::CallStopped(stop, threads),
                Err(e) => failed(e),
            },
            Request::CallFinish => match self.call_finish() {
                Ok((stop, threads)) => Reply::CallStopped(stop, threads),
                Err(e) => failed(e),
            },
            Request::StepInstruction(tid) => self
                .step_instruction(tid)
                .map_or_else(failed, Reply::Threads),
        }
    }
}
