//! `goat stacks`: every goroutine of a live process or a core, printed.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use goat::goruntime;
use goat::inspect::{Inspector, OpenOptions, Stacks, StacksMode};
use goat::report;

use super::warn;

/// `--mode`: how a live process is read.
#[derive(Clone, Copy, Default, clap::ValueEnum)]
pub enum StacksModeArg {
    /// Copied while it runs; stopped only to re-read what changed.
    #[default]
    Precopy,
    /// Stopped for the whole copy.
    Stop,
}

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

/// `goat stacks --core FILE`: the same dump, from a core file.
pub fn stacks_core(
    path: &Path,
    exe_arg: Option<&Path>,
    opts: &OpenOptions,
    format: Format,
    stats: bool,
) -> Result<u8> {
    let inspector = Inspector::open_core_with(path, exe_arg, opts, &mut warn)?;
    let mut st = inspector.stacks()?;
    print(&mut st, format)?;
    if stats {
        eprintln!(
            "goat: core of pid {}: {} goroutines, {} threads, {} bytes read\ngoat: {}",
            inspector.pid().map_or("?".to_string(), |p| p.to_string()),
            st.dump.goroutines.len(),
            st.threads,
            st.bytes,
            st.phases,
        );
    }
    Ok(0)
}

/// `goat stacks PID`.
pub fn stacks(
    pid: i32,
    opts: &OpenOptions,
    format: Format,
    stats: bool,
    mode: StacksMode,
) -> Result<u8> {
    let mut st = Inspector::open_pid_with(pid, opts, &mut warn)?.stacks_with(mode, &mut warn)?;
    print(&mut st, format)?;
    if stats {
        print_stats(&st);
    }
    Ok(0)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `--stats` of a live process: the pauses, what was copied when, the
/// phases.
fn print_stats(st: &Stacks) {
    let paused = st.stopped_for.unwrap_or_default();
    let mode = st.mode.map_or("?", |m| m.name());
    eprintln!(
        "goat: target stopped for {:.2} ms (the longest stop; {mode} mode): {} goroutines, {} threads, {} bytes copied",
        ms(paused),
        st.dump.goroutines.len(),
        st.threads,
        st.bytes,
    );
    if let Some(p) = &st.precopy {
        let s = &p.stats;
        eprintln!(
            "goat: pauses: setup {:.2} ms, final {:.2} ms (scan {:.2}, re-read {:.2}, capture {:.2}); \
             copied {} bytes running, {} bytes stopped; {} bytes tracked; pages re-read: {} running, \
             {} stopped; {} ranges read in the stop",
            ms(p.setup_pause),
            ms(p.final_pause),
            ms(s.scan),
            ms(s.reread),
            ms(s.plan),
            s.running_bytes,
            s.stopped_bytes,
            s.tracked_bytes,
            s.pages_rewritten_running,
            s.pages_rewritten_stopped,
            s.ranges_fetched_stopped,
        );
        if let Some(why) = &s.full_capture {
            eprintln!("goat: the final stop took a full stop capture: {why}");
        }
    }
    eprintln!("goat: {}", st.phases);
}

/// Prints the dump, timed as the "write" phase.
fn print(st: &mut Stacks, format: Format) -> Result<()> {
    write_dump(&st.dump, format)?;
    st.phases.mark("write");
    Ok(())
}
