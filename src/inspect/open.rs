//! Opening what goat reads: a live process's executable, or a core and the
//! executable it names. Refuses what goat cannot read before touching the
//! target.

use std::io;
use std::path::{Path, PathBuf};

use crate::binary::Binary;
use crate::corefile::CoreFile;
use crate::goruntime::{GoError, GoProgram};
use crate::process::{preflight, procfs, Target};
use crate::tracer::AttachError;

use super::{InspectError, Warning};

/// Refuses targets that are not there, not attachable or not Go before any
/// ptrace call, so the common mistakes get a plain answer and the target is
/// never touched. Returns the program and the executable's path as the
/// process's mappings name it.
pub(super) fn open_program(
    pid: i32,
    warn: &mut dyn FnMut(Warning),
) -> Result<(GoProgram, PathBuf), InspectError> {
    preflight::refuse_early(pid)?;
    let exe_link = procfs::exe_path(pid);
    let exe = match procfs::exe(pid) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let advice = preflight::permission_advice(pid);
            return Err(AttachError::PermissionDenied { pid, advice }.into());
        }
        Err(_) => return Err(AttachError::Exited { pid }.into()),
    };
    if exe.to_string_lossy().ends_with(" (deleted)") {
        warn(Warning::ExecutableReplaced {
            pid,
            exe: exe.clone(),
            link: exe_link.clone(),
        });
    }
    let not_go = |reason: GoError| InspectError::NotGo {
        exe: exe.clone(),
        pid: Some(pid),
        reason,
    };
    // The process may exit between the link and the open: then that is
    // the answer, not "not a Go program".
    let bin = match Binary::open(&exe_link) {
        Ok(bin) => bin,
        Err(_) if crate::process::has_exited(pid) => return Err(AttachError::Exited { pid }.into()),
        Err(e) => return Err(not_go(e.into())),
    };
    let prog = GoProgram::load(bin).map_err(not_go)?;
    Ok((prog, exe))
}

/// Opens a core and the executable it names (or `exe_arg`), ready to read:
/// the core, the program and the load bias.
pub(super) fn open_core(
    path: &Path,
    exe_arg: Option<&Path>,
    warn: &mut dyn FnMut(Warning),
) -> Result<(CoreFile, GoProgram, u64), InspectError> {
    let mut core = CoreFile::open(path)?;
    let named = core.executable();
    let exe = match (exe_arg, &named) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(n)) if n.exists() => n.clone(),
        (None, Some(n)) => return Err(InspectError::ExecutableMissing { named: n.clone() }),
        (None, None) => {
            return Err(InspectError::ExecutableUnnamed {
                core: path.to_path_buf(),
            })
        }
    };
    if let (Some(e), Some(n)) = (exe_arg, &named) {
        core.use_file(n, e);
    }
    let not_go = |reason: GoError| InspectError::NotGo {
        exe: exe.clone(),
        pid: None,
        reason,
    };
    let bin = Binary::open(&exe).map_err(|e| not_go(e.into()))?;
    let prog = GoProgram::load(bin).map_err(not_go)?;
    if let Some(n) = &named {
        if differs(&core, n, prog.binary()) {
            warn(Warning::ExecutableDiffers {
                exe: exe.clone(),
                named: n.clone(),
            });
        }
    }
    let bias = match &named {
        Some(n) => prog.load_bias(core.mappings(), n)?,
        None if !prog.binary().is_pie() => 0,
        None => prog.load_bias(core.mappings(), &exe)?,
    };
    Ok((core, prog, bias))
}

/// Whether the executable's first page differs from the one the core holds
/// for the file it names: likely a different build. Unknown (no such
/// mapping, or the page is not in the core) counts as the same.
fn differs(core: &CoreFile, named: &Path, bin: &Binary) -> bool {
    let named_str = named.to_string_lossy();
    let Some(first) = core
        .mappings()
        .iter()
        .filter(|m| {
            m.offset == 0
                && m.path
                    .as_deref()
                    .is_some_and(|p| p.trim_end_matches(" (deleted)") == named_str)
        })
        .min_by_key(|m| m.start)
    else {
        return false;
    };
    let want = &bin.data()[..bin.data().len().min(4096)];
    let mut got = vec![0u8; want.len()];
    // Only what the core itself holds (the kernel dumps an ELF's first page).
    core.read_dumped(first.start, &mut got).is_ok() && got != want
}
