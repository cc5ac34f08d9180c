//! `goat attach` and `goat debug`: the terminal front end over the session
//! engine (`session/`). Each line is parsed, handed to the engine, and
//! what it returns is formatted; the engine never prints.
//!
//! - `table.rs`: the one command table; `help` and completion come from it.
//! - one folder per command family, so the folder shows the command set:
//!   `goroutines/`, `stack/`, `data/`, `breakpoints/`, `running/`,
//!   `source/`, `setup/` (help, core, quit, config, scripts);
//! - `console.rs`: the command table lent to an editor's debug console
//!   (`goat dap`), through the engine's `TextCommands`;
//! - `terminal/`: reedline, when stdin is a terminal that answers its
//!   queries; plain lines when it does not; otherwise commands are read
//!   line by line from stdin; the history file.

mod breakpoints;
mod console;
mod data;
mod goroutines;
mod running;
mod setup;
mod source;
mod stack;
mod table;
mod terminal;

use breakpoints::{bpcmds, bphit, watch};
use data::{call, display, heap, info, pattern, set, vars, why};
use goroutines::{grexec, grlist, grpage, labels};
use running::{exec, stepi, stepout};
use setup::{config, config_file, general, script};
use source::{disasm, goroots};
use stack::{deferred, stackfull};
use terminal::{frontend, history, multiline, term};

use std::io::{self, BufRead, IsTerminal, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use crate::session::{Backend, Control, CoreBackend, LiveBackend, Session};
pub use console::Console;
pub use table::{Command, Group, COMMANDS};

/// How `goat attach` was asked to run.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `-x` commands, run first, in order.
    pub commands: Vec<String>,
    /// `--batch`: run the `-x` commands (and stdin when it is not a
    /// terminal), then detach.
    pub batch: bool,
}

/// Runs the session until `quit`, Ctrl-D or the end of input; returns the
/// exit status (1 when a command failed in batch mode). The caller detaches
/// by dropping the session and the process.
pub fn run(s: &mut Session, opts: &Options) -> u8 {
    for warning in std::mem::take(&mut s.warnings) {
        crate::eprintln_quiet!("goat: {warning}");
    }
    crate::eprintln_quiet!("{}", banner(s));
    // What `config -save` wrote, before any command runs.
    for warning in config_file::load() {
        crate::eprintln_quiet!("{warning}");
    }
    let mut failed = false;
    let mut run_one = |s: &mut Session, line: &str| {
        let ok = run_line(s, line);
        failed |= !ok;
        ok
    };
    for cmd in &opts.commands {
        if s.is_done() {
            break;
        }
        run_one(s, cmd);
    }
    let stdin = io::stdin();
    if !s.is_done() && !stdin.is_terminal() {
        // A pipe or a file: commands line by line (not UTF-8 is no reason
        // to stop), no prompt, no history; the end of input detaches. The
        // lock is taken per line, not held while a command runs: `source -`
        // reads the rest of stdin itself (stdin's lock is not reentrant,
        // and its buffer is shared, so no line is lost between the two).
        let mut buf = Vec::new();
        while !s.is_done() {
            buf.clear();
            if !matches!(stdin.lock().read_until(b'\n', &mut buf), Ok(1..)) {
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            run_one(s, line.trim_end_matches(['\n', '\r']));
        }
    } else if !s.is_done() && !opts.batch {
        frontend::interactive(s, &mut run_one);
    }
    if let (Some(pid), None, false) = (s.pid(), s.core_path(), s.ended) {
        match s.job_stopped {
            true => crate::eprintln_quiet!(
                "goat: detached from {pid}; it is stopped by job control, as goat found it \
                 (`kill -CONT {pid}` lets it run)"
            ),
            false => crate::eprintln_quiet!("goat: detached from {pid}; it is running"),
        }
    }
    u8::from(opts.batch && failed)
}

/// `attached to PID (NAME, go1.xx): N goroutines, M threads; ...`
fn banner(s: &Session) -> String {
    let threads = s.target().map_or(0, |t| t.threads().len());
    let goroutines = grlist::goroutine_count(s.goroutine_count());
    let version = s.go_version();
    if let Some(core) = s.core_path() {
        let pid = s.pid().map_or("?".to_string(), |p| p.to_string());
        return format!(
            "core {} (pid {pid}, {version}): {goroutines}, {threads} threads; \
             a core cannot run, so execution commands are unavailable",
            crate::stdio::shown_path(core)
        );
    }
    match s.pid() {
        Some(pid) => {
            let name = crate::process::procfs::comm(pid)
                .map(|n| n.trim().to_string())
                .unwrap_or_else(|| "?".into());
            let stopped = match s.job_stopped {
                true => {
                    "it was already stopped by job control (SIGSTOP or Ctrl-Z): \
                     it stays stopped, and commands that run it are refused"
                }
                false => "the process is stopped until you quit or detach",
            };
            format!(
                "attached to {pid} ({name}, {version}): {goroutines}, {threads} threads; \
                 {stopped}"
            )
        }
        None => format!("{version}: {goroutines}, {threads} threads"),
    }
}

/// Runs one command line, printing its output to stdout and any failure as
/// `error: ...` to stderr; returns whether it succeeded. A panic in a
/// handler is reported the same way and the session goes on.
fn run_line(s: &mut Session, line: &str) -> bool {
    let stdout = io::stdout();
    let mut buffered = io::BufWriter::new(stdout.lock());
    // Through the transcript, when `transcript` turned one on.
    let mut out = script::Tee {
        stdout: &mut buffered,
    };
    let result = catch_unwind(AssertUnwindSafe(|| table::execute(s, line, &mut out)));
    let flushed = out.flush();
    // Releases stdout's lock before errors go to stderr.
    drop(buffered);
    let err = match result {
        Ok(Ok(())) => match flushed {
            Ok(()) => return true,
            Err(e) => anyhow::Error::from(e).context("writing the output"),
        },
        Ok(Err(e)) => e,
        Err(_) => anyhow::anyhow!("internal error in {line:?} (a bug in goat; please report it)"),
    };
    if crate::stdio::is_broken_pipe(err.as_ref()) {
        // Whoever read the output is gone (`goat attach PID | head`): no
        // one will see another line, so the session ends and detaches, as
        // a filter ends when its reader does.
        s.done = true;
        return false;
    }
    crate::eprintln_quiet!("error: {err:#}");
    script::note_error(&format!("error: {err:#}"));
    false
}

/// `-f` (or `--force`) among a command's words, and the other words.
fn force_flag<'a>(args: &[&'a str]) -> (bool, Vec<&'a str>) {
    let force = |a: &&str| matches!(*a, "-f" | "--force");
    let rest = args.iter().copied().filter(|a| !force(a)).collect();
    (args.iter().any(force), rest)
}

/// The last path component of a source file (`/src/app/main.go` → `main.go`).
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
