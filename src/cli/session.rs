//! `goat attach` and `goat debug`: the interactive session over a live
//! process or a core.

use std::path::Path;

use anyhow::Result;

use goat::process::read_mappings;
use goat::repl;
use goat::tracer::{set_session_interrupts, LiveProcess};

use super::open::{open_core, open_program};

pub fn attach(pid: i32, commands: Vec<String>, batch: bool) -> Result<u8> {
    let (prog, exe) = open_program(pid)?;
    // The tracer is a process of its own, which takes the breakpoints out
    // and detaches should goat die (see tracer/remote.rs).
    let (live, note) = LiveProcess::attach_for_session(pid)?;
    if let Some(note) = note {
        eprintln!("goat: warning: {note}");
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
