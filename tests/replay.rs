//! The published debugging sessions goat exists for, replayed command for
//! command on the `replay` fixture (Go 1.19 and 1.27, `-N -l`, as the
//! posts' authors built them):
//!
//! - fntlnz, "Go Post-mortem": a producer blocked sending on a channel
//!   (`goroutines`, `goroutine N`, `bt`, `frame N list`, `frame N p ch`,
//!   `frame N p messages`), in `replay/producer.rs`;
//! - Michael Stapelberg, "debugging Go core dumps with delve": a server
//!   crashed with `GOTRACEBACK=crash` in its handler, opened from the core
//!   the kernel wrote (`bt`, `frame N`, `p in`, `p in.Name`, the request's
//!   bytes written to a file), in `replay/crash.rs`;
//! - Michael Stapelberg, "Tips to debug hanging Go programs": a client hung
//!   in `io.ReadFull` on a TCP connection (`grs`, `gr N`, `bt`, the peer's
//!   address through the `net.Conn`), in `replay/tcpclient.rs`.
//!
//! Every value goat prints is held against what the program printed of
//! itself with fmt (`%#v`, or `%q`/`%x` where that is what compares) before
//! it blocked or crashed. goat's syntax differs from Delve's in places (a
//! channel's summary instead of its `runtime.hchan`); the values may not.

mod common;
#[path = "replay/crash.rs"]
mod crash;
#[path = "replay/golit.rs"]
mod golit;
#[path = "replay/producer.rs"]
mod producer;
#[path = "replay/tcpclient.rs"]
mod tcpclient;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{assert_untouched, fixture_path, require_fixture, text, Fixture};

/// The builds the sessions are replayed on (scripts/build-fixtures).
const FLAVOURS: [&str; 2] = ["go1.19-noopt", "go1.27-noopt"];

/// The fixture's executable for `flavour`, or `None` when missing and
/// `GOAT_SKIP_FIXTURES=1`.
fn exe(flavour: &str) -> Option<std::path::PathBuf> {
    common::build_fixtures();
    let path = fixture_path(flavour, "replay");
    require_fixture(&path).then_some(path)
}

/// `name=value` lines a fixture printed, by name.
type Printed = BTreeMap<String, String>;

/// Adds one `name=value` line to `values`; `false` for any other line.
fn record(values: &mut Printed, line: &str) -> bool {
    match line.split_once('=') {
        Some((k, v)) if !k.contains(' ') => {
            values.insert(k.to_string(), v.to_string());
            true
        }
        _ => false,
    }
}

/// The value the program printed as `name`.
fn printed<'a>(values: &'a Printed, name: &str) -> &'a str {
    values
        .get(name)
        .unwrap_or_else(|| panic!("the fixture printed no {name}: {values:?}"))
}

/// `replay MODE` running, once it has printed its values and "ready".
fn start(flavour: &str, mode: &str) -> Option<(Fixture, Printed)> {
    let path = exe(flavour)?;
    let mut child = Command::new(&path)
        .arg(mode)
        .env("GOTRACEBACK", "all")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let fx = Fixture { child, path };
    let mut values = Printed::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).expect("read the fixture's stdout");
        let line = line.trim_end();
        if n == 0 || line == "ready" {
            assert!(n > 0, "{flavour} {mode} ended before ready: {values:?}");
            break;
        }
        assert!(record(&mut values, line), "{flavour} {mode}: {line:?}");
    }
    // The pipe stays open (a write to a closed one would kill the program).
    let mut fx = fx;
    fx.child.stdout = Some(out.into_inner());
    Some((fx, values))
}

/// One `goat attach` session running `commands`, which must leave the
/// target untouched: its stdout lines.
fn attach_session(pid: i32, commands: &[String]) -> Vec<String> {
    let out = common::attach_with_stdin(pid, &[], &script(commands));
    assert_untouched(pid);
    lines_of(&out, commands)
}

fn script(commands: &[String]) -> String {
    commands.iter().map(|c| format!("{c}\n")).collect()
}

/// Stdout lines of a session, which must have succeeded without one
/// command failing.
fn lines_of(out: &std::process::Output, commands: &[String]) -> Vec<String> {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "{commands:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("error")),
        "a command failed in {commands:?}:\n{stderr}\n--- stdout:\n{stdout}"
    );
    stdout.lines().map(str::to_string).collect()
}

/// The frames `bt` printed, `(index, function, file:line)`.
fn frames(lines: &[String]) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut it = lines.iter().peekable();
    while let Some(l) = it.next() {
        let mut w = l.split_whitespace();
        let (Some(n), Some(pc), Some("in"), Some(func)) = (w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        let (Ok(n), true) = (n.parse::<usize>(), pc.starts_with("0x")) else {
            continue;
        };
        let at = it
            .peek()
            .and_then(|a| a.trim().strip_prefix("at "))
            .unwrap_or_default()
            .to_string();
        out.push((n, func.to_string(), at));
    }
    out
}

/// The index of `func`'s frame in `bt`'s output: the frame the real stack
/// has (the posts' numbers come from other Go releases).
fn frame_of(frames: &[(usize, String, String)], func: &str) -> usize {
    frames
        .iter()
        .find(|f| f.1 == func)
        .map(|f| f.0)
        .unwrap_or_else(|| panic!("no {func} frame in {frames:?}"))
}

/// The line of the fixture's source file `file` that carries `// L:name`.
fn marked_line(file: &str, name: &str) -> usize {
    let path = common::root().join("tests/fixtures/replay").join(file);
    let src = std::fs::read_to_string(&path).expect("the replay fixture's source");
    let marker = format!("// L:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {marker} in {}", path.display()))
}

/// The `n` lines `n` one-line commands printed last.
fn last_lines(lines: &[String], n: usize) -> &[String] {
    assert!(lines.len() >= n, "{n} lines expected in {lines:#?}");
    &lines[lines.len() - n..]
}
