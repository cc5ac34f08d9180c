//! `goat attach` and `goat debug`: the interactive session over a live
//! process or a core.

use std::path::Path;

use anyhow::Result;

use goat::repl;
use goat::target::guardian::Guardian;
use goat::target::{read_mappings, set_session_interrupts, LiveProcess};

use super::open::{open_core, open_program};

pub fn attach(pid: i32, commands: Vec<String>, batch: bool) -> Result<u8> {
    let (prog, exe) = open_program(pid)?;
    let live = LiveProcess::attach(pid)?;
    // Restores the int3 bytes should goat die while the target runs under
    // breakpoints; without it the session works, only less safely.
    match Guardian::spawn(pid) {
        Ok(g) => live.set_arm_observer(Box::new(g))?,
        Err(e) => eprintln!("goat: no guardian process ({e}); breakpoints would stay behind if goat were killed while the program runs"),
    }
    let bias = prog.load_bias(&read_mappings(pid), &exe)?;
    let backend = repl::LiveBackend::stop(&live)?;
    let mut session = repl::Session::new(&prog, Box::new(backend), bias)?;
    // Ctrl-C stops a running `continue` instead of ending the session.
    set_session_interrupts(true);
    let code = repl::run(&mut session, &repl::Options { commands, batch });
    set_session_interrupts(false);
    // Resumes every thread, then detaches.
    drop(session);
    drop(live);
    Ok(code)
}

pub fn debug(path: &Path, exe: Option<&Path>, commands: Vec<String>, batch: bool) -> Result<u8> {
    let (core, prog, bias) = open_core(path, exe)?;
    let backend = repl::CoreBackend::new(core);
    let mut session = repl::Session::new(&prog, Box::new(backend), bias)?;
    Ok(repl::run(&mut session, &repl::Options { commands, batch }))
}
