//! Where a session's process state comes from: a stopped live process
//! ([`LiveBackend`], which can also run it) or a core file ([`CoreBackend`]).

use super::error::{Result, SessionError};
use crate::corefile::writer::{self, CoreStats};
use crate::goruntime;
use std::path::Path;

use crate::corefile::CoreFile;
use crate::process::Target;
use crate::tracer::{
    AttachError, BreakpointInfo, CallPlan, CallStop, LiveProcess, RunPlan, StopReason, Stopped,
};

/// Where the session's process state comes from: a stopped live process or
/// a core file.
pub trait Backend {
    /// The frozen target, or `None` while it runs.
    fn target(&self) -> Option<&dyn Target>;
    /// Execution control, for a backend that has it (a live process).
    fn control(&mut self) -> Option<&mut dyn Control>;
    /// The process id, when there is a process (a core names the one it
    /// was taken from).
    fn pid(&self) -> Option<i32>;
    /// The core file, for a post-mortem session.
    fn core_path(&self) -> Option<&Path> {
        None
    }
    /// The thread a fatal signal was delivered to (a crash core): the
    /// session starts on its goroutine, as the post-mortem user expects.
    fn signalled_thread(&self) -> Option<i32> {
        None
    }
    /// Writes a core of the current stop to `dest`.
    fn write_core(&self, dest: &Path, force: bool) -> Result<CoreStats>;
    /// `CLOCK_MONOTONIC` (ns) of this stop, against which wait times are
    /// measured: now for a live process, the recorded one for goat's cores.
    fn now(&self) -> Option<i64> {
        self.pid().and_then(goruntime::monotonic_now)
    }
}

/// What only a live process can do: run it, and the breakpoints it runs
/// under (the table itself lives on the ptrace thread).
pub trait Control {
    /// Lets the target run, then stops it again: a new stop.
    fn resume_and_stop(&mut self) -> Result<()>;
    /// Runs until a breakpoint that counts, Ctrl-C or an abort: a new stop.
    fn run(&mut self, plan: RunPlan) -> Result<StopReason>;
    fn add_breakpoint(&mut self, addr: u64) -> Result<BreakpointInfo>;
    fn remove_breakpoint(&mut self, id: u32) -> Result<Option<BreakpointInfo>>;
    fn breakpoints(&mut self) -> Result<Vec<BreakpointInfo>>;
    /// Starts a function call (`call`): a new stop, at the
    /// function's results when it returned or panicked.
    fn call(&mut self, plan: CallPlan) -> Result<CallStop>;
    /// Ends a call stopped at its results: a new stop.
    fn finish_call(&mut self) -> Result<()>;
    /// The process itself, for requests that need no session state
    /// (watchpoints, writing memory).
    fn process(&self) -> &LiveProcess;
    /// One instruction of thread `tid`, the others stopped: a new stop.
    fn step_instruction(&mut self, tid: i32) -> Result<()>;
}

/// A live process, stopped while the user is at the prompt.
pub struct LiveBackend<'p> {
    process: &'p LiveProcess,
    stopped: Option<Stopped<'p>>,
}

impl<'p> LiveBackend<'p> {
    /// Runs `op` (a run, a call, a step) from the stop at the prompt,
    /// stopping the target first if it runs, and keeps the stop `op` ends
    /// in. On an error the target was left running: it is stopped again,
    /// if it is still there.
    fn with_stopped<T>(
        &mut self,
        op: impl FnOnce(Stopped<'p>) -> Result<(Stopped<'p>, T), AttachError>,
    ) -> Result<T> {
        let s = match self.stopped.take() {
            Some(s) => s,
            None => self.process.stop()?,
        };
        match op(s) {
            Ok((stopped, out)) => {
                self.stopped = Some(stopped);
                Ok(out)
            }
            Err(e) => {
                self.stopped = self.process.stop().ok();
                Err(e.into())
            }
        }
    }

    /// Stops every thread of `process`; they stay stopped until the backend
    /// is dropped (which resumes them) or resumed through [`Control`].
    pub fn stop(process: &'p LiveProcess) -> Result<LiveBackend<'p>> {
        let stopped = process.stop()?;
        Ok(LiveBackend {
            process,
            stopped: Some(stopped),
        })
    }
}

impl Backend for LiveBackend<'_> {
    fn target(&self) -> Option<&dyn Target> {
        self.stopped.as_ref().map(|s| s as &dyn Target)
    }
    fn control(&mut self) -> Option<&mut dyn Control> {
        Some(self)
    }
    fn pid(&self) -> Option<i32> {
        Some(self.process.pid())
    }
    fn write_core(&self, dest: &Path, force: bool) -> Result<CoreStats> {
        let stopped = self.stopped.as_ref().ok_or(SessionError::Running)?;
        Ok(writer::write_core_stopped(stopped, dest, force)?)
    }
}

impl Control for LiveBackend<'_> {
    fn resume_and_stop(&mut self) -> Result<()> {
        if let Some(s) = self.stopped.take() {
            s.resume()?;
        }
        self.stopped = Some(self.process.stop()?);
        Ok(())
    }
    fn run(&mut self, plan: RunPlan) -> Result<StopReason> {
        self.with_stopped(|s| s.run(plan))
    }
    fn call(&mut self, plan: CallPlan) -> Result<CallStop> {
        self.with_stopped(|s| s.call(plan))
    }
    fn finish_call(&mut self) -> Result<()> {
        self.with_stopped(|s| Ok((s.finish_call()?, ())))
    }
    fn add_breakpoint(&mut self, addr: u64) -> Result<BreakpointInfo> {
        Ok(self.process.add_breakpoint(addr)?)
    }
    fn remove_breakpoint(&mut self, id: u32) -> Result<Option<BreakpointInfo>> {
        Ok(self.process.remove_breakpoint(id)?)
    }
    fn breakpoints(&mut self) -> Result<Vec<BreakpointInfo>> {
        Ok(self.process.breakpoints()?)
    }
    fn step_instruction(&mut self, tid: i32) -> Result<()> {
        self.with_stopped(|s| Ok((s.step_instruction(tid)?, ())))
    }
    fn process(&self) -> &LiveProcess {
        self.process
    }
}

/// A core file: always frozen, never runs.
pub struct CoreBackend<'c> {
    core: &'c CoreFile,
}

impl<'c> CoreBackend<'c> {
    pub fn new(core: &'c CoreFile) -> CoreBackend<'c> {
        CoreBackend { core }
    }
}

impl Backend for CoreBackend<'_> {
    fn target(&self) -> Option<&dyn Target> {
        Some(self.core)
    }
    fn control(&mut self) -> Option<&mut dyn Control> {
        None
    }
    fn pid(&self) -> Option<i32> {
        self.core.pid()
    }
    fn core_path(&self) -> Option<&Path> {
        Some(self.core.path())
    }
    fn signalled_thread(&self) -> Option<i32> {
        self.core.signalled_thread()
    }
    fn write_core(&self, _dest: &Path, _force: bool) -> Result<CoreStats> {
        Err(SessionError::CoreAlready(self.core.path().to_path_buf()))
    }
    fn now(&self) -> Option<i64> {
        // Other cores have no clock: wait times are then not shown.
        self.core.monotonic_at_stop()
    }
}
