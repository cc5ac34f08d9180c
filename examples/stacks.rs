//! Every goroutine of a running Go program, through goat as a library:
//! `cargo run --example stacks -- PID` (or `-- --core CORE [EXE]`).
//! With `STREAM=1` in the environment, the dump is written as `goat stacks`
//! writes it, decoded and written a chunk at a time (never all held).
//!
//! The process is stopped only while its goroutines are copied, then runs
//! on; the decoding happens after.

use std::path::Path;
use std::process::ExitCode;

use goat::inspect::{InspectError, Inspector};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stacks: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut warn = |w| eprintln!("stacks: warning: {w}");
    let inspector = match args {
        [flag, core, rest @ ..] if flag == "--core" => {
            Inspector::open_core(Path::new(core), rest.first().map(Path::new), &mut warn)
        }
        [pid] => Inspector::open_pid(pid.parse()?, &mut warn),
        _ => return Err("usage: stacks PID | stacks --core CORE [EXE]".into()),
    }
    .map_err(explain)?;
    if std::env::var_os("STREAM").is_some() {
        // The SIGQUIT layout, decoded and written in parallel chunks; a
        // live process read in the mode with the shorter pause for its
        // size (`goat stacks`' default).
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let written = inspector
            .write_stacks(
                &mut out,
                goat::report::Format::Text,
                goat::inspect::StacksMode::Auto,
                &mut warn,
            )
            .map_err(explain)?;
        std::io::Write::flush(&mut out)?;
        eprintln!(
            "{} goroutines ({})",
            written.goroutines, written.read.phases
        );
        return Ok(());
    }
    let stacks = inspector.stacks().map_err(explain)?;
    for g in &stacks.dump.goroutines {
        let top = g.frames.first().map_or("?", |f| &*f.function);
        println!("goroutine {} [{}]: {top}", g.id, g.status);
    }
    if let Some(paused) = stacks.read.stopped_for {
        eprintln!(
            "stopped for {:.2} ms ({})",
            paused.as_secs_f64() * 1e3,
            stacks.read.phases
        );
    }
    Ok(())
}

/// The error's causes, one after the other, as goat's CLI prints them.
fn explain(e: InspectError) -> Box<dyn std::error::Error> {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text.into()
}
