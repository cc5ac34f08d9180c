//! Every goroutine and what each blocked one waits on
//! (`goruntime::waits`), without the rest of `goat why`'s analysis
//! (`why.rs`): for a library user. From a core as it is or from a live process
//! held stopped while both are read (the runtime's wait queues are only
//! consistent with the goroutines while nothing runs).

use crate::goruntime::waits::{read_waits, ProcFds, Waits};
use crate::goruntime::{self, Dump};
use crate::process::Target;
use crate::tracer::LiveProcess;

use super::{InspectError, Inspector, Source};

impl Inspector {
    /// The goroutines and what each waits on. A live process is stopped
    /// for the copy of its goroutines and the reading of their waits (its
    /// sockets are named from `/proc`); a core has no descriptors to name.
    pub fn waits(&self) -> Result<(Dump, Waits), InspectError> {
        let prog = &self.prog;
        match &self.source {
            Source::Core { core, bias, .. } => {
                // Read as `goat stacks --core` reads it.
                let dump = self.stacks()?.dump;
                let threads = core.threads();
                let waits = read_waits(prog, core.as_ref(), *bias, &dump.goroutines, threads, None);
                Ok((dump, waits))
            }
            Source::Live { pid, exe } => {
                let live = LiveProcess::attach(*pid)?;
                let bias = super::open::live_bias(prog, *pid, exe)?;
                let globals = prog.locate(live.memory(), bias)?;
                let empty = prog.prepare_capture(live.memory(), &globals);
                let stopped = live.stop()?;
                let read = (|| -> Result<(Dump, Waits), InspectError> {
                    let now = goruntime::monotonic_now(*pid);
                    let cap = prog.capture(&stopped, &globals, now, empty)?;
                    let dump = prog.decode(&cap, bias)?;
                    let fds = ProcFds::read(*pid);
                    let waits = read_waits(
                        prog,
                        &stopped,
                        bias,
                        &dump.goroutines,
                        stopped.threads(),
                        Some(&fds),
                    );
                    Ok((dump, waits))
                })();
                // Resumed whatever the reading gave.
                stopped.resume()?;
                drop(live);
                read
            }
        }
    }
}
