//! Opening what goat reads: a live process's executable, or a core and the
//! executable it names. Refuses what goat cannot read before touching the
//! target.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;

use goat::binary::{self, Binary};
use goat::corefile::CoreFile;
use goat::goruntime::GoProgram;
use goat::process::{preflight, procfs, Target};
use goat::tracer::AttachError;

/// The executable is not a Go program goat can read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotGo(pub String);

/// The core's executable cannot be found.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoExecutable(pub String);

pub fn inspect_exe(path: &Path) -> std::result::Result<preflight::ExeInfo, String> {
    let info = binary::inspect(path).map_err(|e| e.to_string())?;
    Ok(preflight::ExeInfo {
        go_version: info.go_version,
        has_dwarf: info.has_dwarf,
        has_pclntab: info.has_pclntab,
    })
}

/// Refuses targets that are not there, not attachable or not Go before any
/// ptrace call, so the common mistakes get a plain answer and the target is
/// never touched.
pub fn open_program(pid: i32) -> Result<(GoProgram, PathBuf)> {
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
        eprintln!(
            "goat: warning: {} was replaced or removed since pid {pid} started; reading the running executable through {}",
            exe.display(),
            exe_link.display()
        );
    }
    let not_go = |e: &dyn std::fmt::Display| {
        NotGo(format!(
            "{} (pid {pid}) is not a Go program goat can read: {e}",
            exe.display()
        ))
    };
    // The process may exit between the link and the open: then that is
    // the answer, not "not a Go program".
    let bin = match Binary::open(&exe_link) {
        Ok(bin) => bin,
        Err(_) if goat::process::has_exited(pid) => return Err(AttachError::Exited { pid }.into()),
        Err(e) => return Err(not_go(&e).into()),
    };
    let prog = GoProgram::load(bin).map_err(|e| not_go(&e))?;
    Ok((prog, exe))
}

/// Opens a core and the executable it names (or `exe_arg`), ready to read:
/// the core, the program and the load bias.
pub fn open_core(path: &Path, exe_arg: Option<&Path>) -> Result<(CoreFile, GoProgram, u64)> {
    let mut core = CoreFile::open(path)?;
    let named = core.executable();
    let exe = match (exe_arg, &named) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(n)) if n.exists() => n.clone(),
        (None, Some(n)) => {
            return Err(NoExecutable(format!(
                "the core names {} as its executable but it is not on this machine: pass --exe",
                n.display()
            ))
            .into())
        }
        (None, None) => {
            return Err(NoExecutable(format!(
                "{} does not name its executable: pass --exe",
                path.display()
            ))
            .into())
        }
    };
    if let (Some(e), Some(n)) = (exe_arg, &named) {
        core.use_file(n, e);
    }
    let not_go = |e: &dyn std::fmt::Display| {
        NotGo(format!(
            "{} is not a Go program goat can read: {e}",
            exe.display()
        ))
    };
    let bin = Binary::open(&exe).map_err(|e| not_go(&e))?;
    let prog = GoProgram::load(bin).map_err(|e| not_go(&e))?;
    if let Some(n) = &named {
        warn_if_different(&core, n, prog.binary(), &exe);
    }
    let bias = match &named {
        Some(n) => prog.load_bias(core.mappings(), n)?,
        None if !prog.binary().is_pie() => 0,
        None => prog.load_bias(core.mappings(), &exe)?,
    };
    Ok((core, prog, bias))
}

/// Warns (one line) when the executable's first page differs from the one
/// the core holds for the file it names: likely a different build.
fn warn_if_different(core: &CoreFile, named: &Path, bin: &Binary, exe: &Path) {
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
        return;
    };
    let want = &bin.data()[..bin.data().len().min(4096)];
    let mut got = vec![0u8; want.len()];
    // Only what the core itself holds (the kernel dumps an ELF's first page).
    if core.read_dumped(first.start, &mut got).is_ok() && got != want {
        eprintln!(
            "goat: warning: {} differs from the executable the core was taken of ({}): frames may be wrong",
            exe.display(),
            named.display()
        );
    }
}
