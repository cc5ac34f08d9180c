//! `goat check PID`: the preflight checks, with the executable read by
//! `binary` and the goroutines by the very loader `goat stacks` uses
//! (preflight lives below both and takes them as a callback), so "goat can
//! read its goroutines" is said only when that is true.

use std::path::Path;

use crate::binary::{Binary, BinaryError, VersionOrigin};
use crate::process::preflight;

use super::open;

/// Every preflight check against `pid`, the executable's included.
pub fn check(pid: i32) -> preflight::Report {
    preflight::check(pid, &|path: &Path| exe_info(pid, path))
}

fn exe_info(pid: i32, path: &Path) -> Result<preflight::ExeInfo, BinaryError> {
    let bin = Binary::open(path)?;
    let (go_version, version_note) = match bin.go_version_with_origin() {
        Some((v, VersionOrigin::BuildInfo)) => (Some(v.to_string()), None),
        Some((v, VersionOrigin::Runtime)) => (
            Some(v.to_string()),
            Some("from runtime.buildVersion; no build info".to_string()),
        ),
        None => (None, None),
    };
    let has_pclntab = bin.pclntab().is_ok();
    Ok(preflight::ExeInfo {
        go_version,
        version_note,
        has_dwarf: bin.has_dwarf(),
        has_pclntab,
        goroutines: has_pclntab.then(|| goroutines(pid)),
    })
}

/// What `goat stacks` would find, read without stopping the target: the
/// loader, the layout check, the goroutine list.
fn goroutines(pid: i32) -> Result<String, String> {
    let (prog, _, fit) = open::open_program(pid, &super::OpenOptions::default(), &mut |_| {})
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "goat can read its goroutines: {} in runtime.allgs, runtime layout {}",
        fit.goroutines,
        prog.layout_origin()
    ))
}
