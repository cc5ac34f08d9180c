//! The `goat` command line: argument handling and exit codes only.

// See src/lib.rs: every `unsafe` block says what makes it sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{ArgGroup, Parser, Subcommand};

use cli::core::{core, CoreMode};
use cli::session::{attach, debug};
use cli::stacks::{stacks, stacks_core, Format, Output, StacksModeArg};
use goat::binary::{BinaryError, SymbolsError};
use goat::corefile::CoreError;
use goat::goruntime::GoError;
use goat::inspect::{InspectError, OpenOptions, StacksMode};
use goat::tracer::AttachError;

/// Look inside running Go programs without stopping them for long.
#[derive(Parser)]
#[command(name = "goat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `stacks` and `why` read: a process, or a core and its executable.
#[derive(clap::Args)]
struct TargetArgs {
    /// The process to look at.
    pid: Option<i32>,
    /// Read a core file (the kernel's, gdb's `gcore`, goat's) instead of a process.
    #[arg(long, value_name = "FILE")]
    core: Option<PathBuf>,
    /// The core's executable, when it is not where the core says it was.
    #[arg(long, value_name = "BINARY", requires = "core")]
    exe: Option<PathBuf>,
    /// Take symbols and DWARF from FILE: an unstripped rebuild of the
    /// same source, or a debug file; refused unless it matches.
    #[arg(long, value_name = "FILE")]
    symbols: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Say whether goat can attach to PID, and what to run if not.
    Check { pid: i32 },
    /// Print every goroutine's stack, as the Go runtime's SIGQUIT dump does.
    #[command(group(ArgGroup::new("target").required(true).args(["pid", "core"])))]
    Stacks {
        #[command(flatten)]
        target: TargetArgs,
        /// One JSON document instead of text (with --group, of the groups);
        /// docs/json.md describes it.
        #[arg(long)]
        json: bool,
        /// Collapse goroutines with identical stacks, biggest groups first.
        #[arg(long)]
        group: bool,
        /// Print how long the target was stopped and how much was read (stderr).
        #[arg(long)]
        stats: bool,
        /// Write a goroutine profile to FILE instead of the dump (gzipped
        /// profile.proto, as Go's own: `go tool pprof -top FILE`), a
        /// sample per distinct stack and pprof label set. FILE is made
        /// 0600 and never a symbolic link followed.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "group"])]
        pprof: Option<PathBuf>,
        /// Replace FILE of --pprof if it exists (a regular file only).
        #[arg(short, long, requires = "pprof")]
        force: bool,
        /// How a process is read: `precopy` copies while it runs and stops
        /// it only to re-read what changed (Linux 6.7+; else stop, with a
        /// warning), `stop` keeps it stopped for the whole copy. Without
        /// it, goat picks the one with the shorter pause from the program's
        /// size (stop for up to about a thousand goroutines; --stats says).
        #[arg(long, value_enum, value_name = "MODE")]
        mode: Option<StacksModeArg>,
    },
    /// Say what each waiting goroutine waits on, who could release it, the
    /// deadlock cycles among them, and which can never wake (Go 1.27's
    /// goroutine-leak rule, applied from outside to any release). A process
    /// is copied as `goat core --mode live` copies it (a pause of
    /// milliseconds) and analysed while it runs on.
    #[command(group(ArgGroup::new("target").required(true).args(["pid", "core"])))]
    Why {
        #[command(flatten)]
        target: TargetArgs,
        /// One JSON document instead of text; docs/why-json.md describes it.
        #[arg(long)]
        json: bool,
        /// Also write a goroutine profile (profile.proto, gzip) to FILE,
        /// labelled with each goroutine's wait, for `go tool pprof`.
        #[arg(long, value_name = "FILE")]
        pprof: Option<PathBuf>,
        /// Print how long the process was stopped, the time taken and each
        /// phase's wall and CPU time (stderr).
        #[arg(long)]
        stats: bool,
        /// Instead: read the goroutines twice, DURATION apart (`30s`, `5m`;
        /// the process runs in between), and list the `go` statements whose
        /// goroutine count grew, with both counts and what they wait on.
        #[arg(long, value_name = "DURATION", conflicts_with_all = ["core", "pprof"])]
        growth: Option<String>,
    },
    /// What holds the memory: live objects by type, the roots that retain
    /// the most, and how the biggest are reached. A live process is copied
    /// (stopped for milliseconds) and the copy analysed while it runs.
    #[command(group(ArgGroup::new("target").required(true).args(["pid", "core"])))]
    Heap {
        #[command(flatten)]
        target: TargetArgs,
        /// One JSON document instead of text; docs/heap-json.md describes it.
        #[arg(long)]
        json: bool,
        /// Rows of the histogram and of the roots shown in text.
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
        /// Also write a heap profile (profile.proto, gzip) to FILE whose
        /// stacks are reference chains, root at the bottom, for `go tool
        /// pprof` (inuse_objects, inuse_space).
        #[arg(long, value_name = "FILE")]
        pprof: Option<PathBuf>,
        /// Instead of the report: what grew since OLD.json (an earlier
        /// `goat heap --json`), by type and by root.
        #[arg(long, value_name = "OLD.json")]
        diff: Option<PathBuf>,
        /// Print how long the process was stopped and the time taken (stderr).
        #[arg(long)]
        stats: bool,
    },
    /// Internal: started by `attach` to take breakpoints out of PID if goat
    /// dies while they are in place (reads goat's messages on stdin).
    #[command(hide = true)]
    Guardian { pid: i32 },
    /// Internal: started by `attach` to trace PID in a process of its own,
    /// which outlives goat (requests on stdin, replies on stdout).
    #[command(hide = true)]
    Tracer { pid: i32 },
    /// Debug PID interactively (Delve's commands). The process stays
    /// stopped until you quit or detach, then runs on untouched.
    Attach {
        pid: i32,
        /// Take symbols and DWARF from FILE: an unstripped rebuild of the
        /// same source, or a debug file; refused unless it matches.
        #[arg(long, value_name = "FILE")]
        symbols: Option<PathBuf>,
        /// Run CMD first (repeatable), then go interactive.
        #[arg(short = 'x', value_name = "CMD")]
        execute: Vec<String>,
        /// Run the -x commands (and stdin, when it is not a terminal), then detach.
        #[arg(long)]
        batch: bool,
    },
    /// Serve the Debug Adapter Protocol (as `dlv dap`): on stdin/stdout, or
    /// to one client at --listen. Editors attach with mode "local" and a
    /// processId; the process runs on untouched when they disconnect.
    Dap {
        /// Listen at ADDR (127.0.0.1:PORT) and print
        /// `DAP server listening at: ADDR`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Listen on an address that is not loopback: whoever reaches it
        /// can ptrace processes as goat's user.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Open a core file with the same commands as `attach` (post-mortem).
    /// `goat debug [EXE] CORE` as gdb and `dlv core` take them (either
    /// order; the core is told by its contents), so `coredumpctl debug
    /// --debugger=goat --debugger-arguments=debug` works. The core may be
    /// compressed as systemd-coredump keeps it (.zst, .lz4, .xz).
    Debug {
        #[arg(value_name = "[EXE] CORE", num_args = 1..=2, required = true)]
        files: Vec<PathBuf>,
        /// The executable, when the one the core names is not on this machine.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Take symbols and DWARF from FILE: an unstripped rebuild of the
        /// same source, or a debug file; refused unless it matches.
        #[arg(long, value_name = "FILE")]
        symbols: Option<PathBuf>,
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
        /// `live`: copy while the target runs, tracking its writes, and
        /// stop it only to re-copy the last of them (Linux 6.7+; no extra
        /// memory); `fork`: stop only to clone a frozen copy and dump that
        /// while the target runs on; `stop`: keep the target stopped for
        /// the whole write. Live falls back to fork, fork to stop, when
        /// they are unavailable or unsafe (the reason is printed).
        #[arg(long, value_enum, default_value = "live")]
        mode: CoreMode,
        /// Replace an existing regular file at the destination (never a
        /// symlink, FIFO, device or directory).
        #[arg(short = 'f', long)]
        force: bool,
        /// Print the pause, bytes written and time taken (stderr).
        #[arg(long)]
        stats: bool,
    },
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
    pub const WRONG_EXECUTABLE: u8 = 14;
    pub const UNKNOWN_LAYOUT: u8 = 15;
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(help_args(std::env::args_os()));
    if matches!(cli.command, Command::Heap { .. }) {
        return_large_blocks_on_free();
    }
    if let Command::Guardian { pid } = cli.command {
        // Its own process, not a debugger: none of goat's signal handling.
        return ExitCode::from(goat::tracer::guardian::run(pid) as u8);
    }
    if let Command::Tracer { pid } = cli.command {
        // Installs its own signal handling.
        return ExitCode::from(goat::tracer::remote::serve(pid) as u8);
    }
    if let Err(e) = goat::tracer::install_detach_on_signals() {
        goat::eprintln_quiet!("goat: warning: cannot guard against signals: {e}");
    }
    // Tests only: one "now" for wait times (see `tests/core_roundtrip.rs`).
    #[cfg(feature = "test-hooks")]
    if let Some(ns) = std::env::var("GOAT_TEST_MONOTONIC_NS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        goat::goruntime::fix_monotonic_now(ns);
    }
    let result = match cli.command {
        Command::Guardian { .. } | Command::Tracer { .. } => unreachable!("handled above"),
        Command::Check { pid } => check(pid),
        Command::Stacks {
            target:
                TargetArgs {
                    pid,
                    core,
                    exe,
                    symbols,
                },
            json,
            group,
            stats,
            pprof,
            force,
            mode,
        } => {
            let format = match pprof {
                Some(dest) => Output::Pprof { dest, force },
                None => Output::Print(Format { json, group }),
            };
            let opts = OpenOptions {
                symbols,
                ..Default::default()
            };
            match (pid, core, mode) {
                (_, Some(_), Some(_)) => Err(anyhow::anyhow!(
                    "--mode is for a live process: a core is read as it is, with no stop"
                )),
                (_, Some(core), None) => stacks_core(&core, exe.as_deref(), &opts, &format, stats),
                (Some(pid), None, mode) => {
                    let mode = match mode {
                        None => StacksMode::Auto,
                        Some(StacksModeArg::Precopy) => StacksMode::Precopy,
                        Some(StacksModeArg::Stop) => StacksMode::Stop,
                    };
                    stacks(pid, &opts, &format, stats, mode)
                }
                // clap requires one of them.
                (None, None, _) => Err(anyhow::anyhow!("give a PID or --core FILE")),
            }
        }
        Command::Why {
            target:
                TargetArgs {
                    pid,
                    core,
                    exe,
                    symbols,
                },
            json,
            pprof,
            stats,
            growth,
        } => {
            let args = cli::why::WhyArgs {
                json,
                pprof,
                stats,
                opts: OpenOptions {
                    symbols,
                    ..Default::default()
                },
            };
            match (pid, core.is_some(), growth) {
                (Some(pid), false, Some(every)) => cli::why::growth(pid, &every, &args),
                _ => cli::Source::of(pid, core.as_deref(), exe.as_deref())
                    .and_then(|source| cli::why::why(&source, &args)),
            }
        }
        Command::Heap {
            target:
                TargetArgs {
                    pid,
                    core,
                    exe,
                    symbols,
                },
            json,
            top,
            pprof,
            diff,
            stats,
        } => {
            let args = cli::heap::HeapArgs {
                json,
                top,
                pprof,
                diff,
                stats,
                opts: OpenOptions {
                    symbols,
                    ..Default::default()
                },
            };
            cli::Source::of(pid, core.as_deref(), exe.as_deref())
                .and_then(|source| cli::heap::heap(&source, &args))
        }
        Command::Dap {
            listen,
            allow_remote,
        } => match listen {
            // The debug console runs the terminal's commands.
            Some(addr) => goat::dap::listen(addr, allow_remote, &goat::repl::Console)
                .map(|()| 0)
                .map_err(Into::into),
            None => {
                goat::dap::stdio(&goat::repl::Console);
                Ok(0)
            }
        },
        Command::Attach {
            pid,
            symbols,
            execute,
            batch,
        } => attach(
            pid,
            &OpenOptions {
                symbols,
                ..Default::default()
            },
            execute,
            batch,
        ),
        Command::Debug {
            files,
            exe,
            symbols,
            execute,
            batch,
        } => debug(
            &files,
            exe,
            &OpenOptions {
                symbols,
                ..Default::default()
            },
            execute,
            batch,
        ),
        Command::Core {
            pid,
            output,
            mode,
            force,
            stats,
        } => core(pid, output, mode, force, stats),
    };
    // A SIGTERM or SIGHUP under way decides how goat ends (128+signo,
    // once every target is let go), not what it cut short.
    goat::tracer::hold_while_terminating();
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of goat's output went away (`goat stacks PID | head`):
        // what it wanted it has, and no one reads an error, so goat ends
        // quietly, as ripgrep does; the target was let go on the way out.
        Err(err) if goat::stdio::is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            goat::eprintln_quiet!("goat: {err:#}");
            ExitCode::from(code)
        }
    }
}

/// The arguments, with `-h`/`--help` after `help` dropped: clap's `help`
/// subcommand takes only command names, and `goat help --help` was a usage
/// error where every other spelling of a wish for help gives it.
fn help_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let args: Vec<_> = args.collect();
    if args.get(1).is_none_or(|a| a != "help") {
        return args;
    }
    let (head, rest) = args.split_at(2);
    head.iter()
        .chain(rest.iter().filter(|a| *a != "--help" && *a != "-h"))
        .cloned()
        .collect()
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<InspectError>() {
        return inspect_exit_code(e);
    }
    if let Some(e) = err.downcast_ref::<AttachError>() {
        return attach_exit_code(e);
    }
    exit::FAILURE
}

fn inspect_exit_code(err: &InspectError) -> u8 {
    match err {
        InspectError::Attach(e) => attach_exit_code(e),
        InspectError::NotGo { .. } => exit::NOT_GO,
        InspectError::Core(e) => match e {
            CoreError::NotCore { .. } => exit::NOT_CORE,
            CoreError::Truncated { .. }
            | CoreError::Malformed { .. }
            | CoreError::BadCompressed { .. } => exit::BAD_CORE,
            CoreError::UnpackRoom { .. } => exit::FAILURE,
            CoreError::Io { cause, .. } if cause.kind() == std::io::ErrorKind::PermissionDenied => {
                exit::PERMISSION
            }
            CoreError::Io { .. } => exit::FAILURE,
        },
        InspectError::WrongExecutable { .. } | InspectError::NoGoroutines { .. } => {
            exit::WRONG_EXECUTABLE
        }
        InspectError::ExecutableMissing { .. } | InspectError::ExecutableUnnamed { .. } => {
            exit::NO_EXECUTABLE
        }
        InspectError::Session(_) => exit::FAILURE,
        // A failed core write is a failure whatever its cause, the
        // tracer's included.
        InspectError::Go(GoError::UnknownLayout { .. }) => exit::UNKNOWN_LAYOUT,
        InspectError::Symbols(e) => match e {
            SymbolsError::NotGo { .. } => exit::NOT_GO,
            SymbolsError::Mismatch { .. } => exit::WRONG_EXECUTABLE,
            SymbolsError::Unreadable {
                cause: BinaryError::Io(_),
                ..
            } => exit::FAILURE,
            SymbolsError::Unreadable { .. } => exit::NOT_GO,
        },
        InspectError::Go(_)
        | InspectError::Heap(_)
        | InspectError::Snapshot(_)
        | InspectError::Destination(_)
        | InspectError::Spill { .. }
        | InspectError::Output(_)
        | InspectError::PrecopyMismatch(_) => exit::FAILURE,
    }
}

fn attach_exit_code(err: &AttachError) -> u8 {
    match err {
        AttachError::NoSuchProcess { .. } => exit::NO_SUCH_PROCESS,
        AttachError::PermissionDenied { .. } => exit::PERMISSION,
        AttachError::AlreadyTraced { .. } => exit::ALREADY_TRACED,
        AttachError::Zombie { .. } | AttachError::KernelThread { .. } => exit::NOT_ATTACHABLE,
        AttachError::SelfAttach => exit::SELF,
        AttachError::Exited { .. } | AttachError::Ended { .. } => exit::EXITED,
        _ => exit::FAILURE,
    }
}

fn check(pid: i32) -> Result<u8> {
    let report = goat::inspect::check(pid);
    goat::print_quiet!("{report}");
    Ok(if report.ok() { 0 } else { exit::CHECK_FAILED })
}

/// Blocks of 1 MiB and more each get their own map, given back to the
/// system when freed. glibc's default threshold grows with each large
/// block freed (up to 32 MiB), after which blocks of tens of MB come from
/// the heap and stay resident when freed: `goat heap`'s phases free and
/// allocate arrays of that size one after another (its peak 262 against
/// 285 MB on a 1 GiB heap). Only for `goat heap`: elsewhere the maps'
/// page faults cost more than the memory saved (`goat why` at 100k
/// goroutines: 0.3 s more system time for 27 MB less).
fn return_large_blocks_on_free() {
    // SAFETY: mallopt only sets an allocator parameter (MT-safe: it takes
    // the allocator's lock), before the command's large allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
