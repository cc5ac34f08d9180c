//! `goat stacks`: every goroutine of a live process or a core.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use goat::goruntime;
use goat::process::read_mappings;
use goat::report;
use goat::tracer::LiveProcess;

use super::open::{open_core, open_program};
use super::phases::{hold_for_tests, Phases};

/// How to print a dump.
#[derive(Clone, Copy)]
pub struct Format {
    pub json: bool,
    pub group: bool,
}

fn write_dump(dump: &goruntime::Dump, format: Format) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if format.json {
        report::write_json(&mut out, dump)?;
    } else if format.group {
        report::write_grouped(&mut out, dump)?;
    } else {
        report::write_text(&mut out, dump)?;
    }
    out.flush().context("writing the dump")
}

/// `goat stacks --core FILE`: the same dump, from a core file. The
pub fn stacks_core(path: &Path, exe_arg: Option<&Path>, format: Format, stats: bool) -> Result<u8> {
    let mut clock = Phases::start();
    let (core, prog, bias) = open_core(path, exe_arg)?;
    clock.mark("load");
    // Only goat's cores record the clock at the stop; without it, how long
    // goroutines have waited is unknown and not shown.
    let globals = prog.locate(&core, bias)?;
    let now = core.monotonic_at_stop();
    let capture = prog.capture(&core, &globals, now, goruntime::Capture::default())?;
    clock.mark("read");
    let dump = prog.decode(&capture, bias)?;
    clock.mark("decode");
    write_dump(&dump, format)?;
    clock.mark("write");
    if stats {
        eprintln!(
            "goat: core of pid {}: {} goroutines, {} threads, {} bytes read\ngoat: {}",
            core.pid().map_or("?".to_string(), |p| p.to_string()),
            dump.goroutines.len(),
            capture.threads.len(),
            capture.bytes,
            clock,
        );
    }
    Ok(0)
}

pub fn stacks(pid: i32, format: Format, stats: bool) -> Result<u8> {
    let mut clock = Phases::start();
    let (prog, exe) = open_program(pid)?;
    clock.mark("load");
    let live = LiveProcess::attach(pid)?;
    // Everything that can be done with the target running is done first.
    let bias = prog.load_bias(&read_mappings(pid), &exe)?;
    let globals = prog.locate(live.memory(), bias)?;
    let capture = prog.prepare_capture(live.memory(), &globals);
    clock.mark("prepare");
    let stopped = live.stop()?;
    let capture = prog.capture(&stopped, &globals, goruntime::monotonic_now(pid), capture);
    hold_for_tests();
    let paused = stopped.stopped_for();
    stopped.resume()?;
    drop(live);
    clock.mark("stop");
    let capture = capture?;
    let dump = prog.decode(&capture, bias)?;
    clock.mark("decode");

    write_dump(&dump, format)?;
    clock.mark("write");
    if stats {
        eprintln!(
            "goat: target stopped for {:.2} ms: {} goroutines, {} threads, {} bytes copied\ngoat: {}",
            paused.as_secs_f64() * 1e3,
            dump.goroutines.len(),
            capture.threads.len(),
            capture.bytes,
            clock,
        );
    }
    Ok(0)
}
