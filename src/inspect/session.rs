//! The interactive session (`goat attach`, `goat debug`): a live process
//! traced for breakpoints and run control, or a core, behind the REPL.

use crate::corefile::CoreFile;
use crate::goruntime::GoProgram;
use crate::process::read_mappings;
use crate::repl::{self, CoreBackend, LiveBackend};
use crate::tracer::{set_session_interrupts, AttachError, LiveProcess};

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
                let bias = self.prog.load_bias(&read_mappings(*pid), exe)?;
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
    pub fn session(&self) -> Result<repl::Session<'_>, InspectError> {
        let (backend, bias, job_stopped): (Box<dyn repl::Backend + '_>, u64, bool) =
            match &self.kind {
                Kind::Live {
                    live,
                    bias,
                    job_stopped,
                } => {
                    let backend = LiveBackend::stop(live).map_err(from_repl)?;
                    (Box::new(backend), *bias, *job_stopped)
                }
                Kind::Core { core, bias } => (Box::new(CoreBackend::new(core)), *bias, false),
            };
        let mut session = repl::Session::new(self.prog, backend, bias).map_err(from_repl)?;
        session.job_stopped = job_stopped;
        Ok(session)
    }

    /// Runs the REPL over a session (`opts`: the `-x` commands, batch or
    /// not), then detaches from a live process. Returns the REPL's exit code.
    pub fn run(self, opts: &repl::Options) -> Result<u8, InspectError> {
        let mut session = self.session()?;
        let live = matches!(self.kind, Kind::Live { .. });
        // Ctrl-C stops a running `continue` instead of ending the session.
        if live {
            set_session_interrupts(true);
        }
        let code = repl::run(&mut session, opts);
        if live {
            set_session_interrupts(false);
        }
        // Resumes every thread; dropping `self` then detaches.
        drop(session);
        Ok(code)
    }
}

/// The REPL speaks anyhow; a tracer failure in it (the stop) is kept as
/// the typed error it is.
fn from_repl(e: anyhow::Error) -> InspectError {
    match e.downcast::<AttachError>() {
        Ok(e) => InspectError::Attach(e),
        Err(e) => InspectError::Session(e),
    }
}
