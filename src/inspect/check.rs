//! `goat check PID`: the preflight checks, with the executable read by
//! `binary` (preflight lives below it and takes the reader as a callback).

use std::path::Path;

use crate::binary::{self, BinaryError};
use crate::process::preflight;

/// Every preflight check against `pid`, the executable's included.
pub fn check(pid: i32) -> preflight::Report {
    preflight::check(pid, &exe_info)
}

fn exe_info(path: &Path) -> Result<preflight::ExeInfo, BinaryError> {
    let info = binary::inspect(path)?;
    Ok(preflight::ExeInfo {
        go_version: info.go_version,
        has_dwarf: info.has_dwarf,
        has_pclntab: info.has_pclntab,
    })
}
