//! `goat stacks`: every goroutine of a live process or a core, printed.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use goat::goruntime;
use goat::inspect::{Inspector, OpenOptions, Stacks};
use goat::report;

use super::warn;

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
pub fn stacks(pid: i32, opts: &OpenOptions, format: Format, stats: bool) -> Result<u8> {
    let mut st = Inspector::open_pid_with(pid, opts, &mut warn)?.stacks()?;
    print(&mut st, format)?;
    if stats {
        let paused = st.stopped_for.unwrap_or_default();
        eprintln!(
            "goat: target stopped for {:.2} ms: {} goroutines, {} threads, {} bytes copied\ngoat: {}",
            paused.as_secs_f64() * 1e3,
            st.dump.goroutines.len(),
            st.threads,
            st.bytes,
            st.phases,
        );
    }
    Ok(0)
}

/// Prints the dump, timed as the "write" phase.
fn print(st: &mut Stacks, format: Format) -> Result<()> {
    write_dump(&st.dump, format)?;
    st.phases.mark("write");
    Ok(())
}
