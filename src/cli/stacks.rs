//! `goat stacks`: every goroutine of a live process or a core, printed as
//! it is decoded (never all held at once).

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use goat::inspect::{Inspector, OpenOptions, StacksWritten};
use goat::report;

use super::warn;

/// How to print a dump.
#[derive(Clone, Copy)]
pub struct Format {
    pub json: bool,
    pub group: bool,
}

impl Format {
    fn report(self) -> report::Format {
        match self {
            Format { json: true, .. } => report::Format::Json,
            Format { group: true, .. } => report::Format::Grouped,
            _ => report::Format::Text,
        }
    }
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
    let st = write(&inspector, format)?;
    if stats {
        eprintln!(
            "goat: core of pid {}: {} goroutines, {} threads, {} bytes read\ngoat: {}",
            inspector.pid().map_or("?".to_string(), |p| p.to_string()),
            st.goroutines,
            st.threads,
            st.bytes,
            st.phases,
        );
    }
    Ok(0)
}

/// `goat stacks PID`.
pub fn stacks(pid: i32, opts: &OpenOptions, format: Format, stats: bool) -> Result<u8> {
    let st = write(&Inspector::open_pid_with(pid, opts, &mut warn)?, format)?;
    if stats {
        let paused = st.stopped_for.unwrap_or_default();
        eprintln!(
            "goat: target stopped for {:.2} ms: {} goroutines, {} threads, {} bytes copied\ngoat: {}",
            paused.as_secs_f64() * 1e3,
            st.goroutines,
            st.threads,
            st.bytes,
            st.phases,
        );
    }
    Ok(0)
}

/// Reads and prints every goroutine to stdout as it is decoded.
fn write(inspector: &Inspector, format: Format) -> Result<StacksWritten> {
    let stdout = io::stdout();
    // Chunks arrive as large buffers: a big buffer here saves syscalls.
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let st = inspector.write_stacks(&mut out, format.report())?;
    out.flush().context("writing the dump")?;
    Ok(st)
}
