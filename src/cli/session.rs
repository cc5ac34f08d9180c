//! `goat attach` and `goat debug`: the interactive session over a live
//! process or a core.

use std::path::Path;

use anyhow::Result;

use goat::inspect::Inspector;
use goat::repl;

use super::warn;

pub fn attach(pid: i32, commands: Vec<String>, batch: bool) -> Result<u8> {
    let inspector = Inspector::open_pid(pid, &mut warn)?;
    let debuggee = inspector.debug(&mut warn)?;
    Ok(debuggee.run(&repl::Options { commands, batch })?)
}

pub fn debug(path: &Path, exe: Option<&Path>, commands: Vec<String>, batch: bool) -> Result<u8> {
    let inspector = Inspector::open_core(path, exe, &mut warn)?;
    let debuggee = inspector.debug(&mut warn)?;
    Ok(debuggee.run(&repl::Options { commands, batch })?)
}
