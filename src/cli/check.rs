//! `goat check`'s view of an executable, in the shape `preflight::check`
//! takes.

use std::path::Path;

use goat::binary;
use goat::process::preflight;

/// What `preflight::check` wants to know of the executable. Its error is a
/// string because `preflight::check`'s callback signature says so.
pub fn inspect_exe(path: &Path) -> std::result::Result<preflight::ExeInfo, String> {
    let info = binary::inspect(path).map_err(|e| e.to_string())?;
    Ok(preflight::ExeInfo {
        go_version: info.go_version,
        has_dwarf: info.has_dwarf,
        has_pclntab: info.has_pclntab,
    })
}
