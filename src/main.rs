//! The `goat` command line: argument handling and exit codes only.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{ArgGroup, Parser, Subcommand};

use goat::binary::{self, Binary};
use goat::goruntime::{self, GoProgram};
use goat::snapshot;
use goat::target::{
    preflight, read_mappings, AttachError, CoreError, CoreFile, LiveProcess, Target,
};
use goat::{repl, report};

/// Look inside running Go programs without stopping them for long.
#[derive(Parser)]
#[command(name = "goat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Say whether goat can attach to PID, and what to run if not.
    Check { pid: i32 },
    /// Print every goroutine's stack, as the Go runtime's SIGQUIT dump does.
    #[command(group(ArgGroup::new("target").required(true).args(["pid", "core"])))]
    Stacks {
        /// The process to look at.
        pid: Option<i32>,
        /// Read a core file (the kernel's or gdb's `gcore`) instead of a process.
        #[arg(long, value_name = "FILE")]
        core: Option<PathBuf>,
        /// The core's executable, when it is not where the core says it was.
        #[arg(long, value_name = "BINARY", requires = "core")]
        exe: Option<PathBuf>,
        /// One JSON document instead of text.
        #[arg(long, conflicts_with = "group")]
        json: bool,
        /// Collapse goroutines with identical stacks, biggest groups first.
        #[arg(long)]
        group: bool,
        /// Print how long the target was stopped and how much was read (stderr).
        #[arg(long)]
        stats: bool,
    },
    /// Debug PID interactively (Delve's commands). The process stays
    /// stopped until you quit or detach, then runs on untouched.
    Attach {
        pid: i32,
        /// Run CMD first (repeatable), then go interactive.
        #[arg(short = 'x', value_name = "CMD")]
        execute: Vec<String>,
        /// Run the -x commands (and stdin, when it is not a terminal), then detach.
        #[arg(long)]
        batch: bool,
    },
    /// Open a core file with the same commands as `attach` (post-mortem).
    Debug {
        core: PathBuf,
        /// The executable, when the one the core names is not on this machine.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Run CMD first (repeatable), then go interactive.
        #[arg(short = 'x', value_name = "CMD")]
        execute: Vec<String>,
        /// Run the -x commands (and stdin, when it is not a terminal), then quit.
        #[arg(long)]
        batch: bool,
    },
    /// Write an ELF core of PID (for gdb and `dlv core`) and leave it running.
    Core {
        pid: i32,
        /// Where to write it (default: core.PID in the current directory).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// `fork`: stop only to clone a frozen copy, dump that while the
        /// target runs on (falls back to `stop` when cloning is unsafe or
        /// fails); `stop`: keep the target stopped for the whole write.
        #[arg(long, value_enum, default_value = "fork")]
        mode: CoreMode,
        /// Replace an existing file at the destination.
        #[arg(long)]
        force: bool,
        /// Print the pause, bytes written and time taken (stderr).
        #[arg(long)]
        stats: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CoreMode {
    Fork,
    Stop,
}

/// Distinct exit codes, so scripts can tell failures apart.
mod exit {
    pub const FAILURE: u8 = 1;
    pub const NO_SUCH_PROCESS: u8 = 3;
    pub const PERMISSION: u8 = 4;
    pub const NOT_GO: u8 = 5;
    pub const ALREADY_TRACED: u8 = 6;
    pub const NOT_ATTACHABLE: u8 = 7;
    pub const SELF: u8 = 8;
    pub const EXITED: u8 = 9;
    pub const CHECK_FAILED: u8 = 10;
    pub const NOT_CORE: u8 = 11;
    pub const BAD_CORE: u8 = 12;
    pub const NO_EXECUTABLE: u8 = 13;
}

fn main() -> ExitCode {
    if let Err(e) = goat::target::install_detach_on_signals() {
        eprintln!("goat: warning: cannot guard against signals: {e}");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { pid } => check(pid),
        Command::Stacks {
            pid,
            core,
            exe,
            json,
            group,
            stats,
        } => {
            let format = Format { json, group };
            match (pid, core) {
                (_, Some(core)) => stacks_core(&core, exe.as_deref(), format, stats),
                (Some(pid), None) => stacks(pid, format, stats),
                // clap requires one of them.
                (None, None) => Err(anyhow::anyhow!("give a PID or --core FILE")),
            }
        }
        Command::Attach {
            pid,
            execute,
            batch,
        } => attach(pid, execute, batch),
        Command::Debug {
            core,
            exe,
            execute,
            batch,
        } => debug(&core, exe.as_deref(), execute, batch),
        Command::Core {
            pid,
            output,
            mode,
            force,
            stats,
        } => core(pid, output, mode, force, stats),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit_code(&err);
            eprintln!("goat: {err:#}");
            ExitCode::from(code)
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<AttachError>() {
        return match e {
            AttachError::NoSuchProcess { .. } => exit::NO_SUCH_PROCESS,
            AttachError::PermissionDenied { .. } => exit::PERMISSION,
            AttachError::AlreadyTraced { .. } => exit::ALREADY_TRACED,
            AttachError::Zombie { .. } | AttachError::KernelThread { .. } => exit::NOT_ATTACHABLE,
            AttachError::SelfAttach => exit::SELF,
            AttachError::Exited { .. } => exit::EXITED,
            _ => exit::FAILURE,
        };
    }
    if err.downcast_ref::<NotGo>().is_some() {
        return exit::NOT_GO;
    }
    if let Some(e) = err.downcast_ref::<CoreError>() {
        return match e {
            CoreError::NotCore { .. } => exit::NOT_CORE,
            CoreError::Truncated { .. } | CoreError::Malformed { .. } => exit::BAD_CORE,
            CoreError::Io { .. } => exit::FAILURE,
        };
    }
    if err.downcast_ref::<NoExecutable>().is_some() {
        return exit::NO_EXECUTABLE;
    }
    exit::FAILURE
}

/// The executable is not a Go program goat can read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotGo(String);

/// The core's executable cannot be found.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoExecutable(String);

fn inspect_exe(path: &std::path::Path) -> std::result::Result<preflight::ExeInfo, String> {
    let info = binary::inspect(path).map_err(|e| e.to_string())?;
    Ok(preflight::ExeInfo {
        go_version: info.go_version,
        has_dwarf: info.has_dwarf,
        has_pclntab: info.has_pclntab,
    })
}

fn check(pid: i32) -> Result<u8> {
    let report = preflight::check(pid, &inspect_exe);
    print!("{report}");
    Ok(if report.ok() { 0 } else { exit::CHECK_FAILED })
}

/// Refuses targets that are not there, not attachable or not Go before any
/// ptrace call, so the common mistakes get a plain answer and the target is
/// never touched.
fn open_program(pid: i32) -> Result<(GoProgram, PathBuf)> {
    preflight::refuse_early(pid)?;
    let exe_link = PathBuf::from(format!("/proc/{pid}/exe"));
    let exe = match std::fs::read_link(&exe_link) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let advice = preflight::permission_advice(pid);
            return Err(AttachError::PermissionDenied { pid, advice }.into());
        }
        Err(_) => return Err(AttachError::Exited { pid }.into()),
    };
    if exe.to_string_lossy().ends_with(" (deleted)") {
        eprintln!(
            "goat: warning: {} was replaced or removed since pid {pid} started; reading the running executable through {}",
            exe.display(),
            exe_link.display()
        );
    }
    let not_go = |e: &dyn std::fmt::Display| {
        NotGo(format!(
            "{} (pid {pid}) is not a Go program goat can read: {e}",
            exe.display()
        ))
    };
    let bin = Binary::open(&exe_link).map_err(|e| not_go(&e))?;
    let prog = GoProgram::load(bin).map_err(|e| not_go(&e))?;
    Ok((prog, exe))
}

/// How to print a dump.
#[derive(Clone, Copy)]
struct Format {
    json: bool,
    group: bool,
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
/// executable is `--exe`, else the one the core names.
/// Opens a core and the executable it names (or `exe_arg`), ready to read:
/// the core, the program and the load bias.
fn open_core(path: &Path, exe_arg: Option<&Path>) -> Result<(CoreFile, GoProgram, u64)> {
    let mut core = CoreFile::open(path)?;
    let named = core.executable();
    let exe = match (exe_arg, &named) {
        (Some(e), _) => e.to_path_buf(),
        (None, Some(n)) if n.exists() => n.clone(),
        (None, Some(n)) => {
            return Err(NoExecutable(format!(
                "the core names {} as its executable but it is not on this machine: pass --exe",
                n.display()
            ))
            .into())
        }
        (None, None) => {
            return Err(NoExecutable(format!(
                "{} does not name its executable: pass --exe",
                path.display()
            ))
            .into())
        }
    };
    if let (Some(e), Some(n)) = (exe_arg, &named) {
        core.use_file(n, e);
    }
    let not_go = |e: &dyn std::fmt::Display| {
        NotGo(format!(
            "{} is not a Go program goat can read: {e}",
            exe.display()
        ))
    };
    let bin = Binary::open(&exe).map_err(|e| not_go(&e))?;
    let prog = GoProgram::load(bin).map_err(|e| not_go(&e))?;
    if let Some(n) = &named {
        warn_if_different(&core, n, prog.binary(), &exe);
    }
    let bias = match &named {
        Some(n) => prog.load_bias(core.mappings(), n)?,
        None if !prog.binary().is_pie() => 0,
        None => prog.load_bias(core.mappings(), &exe)?,
    };
    Ok((core, prog, bias))
}

fn stacks_core(path: &Path, exe_arg: Option<&Path>, format: Format, stats: bool) -> Result<u8> {
    let mut clock = Phases::start();
    let (core, prog, bias) = open_core(path, exe_arg)?;
    clock.mark("load");
    // A core has no clock: how long goroutines have waited is unknown.
    let globals = prog.locate(&core, bias)?;
    let capture = prog.capture(&core, &globals, None, goruntime::Capture::default())?;
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

/// Warns (one line) when the executable's first page differs from the one
/// the core holds for the file it names: likely a different build.
fn warn_if_different(core: &CoreFile, named: &Path, bin: &Binary, exe: &Path) {
    let named_str = named.to_string_lossy();
    let Some(first) = core
        .mappings()
        .iter()
        .filter(|m| {
            m.offset == 0
                && m.path
                    .as_deref()
                    .is_some_and(|p| p.trim_end_matches(" (deleted)") == named_str)
        })
        .min_by_key(|m| m.start)
    else {
        return;
    };
    let want = &bin.data()[..bin.data().len().min(4096)];
    let mut got = vec![0u8; want.len()];
    // Only what the core itself holds (the kernel dumps an ELF's first page).
    if core.read_dumped(first.start, &mut got).is_ok() && got != want {
        eprintln!(
            "goat: warning: {} differs from the executable the core was taken of ({}): frames may be wrong",
            exe.display(),
            named.display()
        );
    }
}

fn stacks(pid: i32, format: Format, stats: bool) -> Result<u8> {
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
    let capture = prog.capture(&stopped, &globals, goruntime::monotonic_now(), capture);
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

fn attach(pid: i32, commands: Vec<String>, batch: bool) -> Result<u8> {
    let (prog, exe) = open_program(pid)?;
    let live = LiveProcess::attach(pid)?;
    let bias = prog.load_bias(&read_mappings(pid), &exe)?;
    let backend = repl::LiveBackend::stop(&live)?;
    let mut session = repl::Session::new(&prog, Box::new(backend), bias)?;
    let code = repl::run(&mut session, &repl::Options { commands, batch });
    // Resumes every thread, then detaches.
    drop(session);
    drop(live);
    Ok(code)
}

fn debug(path: &Path, exe: Option<&Path>, commands: Vec<String>, batch: bool) -> Result<u8> {
    let (core, prog, bias) = open_core(path, exe)?;
    let backend = repl::CoreBackend::new(core);
    let mut session = repl::Session::new(&prog, Box::new(backend), bias)?;
    Ok(repl::run(&mut session, &repl::Options { commands, batch }))
}

fn core(pid: i32, output: Option<PathBuf>, mode: CoreMode, force: bool, stats: bool) -> Result<u8> {
    preflight::refuse_early(pid)?;
    let dest = output.unwrap_or_else(|| PathBuf::from(format!("core.{pid}")));
    // Refuse before touching the target; checked again when the file is saved.
    snapshot::output::check_dest(&dest, force).context("not writing the core")?;
    let live = LiveProcess::attach(pid)?;
    let opts = snapshot::CoreOptions {
        dest: dest.clone(),
        mode: match mode {
            CoreMode::Fork => snapshot::Mode::Fork,
            CoreMode::Stop => snapshot::Mode::Stop,
        },
        force,
        hold: hold_duration(),
    };
    let result = snapshot::write_core(&live, &opts);
    drop(live);
    let st = result?;
    if let Some(why) = &st.fallback {
        eprintln!("goat: fork mode unavailable ({why}); kept the target stopped instead");
    }
    eprintln!("goat: wrote {}", dest.display());
    if stats {
        let mode = match st.mode {
            Some(snapshot::Mode::Fork) => "fork",
            _ => "stop",
        };
        eprintln!(
            "goat: mode {mode}: target stopped for {:.2} ms (+{:.2} ms to reap the copy), {} threads, {} segments\n\
             goat: {} bytes written, file {} bytes, {} bytes on disk, {} unreadable pages; {:.1} ms in all",
            st.pause.as_secs_f64() * 1e3,
            st.reap_pause.as_secs_f64() * 1e3,
            st.threads,
            st.segments,
            st.bytes_written,
            st.file_len,
            st.disk_bytes,
            st.unreadable_pages,
            st.total.as_secs_f64() * 1e3,
        );
    }
    Ok(0)
}

/// Wall-clock time per phase, for `--stats`.
struct Phases {
    start: Instant,
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

impl Phases {
    fn start() -> Phases {
        let now = Instant::now();
        Phases {
            start: now,
            last: now,
            marks: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.marks
            .push((phase, (now - self.last).as_secs_f64() * 1e3));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} ms in all (",
            (self.last - self.start).as_secs_f64() * 1e3
        )?;
        for (i, (phase, ms)) in self.marks.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{phase} {ms:.1}")?;
        }
        write!(f, ")")
    }
}

/// Keeps the target stopped a while when `GOAT_TEST_HOLD_STOPPED_MS` is set,
/// so tests can kill goat at the worst moment and check the target survives.
fn hold_for_tests() {
    if let Some(d) = hold_duration() {
        std::thread::sleep(d);
    }
}

fn hold_duration() -> Option<std::time::Duration> {
    std::env::var("GOAT_TEST_HOLD_STOPPED_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
}
