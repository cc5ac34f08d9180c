//! Opening what goat reads: a live process's executable, or a core and the
//! executable it names. Refuses what goat cannot read before touching the
//! target.

use std::io;
use std::path::{Path, PathBuf};

use crate::binary::Binary;
use crate::corefile::CoreFile;
use crate::goruntime::{Fit, GoError, GoProgram, LayoutOrigin};
use crate::process::{preflight, procfs, read_mappings, ProcessMemory, Target};
use crate::tracer::AttachError;

use super::{saved_exe, verify, InspectError, OpenOptions, Warning};

/// Refuses targets that are not there, not attachable or not Go before any
/// ptrace call, so the common mistakes get a plain answer and the target is
/// never touched. Returns the program, the executable's path as the
/// process's mappings name it, and what the layout check saw.
pub(super) fn open_program(
    pid: i32,
    opts: &OpenOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<(GoProgram, PathBuf, Fit), InspectError> {
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
    let bin = add_symbols(bin, &exe, opts, warn)?;
    let mut prog = GoProgram::load(bin).map_err(not_go)?;
    // The file read through the link is the running one unless it was
    // written over in place; its first page in memory tells.
    let mem = ProcessMemory::new(pid);
    let mappings = read_mappings(pid);
    let checked = verify::check_live(&mem, &mappings, &exe, prog.binary());
    if let Err(what) = checked {
        return Err(InspectError::WrongExecutable {
            exe: exe_link,
            of: format!("pid {pid} runs"),
            what,
        });
    }
    // With the target running: a layout from goat's table is checked on
    // its goroutines before anything is stopped or printed with it.
    let settled = prog
        .load_bias(&mappings, &exe)
        .and_then(|bias| prog.settle_layout(&mem, bias));
    let fit = match settled {
        Ok(fit) => fit,
        // Gone meanwhile: its mappings and memory vanish with it, and that
        // is the answer.
        Err(_) if crate::process::has_exited(pid) => return Err(AttachError::Exited { pid }.into()),
        Err(e) => return Err(e.into()),
    };
    warn_neighbour(&prog, warn);
    Ok((prog, exe, fit))
}

/// Opens a core and the executable it names (or `exe_arg`), ready to read:
/// the core, the program, the load bias and the executable's path as the
/// process ran it (the core's name for it, else the file read).
pub(super) fn open_core(
    path: &Path,
    exe_arg: Option<&Path>,
    opts: &OpenOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<(CoreFile, GoProgram, u64, PathBuf), InspectError> {
    let mut core = match opts.map_core {
        true => CoreFile::open_mapped(path)?,
        false => CoreFile::open(path)?,
    };
    let named = core.executable();
    // Saved by `goat core` because the named one was gone or replaced: it
    // is checked against the core below like any other.
    let saved = exe_arg.is_none().then(|| saved_exe::find(path)).flatten();
    let exe_arg = exe_arg.or(saved.as_deref());
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
    if let Some(exe) = &saved {
        warn(Warning::SavedExecutableUsed { exe: exe.clone() });
    }
    let not_go = |reason: GoError| InspectError::NotGo {
        exe: exe.clone(),
        pid: None,
        reason,
    };
    let bin = Binary::open(&exe).map_err(|e| not_go(e.into()))?;
    let bin = add_symbols(bin, &exe, opts, warn)?;
    let mut prog = GoProgram::load(bin).map_err(not_go)?;
    let checked = verify::check_core(&core, prog.binary(), named.as_deref()).map_err(|what| {
        InspectError::WrongExecutable {
            exe: exe.clone(),
            of: format!("core {} was taken of", crate::stdio::shown_path(path)),
            what,
        }
    })?;
    let bias = match &named {
        Some(n) => prog.load_bias(core.mappings(), n)?,
        None if !prog.binary().is_pie() => 0,
        // No NT_FILE: the entry point the core records places the file.
        None => match core.entry().zip(prog.binary().entry()) {
            Some((t, e)) if t >= e => t - e,
            _ => prog.load_bias(core.mappings(), &exe)?,
        },
    };
    match checked {
        // Verified to be the mapped file: it may stand in for pages neither
        // the core nor NT_FILE covers (a damaged or missing NT_FILE note).
        verify::Checked::Same => core.read_unmapped_from(&exe, &exe_ranges(prog.binary(), bias)),
        verify::Checked::Unverified(why) => warn(Warning::ExecutableUnverified {
            exe: exe.clone(),
            why,
        }),
    }
    prog.settle_layout(&core, bias)?;
    warn_neighbour(&prog, warn);
    Ok((core, prog, bias, named.unwrap_or(exe)))
}

/// The executable with the symbols file the user named (refused with the
/// reason when it does not describe the executable), or else with a debug
/// file found where gdb looks (skipped, with a warning, when it does not
/// match).
fn add_symbols(
    bin: Binary,
    exe: &Path,
    opts: &OpenOptions,
    warn: &mut dyn FnMut(Warning),
) -> Result<Binary, InspectError> {
    if let Some(file) = &opts.symbols {
        let checked = bin.symbols_file(file)?;
        return Ok(bin.with_symbols(checked));
    }
    // `/proc/PID/exe` reads " (deleted)" after a deploy: the debug file
    // is looked for beside the path the program was started from.
    let exe_name = exe.to_string_lossy();
    let started_as = Path::new(exe_name.trim_end_matches(" (deleted)"));
    let Some(found) = bin.find_debug_file(started_as) else {
        return Ok(bin);
    };
    match bin.symbols_file(&found) {
        Ok(checked) => {
            warn(Warning::DebugFile { path: found });
            Ok(bin.with_symbols(checked))
        }
        Err(e) => {
            warn(Warning::DebugFileRefused { why: e.to_string() });
            Ok(bin)
        }
    }
}

/// Says so when the layout that fits is not the one of the release the
/// version string names.
fn warn_neighbour(prog: &GoProgram, warn: &mut dyn FnMut(Warning)) {
    if let LayoutOrigin::Table {
        candidates,
        fits: Some(used),
    } = prog.layout_origin()
    {
        if candidates.first() != Some(used) {
            warn(Warning::NeighbourLayout {
                version: prog.version_text().to_string(),
                used: used.minor,
            });
        }
    }
}

/// The executable's file-backed segments at their runtime addresses:
/// `(start, end, file offset)`. A segment whose address overflows is left
/// out (its bytes stay unreadable).
fn exe_ranges(bin: &Binary, bias: u64) -> Vec<(u64, u64, u64)> {
    bin.file_segments()
        .into_iter()
        .filter_map(|(vaddr, offset, size)| {
            let start = vaddr.checked_add(bias)?;
            Some((start, start.checked_add(size)?, offset))
        })
        .collect()
}

/// The load bias of live process `pid` running `exe`, read from its
/// mappings now. A process that exited meanwhile has none, and that (not
/// "cannot find the executable") is the answer.
pub(super) fn live_bias(
    prog: &crate::goruntime::GoProgram,
    pid: i32,
    exe: &std::path::Path,
) -> Result<u64, InspectError> {
    match prog.load_bias(&crate::process::read_mappings(pid), exe) {
        Ok(bias) => Ok(bias),
        Err(_) if crate::process::has_exited(pid) => Err(AttachError::Exited { pid }.into()),
        Err(e) => Err(e.into()),
    }
}
