//! The interactive session (`goat attach`, `goat debug`): a live process
//! traced for breakpoints and run control, or a core, behind a front end.

use crate::corefile::CoreFile;
use crate::goruntime::GoProgram;
use crate::session::{self, CoreBackend, LiveBackend, SessionError};
use crate::tracer::{set_session_interrupts, LiveProcess};

use super::{InspectError, Inspector, Source, Warning};

/// A target ready for a session: a live process attached to (and detached
/// from when this is dropped, its threads running on), or a core.
pub struct Debuggee<'a> {
    prog: &'a GoProgram,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Live {
        live: LiveProcess,
        bias: u64,
        /// Stopped by job control when goat attached (see
        /// `Session::job_stopped`).
        job_stopped: bool,
    },
    Core {
        core: &'a CoreFile,
        bias: u64,
    },
}

impl Inspector {
    /// Readies the target for a session. A live process is attached to
    /// with a tracer that takes the breakpoints out and detaches should
    /// goat die (see tracer/remote.rs); how well it is guarded goes to
    /// `warn`.
    pub fn debug(&self, warn: &mut dyn FnMut(Warning)) -> Result<Debuggee<'_>, InspectError> {
        let kind = match &self.source {
            Source::Live { pid, exe } => {
                // Read before the attach, whose stop shows as `t`.
                let job_stopped = crate::process::procfs::stopped_by_job_control(*pid);
                let (live, note) = LiveProcess::attach_for_session(*pid)?;
                if let Some(note) = note {
                    warn(Warning::SessionGuard(note));
                }
                let bias = super::open::live_bias(&self.prog, *pid, exe)?;
                Kind::Live {
                    live,
                    bias,
                    job_stopped,
                }
            }
            Source::Core { core, bias, .. } => Kind::Core { core, bias: *bias },
        };
        Ok(Debuggee {
            prog: &self.prog,
            kind,
        })
    }
}

impl Debuggee<'_> {
    /// A session over the target: a live process is stopped until the
    /// session is dropped (or runs it), then runs on untouched.
    pub fn session(&self) -> Result<session::Session<'_>, InspectError> {
        let (backend, bias, job_stopped): (Box<dyn session::Backend + '_>, u64, bool) =
            match &self.kind {
                Kind::Live {
                    live,
                    bias,
                    job_stopped,
                } => {
                    let backend = LiveBackend::stop(live).map_err(from_session)?;
                    (Box::new(backend), *bias, *job_stopped)
                }
                Kind::Core { core, bias } => (Box::new(CoreBackend::new(core)), *bias, false),
            };
        let mut session = session::Session::new(self.prog, backend, bias).map_err(from_session)?;
        session.job_stopped = job_stopped;
        Ok(session)
    }

    /// Runs a front end over a session (`front`: the REPL, a DAP server),
    /// then detaches from a live process. Returns the front end's exit code.
    pub fn run(
        self,
        front: impl FnOnce(&mut session::Session<'_>) -> u8,
    ) -> Result<u8, InspectError> {
        let mut session = self.session()?;
        let live = matches!(self.kind, Kind::Live { .. });
        // Ctrl-C stops a running `continue` instead of ending the session.
        if live {
            set_session_interrupts(true);
        }
        let code = front(&mut session);
        if live {
            set_session_interrupts(false);
        }
        // Resumes every thread; dropping `self` then detaches.
        drop(session);
        Ok(code)
    }
}

/// A tracer failure in the session's start (the stop) is kept as the
/// attach error it is, with its exit code.
fn from_session(e: SessionError) -> InspectError {
    match e {
        SessionError::Attach(e) => InspectError::Attach(e),
        e => InspectError::Session(e),
    }
}
