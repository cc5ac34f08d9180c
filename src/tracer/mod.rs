//! Every ptrace and waitpid call of goat: attaching, stopping and resuming
//! a live process, run control and breakpoints, syscall injection, the
//! tracer process a session drives over a pipe and the guardian that
//! outlives goat.

mod borrow_fd;
mod breakpoints;
mod error;
mod exec;
mod execd;
mod fncall;
mod forks;
pub mod guardian;
mod hwbreak;
mod hwwire;
mod inject;
mod live;
#[cfg(test)]
mod live_tests;
mod nstid;
pub mod oom;
mod poke;
mod ptrace;
mod reap;
mod reaper;
mod regset;
pub mod remote;
mod rescue;
mod signals;
mod stepi;
mod wire;

pub use breakpoints::{ArmObserver, BreakpointInfo, FrameCond, TempAction, TempBreakpoint};
pub use error::{AttachError, Ending, Op};
pub use exec::{RunPlan, StopReason};
pub use fncall::{
    Block, CallPlan, CallStop, Word, FLOAT_ARG_REGS, INT_ARG_REGS, MAX_FRAME as MAX_CALL_FRAME,
};
pub use hwbreak::{
    watchable, StackScope, WatchHit, WatchKind, WatchSpec, WatchpointInfo, SLOTS as WATCH_SLOTS,
};
pub use inject::Forked;
pub use live::{LiveProcess, StopWindow, Stopped};
pub use reap::Reaped;
pub use regset::{FpState, FPREGS_SIZE};
pub use remote::NoTracerProcess;
pub use signals::{
    forget_pending_interrupt, hold_while_terminating, install_detach_on_signals, interrupt_run,
    set_session_interrupts, RunCommand, UnfinishedFile,
};
