//! `goat stacks`: every goroutine of a live process or a core, printed as
//! it is decoded (never all held at once), or written as a goroutine
//! profile (`--pprof`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use goat::inspect::{Inspector, OpenOptions, StacksMode, StacksWritten};
use goat::report;

use super::warn;

/// `--mode`: how a live process is read (without it, whichever stops it
/// for less).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum StacksModeArg {
    /// Copied while it runs; stopped only to re-read what changed.
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

impl Format {
    fn report(self) -> report::Format {
        match self {
            Format {
                json: true,
                group: true,
            } => report::Format::GroupedJson,
            Format { json: true, .. } => report::Format::Json,
            Format { group: true, .. } => report::Format::Grouped,
            _ => report::Format::Text,
        }
    }
}

/// Where the goroutines go.
pub enum Output {
    /// Printed to stdout.
    Print(Format),
    /// A goroutine profile written to `dest` (replacing a regular file
    /// there only with `force`).
    Pprof { dest: PathBuf, force: bool },
}

/// `goat stacks --core FILE`: the same dump, from a core file.
pub fn stacks_core(
    path: &Path,
    exe_arg: Option<&Path>,
    opts: &OpenOptions,
    format: &Output,
    stats: bool,
) -> Result<u8> {
    let inspector = Inspector::open_core_with(path, exe_arg, opts, &mut warn)?;
    // A core has no modes.
    let (st, direct) = write(&inspector, format, StacksMode::Stop)?;
    if stats {
        goat::eprintln_quiet!(
            "goat: core of pid {}: {} goroutines, {} threads, {} bytes read\ngoat: {}",
            inspector.pid().map_or("?".to_string(), |p| p.to_string()),
            st.goroutines,
            st.read.threads,
            st.read.bytes,
            st.read.phases,
        );
        print_direct_note(direct);
    }
    Ok(0)
}

/// `goat stacks PID`.
pub fn stacks(
    pid: i32,
    opts: &OpenOptions,
    format: &Output,
    stats: bool,
    mode: StacksMode,
) -> Result<u8> {
    let inspector = Inspector::open_pid_with(pid, opts, &mut warn)?;
    let (st, direct) = write(&inspector, format, mode)?;
    if stats {
        print_stats(&st);
        print_direct_note(direct);
    }
    Ok(0)
}

/// What `goat stacks` gathers small writes to stdout in.
const STDOUT_BUFFER: usize = 64 << 10;

/// Reads every goroutine and prints it to stdout as it is decoded, or
/// writes the profile.
/// Also whether the dump went to a file with `O_DIRECT`.
fn write(
    inspector: &Inspector,
    output: &Output,
    mode: StacksMode,
) -> Result<(StacksWritten, bool)> {
    let format = match output {
        Output::Print(format) => *format,
        Output::Pprof { dest, force } => {
            return Ok((write_pprof(inspector, dest, *force, mode)?, false))
        }
    };
    let stdout = io::stdout();
    // A regular file gets the dump with `O_DIRECT` (`outfile/direct.rs`):
    // through the page cache, writing it cost as much as decoding it.
    if let Some(mut file) = goat::outfile::direct::DirectFile::over(stdout.lock()) {
        let st = inspector.write_stacks(&mut file, format.report(), mode, &mut warn)?;
        let direct = file.finish().context("writing the dump")?;
        return Ok((st, direct));
    }
    // Chunks arrive as buffers of about a MiB (256 goroutines), and a
    // `BufWriter` passes a write at least its capacity straight through:
    // a MiB of buffer here copied most chunks into it once more (400 MB
    // at 100k goroutines, a twentieth of decoding's CPU). It gathers the
    // small writes only.
    let mut out = io::BufWriter::with_capacity(STDOUT_BUFFER, stdout.lock());
    let st = inspector.write_stacks(&mut out, format.report(), mode, &mut warn)?;
    out.flush().context("writing the dump")?;
    Ok((st, false))
}

/// `--stats`' line on how the dump was written, when to a file directly.
fn print_direct_note(direct: bool) {
    if direct {
        goat::eprintln_quiet!("goat: the dump went to its file with O_DIRECT, past the page cache");
    }
}

/// `--pprof FILE`: the profile into a 0600 temporary beside FILE (made
/// before the target is read, so a refused FILE stops nothing), renamed
/// into place once whole.
fn write_pprof(
    inspector: &Inspector,
    dest: &Path,
    force: bool,
    mode: StacksMode,
) -> Result<StacksWritten> {
    let tmp = goat::outfile::TempCore::create(dest, force)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, &tmp.file);
    let st = inspector.write_pprof(&mut out, mode, &mut warn)?;
    out.flush().context("writing the profile")?;
    drop(out);
    tmp.commit()
        .with_context(|| format!("writing {}", dest.display()))?;
    goat::eprintln_quiet!(
        "goat: {} goroutines profiled in {} (go tool pprof reads it)",
        st.goroutines,
        goat::stdio::shown_path(dest),
    );
    Ok(st)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `--stats` of a live process: the pauses, what was copied when, the
/// phases.
fn print_stats(written: &StacksWritten) {
    let st = &written.read;
    let paused = st.stopped_for.unwrap_or_default();
    let mode = st.mode.map_or("?", |m| m.name());
    goat::eprintln_quiet!(
        "goat: target stopped for {:.2} ms (the longest stop; {mode} mode): {} goroutines, {} threads, {} bytes copied",
        ms(paused),
        written.goroutines,
        st.threads,
        st.bytes,
    );
    if !st.stops.is_empty() {
        goat::eprintln_quiet!("goat: {}", super::stop_times(&st.stops));
    }
    if let Some(choice) = &st.choice {
        eprintln!("goat: {choice}");
    }
    if let Some(p) = &st.precopy {
        let s = &p.stats;
        goat::eprintln_quiet!(
            "goat: pauses: setup {:.2} ms, final {:.2} ms (scan {:.2}, re-read {:.2}, capture {:.2}); \
             copied {} bytes running, {} bytes stopped; {} bytes tracked; pages re-read: {} running, \
             {} stopped; {} ranges read in the stop; {} rounds of re-reading while running{}{}",
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
            s.running_rounds,
            match s.recopies {
                0 => String::new(),
                n => format!(
                    " ({n} of them found much of the copy written, and copied it anew)"
                ),
            },
            goat::goruntime::gcphase::marks_note(&s.gc_marks),
        );
        goat::eprintln_quiet!("goat: the running copy was kept {}", s.kept);
        if let Some(n) = s.redecided {
            goat::eprintln_quiet!(
                "goat: the final capture reused the running plan: {n} goroutines decided again"
            );
        }
        if let Some(why) = &s.full_capture {
            goat::eprintln_quiet!("goat: the final stop took a full stop capture: {why}");
        }
        for h in &p.helpers {
            goat::eprintln_quiet!("goat: {h}");
        }
    }
    goat::eprintln_quiet!("goat: {}", st.phases);
}
