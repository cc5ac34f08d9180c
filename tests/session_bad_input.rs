//! Bad input inside a session (tests/bad_input.rs has the command line's):
//! malformed expressions, unknown commands, wrong arities, and on a core
//! every command that needs a live process. Each is one `error:` line on
//! stderr, the session goes on (a later `p` still works), goat does not
//! panic, and the target is left as it was found.

mod common;

use common::{assert_untouched, attach_with_stdin, build_fixtures, goat_with_stdin, text, Fixture};

/// Mistakes any session can make, live or post-mortem.
const MISTAKES: &[&str] = &[
    // Malformed or impossible expressions.
    "p 1 +",
    "p (",
    "p a[",
    "p \"unterminated",
    "p ))",
    "p x.",
    "p nosuchvar",
    "p 1 +* 2",
    "p &1",
    "print %z 1",
    "whatis",
    "p",
    "x notanaddr",
    "examinemem 0x0",
    "x 0x10 99999999999999999999",
    // Unknown commands.
    "frobnicate",
    "goroutinez",
    "-x",
    "restart",
    "set x = 1",
    // Wrong arities or arguments.
    "call",
    "thread",
    "thread a b",
    "threads x",
    "frame x",
    "down 99",
    "stack x",
    "stack -bogus",
    "stack -full -defer",
    "goroutines -bogus",
    "goroutines -t -u -r",
    "goroutines -chan",
    "goroutines -group label",
    "goroutine x",
    "gr 1 2",
    "config max-string-len",
    "config bogus 1",
    "source",
    "transcript",
    "dump-bytes",
    "help nosuch",
    "funcs (",
    "sources a b",
    "disassemble a b c",
    "args a b",
    "regs -a",
    "deferred x",
    "list nosuchfile.go:3",
    "breakpoints x",
    "libraries x",
];

/// Live mistakes only: the command exists but its argument is wrong.
const LIVE_MISTAKES: &[&str] = &[
    "break nosuchfunc",
    "clear",
    "clear x",
    "clear 99",
    "condition",
    "condition x",
    "next x",
    "step -1",
    "stepout x",
    "clearall x",
    "continue nosuchfunc",
    "call main.main(1)",
    "call 1 + 2",
    "call main.nosuchfunc()",
];

/// What a core cannot do: run, or hold breakpoints.
const NEEDS_A_PROCESS: &[&str] = &[
    "break main.main",
    "continue",
    "continue main.main",
    "c",
    "next",
    "next 2",
    "n",
    "step",
    "s",
    "stepout",
    "so",
    "clear 1",
    "clearall",
    "condition 1 n == 1",
    "breakpoints",
    "core",
    "dump x.core",
    "call main.main()",
];

/// Runs `mistakes`, then `p 1+1`, and checks the session's output.
fn check(stdout: &str, stderr: &str, mistakes: &[&str], what: &str) {
    let ctx = format!("{what}:\n{stdout}\n---\n{stderr}");
    assert!(!stderr.contains("panicked"), "{ctx}");
    assert!(!stderr.contains("internal error"), "{ctx}");
    // Every stderr line but the banner and the goodbye is an error line:
    // one per mistake, none running on to a second line.
    let lines: Vec<&str> = stderr.lines().collect();
    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, mistakes.len(), "one error per mistake; {ctx}");
    let others: Vec<&&str> = lines
        .iter()
        .filter(|l| !l.starts_with("error: "))
        .filter(|l| !l.starts_with("attached to ") && !l.starts_with("core "))
        .filter(|l| !l.starts_with("goat: detached from "))
        .collect();
    assert!(
        others.is_empty(),
        "lines that are not one-line errors: {others:?}\n{ctx}"
    );
    // The session went on to the end: the last command printed.
    assert_eq!(stdout.lines().last(), Some("2"), "{ctx}");
}

fn script(mistakes: &[&str]) -> String {
    let mut s = mistakes.join("\n");
    s.push_str("\np 1+1\n");
    s
}

#[test]
fn a_live_session_survives_every_mistake_untouched() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let mistakes = [MISTAKES, LIVE_MISTAKES].concat();
    let out = attach_with_stdin(pid, &[], &script(&mistakes));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    check(&stdout, &stderr, &mistakes, "live");
    assert_untouched(pid);
}

#[test]
fn a_core_session_refuses_what_needs_a_process_in_one_line() {
    build_fixtures();
    let fx = Fixture::start("go1.21-exe", "states", &[]);
    let pid = fx.pid();
    let dir = common::scratch_dir("session-bad-input");
    let core = dir.join("core");
    common::write_core(pid, &core);
    assert_untouched(pid);
    let mistakes = [MISTAKES, NEEDS_A_PROCESS].concat();
    let out = goat_with_stdin(&["debug", core.to_str().unwrap()], &script(&mistakes));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    check(&stdout, &stderr, &mistakes, "core");
    // The ones that need a process say so.
    let refused = stderr
        .lines()
        .filter(|l| {
            l.contains("a core file cannot be run") || l.contains("this session is a core file")
        })
        .count();
    assert_eq!(refused, NEEDS_A_PROCESS.len(), "{stdout}\n---\n{stderr}");
    // Nothing was written beside the core, and the process is as it was.
    assert!(!std::path::Path::new("x.core").exists());
    assert_untouched(pid);
    let _ = std::fs::remove_dir_all(&dir);
}
