//! `goat core`'s sequence: refuse early, check the destination, attach
//! with a tracer that outlives goat, write (corefile/writer does the
//! work), detach.

use crate::corefile::writer::{self, CoreOptions, CoreStats};
use crate::process::preflight;
use crate::tracer::LiveProcess;

use super::{saved_exe, InspectError, Warning};

/// Writes an ELF core of process `pid` as `opts` says and leaves it
/// running. The destination is checked before the target is touched (and
/// again when the file is saved). Warnings go to `warn` as they arise
/// (before the write, which may take a while).
pub fn write_core(
    pid: i32,
    opts: &CoreOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<CoreStats, InspectError> {
    write(pid, opts, SaveExecutable::IfUnreachable, warn)
}

/// Whether a core whose executable can no longer be reached by its name
/// gets a copy of the running one beside it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SaveExecutable {
    /// For a core the user keeps.
    IfUnreachable,
    /// For goat's own private copy, read while the process still runs
    /// (`live_copy.rs` reads the executable through `/proc/PID/exe`).
    Never,
}

pub(super) fn write(
    pid: i32,
    opts: &CoreOptions,
    save: SaveExecutable,
    warn: &mut dyn FnMut(Warning),
) -> Result<CoreStats, InspectError> {
    preflight::refuse_early(pid)?;
    crate::outfile::check_dest(&opts.dest, opts.force).map_err(InspectError::Destination)?;
    // A core whose executable is gone is of no use: the running image is
    // copied (before anything is attached) and kept if the core is.
    let unreachable = match save {
        SaveExecutable::IfUnreachable => saved_exe::unreachable_by_name(pid),
        SaveExecutable::Never => None,
    };
    let exe_copy = match unreachable {
        None => None,
        Some(named) => {
            let dest = saved_exe::beside(&opts.dest);
            crate::outfile::check_dest(&dest, opts.force).map_err(InspectError::Destination)?;
            match saved_exe::copy(pid, &dest, opts.force, named.clone()) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn(Warning::ExecutableNotSaved {
                        pid,
                        named,
                        why: e.to_string(),
                    });
                    None
                }
            }
        }
    };
    // The tracer is a process of its own, which finishes an injected
    // syscall, kills and reaps a snapshot copy and removes the temporary
    // should goat die (see tracer/remote.rs).
    let (live, why) = LiveProcess::attach_outliving(pid)?;
    if let Some(why) = why {
        warn(Warning::NoTracerProcess { why });
    }
    let helpers = live.helpers();
    let result = writer::write_core(&live, opts);
    // The copy is kept or removed while the tracer still runs: when it
    // ends, the tracer removes any temporary named for this goat once its
    // lock is free (tracer/remote.rs), and it would wait out its patience
    // on the copy's, which this goat holds until the copy is saved.
    // A failed core's copy is removed here, dropped.
    let exe_saved = match (&result, exe_copy) {
        (Ok(_), Some(p)) => Some((p.named.clone(), p.commit())),
        _ => None,
    };
    // Detached before the outcome is reported.
    drop(live);
    let stats = CoreStats { helpers, ..result? };
    if let Some((named, saved)) = exe_saved {
        match saved {
            Ok(saved) => warn(Warning::ExecutableSaved { pid, named, saved }),
            Err(e) => warn(Warning::ExecutableNotSaved {
                pid,
                named,
                why: e.to_string(),
            }),
        }
    }
    Ok(stats)
}
