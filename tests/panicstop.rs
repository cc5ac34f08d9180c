//! A program that dies under `continue` stops first, as under Delve: the
//! `runctl` fixture started with `panic` panics (unrecovered, on a
//! goroutine of its own) ten rounds after a debugger attached, and with
//! `throw` dies of a fatal error
//! (unlock of an unlocked mutex). goat's `unrecovered-panic` and
//! `runtime-fatal-throw` breakpoints, set at attach, stop it with the
//! dying goroutine selected; the panic value is shown and printable.
//! Cleared, the program then dies as it would have, by itself.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::runctl::{session, stops, FLAVOURS};
use common::{build_fixtures, Fixture};

/// The program's exit status and stderr once it ended by itself.
fn death(fx: &mut Fixture) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = fx.child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "the program did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = fx.child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status, err)
}

fn unrecovered_panic_stops(flavour: &str) {
    let mut fx = Fixture::start(flavour, "runctl", &["panic"]);
    let (out, err, ctx) = session(
        flavour,
        fx.pid(),
        &[
            "set main.armed = 1",
            "c",
            "p runtime.curg._panic.arg",
            "bt",
            "bp",
            "clear unrecovered-panic",
            "bp",
            "quit",
        ],
    );
    assert!(!err.contains("error"), "{ctx}");
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{ctx}");
    // The panicking goroutine (not main's) is selected, in fatalpanic.
    let g = s[0].g;
    assert!(g != 1 && s[0].func == "runtime.fatalpanic", "{ctx}");
    let hits = format!("[unrecovered-panic] (hits goroutine({g}):1 total:1)");
    assert!(s[0].note.starts_with(&hits), "{ctx}");
    let value = out
        .lines()
        .find_map(|l| l.strip_prefix("\truntime.curg._panic.arg: "))
        .unwrap_or_else(|| panic!("no panic value shown: {ctx}"));
    assert!(
        value.starts_with("interface {}(string) \"boom req "),
        "{ctx}"
    );
    assert!(
        out.contains(&format!("\n{value}\n")),
        "print shows it too: {ctx}"
    );
    assert!(out.contains(" in main.explode\n"), "{ctx}");
    assert!(
        out.contains("Breakpoint unrecovered-panic -1 cleared at"),
        "{ctx}"
    );
    let last = out.rsplit("cleared at").next().unwrap();
    assert!(!last.contains("unrecovered-panic"), "{ctx}");
    // Detached, the program goes on dying of its own panic, the value the
    // one goat showed.
    let (status, stderr) = death(&mut fx);
    assert_eq!(status.code(), Some(2), "{ctx}\n{stderr}");
    let msg = value
        .trim_start_matches("interface {}(string) \"")
        .trim_end_matches('"');
    assert!(
        stderr.contains(&format!("panic: {msg}\n")),
        "{ctx}\n{stderr}"
    );
}

#[test]
fn an_unrecovered_panic_stops_at_unrecovered_panic_with_its_value() {
    build_fixtures();
    for flavour in FLAVOURS {
        unrecovered_panic_stops(flavour);
    }
}

fn fatal_error_stops(flavour: &str) {
    let mut fx = Fixture::start(flavour, "runctl", &["throw"]);
    let (out, err, ctx) = session(
        flavour,
        fx.pid(),
        &["set main.armed = 1", "c", "args", "bt", "quit"],
    );
    assert!(!err.contains("error"), "{ctx}");
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{ctx}");
    // runtime.fatal (1.19+: errors of the program) or runtime.throw.
    assert_eq!(s[0].g, 1, "{ctx}");
    assert!(
        ["runtime.fatal", "runtime.throw"].contains(&s[0].func.as_str()),
        "{ctx}"
    );
    assert!(s[0].note.starts_with("[runtime-fatal-throw] "), "{ctx}");
    assert!(
        out.contains("s = \"sync: unlock of unlocked mutex\""),
        "{ctx}"
    );
    assert!(out.contains(" in main.throwNow\n"), "{ctx}");
    let (status, stderr) = death(&mut fx);
    assert_eq!(status.code(), Some(2), "{ctx}\n{stderr}");
    assert!(
        stderr.contains("fatal error: sync: unlock of unlocked mutex"),
        "{ctx}\n{stderr}"
    );
}

#[test]
fn a_fatal_error_stops_at_runtime_fatal_throw() {
    build_fixtures();
    for flavour in FLAVOURS {
        fatal_error_stops(flavour);
    }
}
