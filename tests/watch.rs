//! `watch` in `goat attach` on the `watched` fixture, for every release,
//! optimized and `-N -l`: a package variable and a heap field written by one
//! goroutine among several, stopping at the writing line on that goroutine
//! with the old and new value; a local whose watchpoint follows its stack
//! when the runtime copies it and ends when its frame returns; bad input; and goat killed with watchpoints set. After every
//! session the program runs on untraced, with no debug register left
//! enabled on any thread, and keeps writing the watched variables without
//! dying of SIGTRAP.

mod common;

use std::io::Write;
use std::time::Duration;

use common::debugregs::assert_no_debug_registers;
use common::watched::{line_of, Watched, FLAVOURS};
use common::{assert_untouched, attach_with_stdin, spawn_attach, text};

/// One watchpoint stop: `(id, expr, goroutine, function, line, old, new)`.
#[derive(Debug)]
struct WatchStop {
    id: u32,
    expr: String,
    goroutine: u64,
    function: String,
    line: u32,
    old: String,
    new: String,
}

fn watch_stops(out: &str) -> Vec<WatchStop> {
    let lines: Vec<&str> = out.lines().collect();
    let mut stops = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("> [watchpoint ") else {
            continue;
        };
        let parse = || -> Option<WatchStop> {
            let (id, rest) = rest.split_once(" on ")?;
            let (expr, rest) = rest.split_once("] [goroutine ")?;
            let (g, rest) = rest.split_once("] ")?;
            let (function, rest) = rest.split_once("() ")?;
            let loc = rest.split_whitespace().next()?;
            let old = lines.get(i + 1)?.strip_prefix("\told value: ")?;
            let new = lines.get(i + 2)?.strip_prefix("\tnew value: ")?;
            Some(WatchStop {
                id: id.parse().ok()?,
                expr: expr.to_string(),
                goroutine: g.parse().ok()?,
                function: function.to_string(),
                line: loc.rsplit(':').next()?.parse().ok()?,
                old: old.to_string(),
                new: new.to_string(),
            })
        };
        stops
            .push(parse().unwrap_or_else(|| panic!("unparsable watchpoint stop {l:?} in:\n{out}")));
    }
    stops
}

/// The program was left as found: running, untraced, no debug register
/// enabled, and alive after writing the watched variables some more.
fn assert_left_clean(w: &mut Watched, ctx: &str) {
    assert_untouched(w.pid());
    assert_no_debug_registers(w.pid());
    // The writer writes every 20 ms: a watchpoint left behind would kill it.
    std::thread::sleep(Duration::from_millis(200));
    assert!(w.alive(), "{ctx}: the program died after goat left");
}

fn session(w: &Watched, script: &[&str]) -> (String, String) {
    let out = attach_with_stdin(w.pid(), &[], &format!("{}\n", script.join("\n")));
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn watch_stops_at_the_writing_line_on_the_writer() {
    for flavour in FLAVOURS {
        let Some(mut w) = Watched::start(flavour) else {
            continue;
        };
        let writer = w.writer();
        let (out, err) = session(
            &w,
            &[
                "watch -w main.counter",
                "continue",
                "breakpoints",
                "clear 1",
                "watch main.heap.field",
                "continue",
                "continue",
                "quit",
            ],
        );
        let ctx = format!("{flavour}:\n{out}\n{err}");
        assert!(out.contains("Watchpoint 1 set at 0x"), "{ctx}");
        assert!(
            out.contains("Watchpoint 1 at 0x")
                && out.contains("on main.counter (write, 8 byte(s))"),
            "breakpoints lists the watchpoint: {ctx}"
        );
        assert!(out.contains("Watchpoint 1 cleared at 0x"), "{ctx}");
        let stops = watch_stops(&out);
        assert_eq!(stops.len(), 3, "{ctx}");
        for (s, (id, expr, marker)) in stops.iter().zip([
            (1, "main.counter", "counter"),
            (2, "main.heap.field", "field"),
            (2, "main.heap.field", "field"),
        ]) {
            assert_eq!((s.id, s.expr.as_str()), (id, expr), "{ctx}");
            assert_eq!(s.goroutine, writer, "only the writer writes: {ctx}");
            assert_eq!(s.function, "main.bump", "{ctx}");
            assert_eq!(s.line, line_of(marker), "the writing line: {ctx}");
            let (old, new): (i64, i64) = (
                s.old.parse().expect("old value"),
                s.new.parse().expect("new value"),
            );
            assert_eq!(new, old + 1, "the writer counts up: {ctx}");
        }
        assert_eq!(stops[2].old, stops[1].new, "consecutive hits: {ctx}");
        assert!(
            out.contains(&format!("(hits goroutine({writer}):2 total:2)")),
            "{ctx}"
        );
        assert_left_clean(&mut w, &ctx);
    }
}

/// Optimized builds whose DWARF has no location for `scoped`'s `local`
/// (an empty `DW_AT_location`; go1.27 describes it, as `-N -l` builds do).
const OPTIMIZED_OUT: &[&str] = &["go1.21-exe", "go1.24-exe"];

#[test]
fn a_locals_watchpoint_ends_with_its_frame() {
    for flavour in FLAVOURS {
        let Some(mut w) = Watched::start(flavour) else {
            continue;
        };
        let sleep = format!("break main.go:{}", line_of("sleep"));
        // After the frame returns, the breakpoint on scoped's next call
        // ends the remaining continues.
        let (out, err) = session(
            &w,
            &[
                &sleep,
                // The first pass of the loop: two writes to come.
                "cond 1 j == 0",
                "continue",
                "clear 1",
                "watch -w local",
                "break main.scoped",
                "continue",
                "continue",
                "continue",
                "continue",
                "continue",
                "quit",
            ],
        );
        let ctx = format!("{flavour}:\n{out}\n{err}");
        if OPTIMIZED_OUT.contains(flavour) {
            // The compiler gives the address-taken local an empty location
            // (DW_AT_location with no operation) here: the one-line refusal.
            assert!(
                err.contains("error: watch: local cannot be watched: ")
                    && err.contains("optimized out"),
                "{ctx}"
            );
            assert!(!out.contains("Watchpoint"), "{ctx}");
            assert_left_clean(&mut w, &ctx);
            continue;
        }
        assert!(
            out.contains("on goroutine ") && out.contains("'s stack until its frame returns"),
            "{ctx}"
        );
        let stops = watch_stops(&out);
        let (last, in_loop) = stops
            .split_last()
            .unwrap_or_else(|| panic!("no hit: {ctx}"));
        assert!(
            !in_loop.is_empty(),
            "the loop writes local twice more: {ctx}"
        );
        for s in &stops {
            assert_eq!(
                (s.expr.as_str(), s.function.as_str()),
                ("local", "main.scoped"),
                "{ctx}"
            );
        }
        for s in in_loop {
            assert_eq!(s.line, line_of("loop"), "{ctx}");
        }
        // grow() made the runtime copy the stack: the watchpoint moved with
        // it and caught the write after.
        let moved = out
            .find("Watchpoint 2 moved to 0x")
            .unwrap_or_else(|| panic!("the stack move was not followed: {ctx}"));
        assert!(out[moved..].contains("> [watchpoint 2 on local]"), "{ctx}");
        assert_eq!(last.line, line_of("after"), "{ctx}");
        let (old, new): (i64, i64) = (last.old.parse().unwrap(), last.new.parse().unwrap());
        assert_eq!(new, old + 1000, "{ctx}");
        let ended = out
            .find("Watchpoint 2 went out of scope and was cleared")
            .unwrap_or_else(|| panic!("no end of scope: {ctx}"));
        let after = &out[ended..];
        assert!(
            after.contains("main.worker.func1()"),
            "stopped where scoped returned: {ctx}"
        );
        assert!(
            !after.contains("> [watchpoint"),
            "no hit after the scope ended: {ctx}"
        );
        assert_left_clean(&mut w, &ctx);
    }
}

#[test]
fn bad_watch_input_is_one_line_each() {
    let flavour = "go1.27-exe";
    let Some(mut w) = Watched::start(flavour) else {
        return;
    };
    let (out, err) = session(
        &w,
        &[
            "watch -w 1+2",
            "watch -w main.name",
            "watch -x main.counter",
            "watch -w",
            "watch -w main.counter",
            "watch -w main.limit",
            "watch -r main.small",
            "watch -rw main.ratio",
            "watch -w main.flag",
            "breakpoints",
            "quit",
        ],
    );
    let ctx = format!("{out}\n{err}");
    let errors = common::error_lines(&err);
    assert_eq!(errors.len(), 5, "{ctx}");
    assert!(errors[0].contains("not a variable in memory"), "{ctx}");
    assert!(
        errors[1].contains("is 16 byte(s)") && errors[1].contains("1, 2, 4 or 8"),
        "{ctx}"
    );
    assert!(errors[2].contains("unknown flag -x"), "{ctx}");
    assert!(errors[3].contains("usage: watch"), "{ctx}");
    assert!(
        errors[4].contains("every debug register is in use"),
        "{ctx}"
    );
    assert!(
        out.contains("on main.small (read or write (x86 cannot trap reads alone), 1 byte(s))"),
        "{ctx}"
    );
    assert_eq!(
        out.matches("\nWatchpoint ").count() + usize::from(out.starts_with("Watchpoint")),
        8,
        "{ctx}"
    );
    assert_left_clean(&mut w, "bad input");
}

/// goat killed (SIGKILL) at a prompt or in a run, with watchpoints set on
/// variables the program keeps writing: the tracer process clears DR7 on
/// every thread before it detaches.
#[test]
fn kill_9_with_watchpoints_leaves_no_debug_register() {
    const TRIALS: usize = 20;
    let mut armed = 0;
    for trial in 0..TRIALS {
        let flavour = FLAVOURS[trial % FLAVOURS.len()];
        let Some(mut w) = Watched::start(flavour) else {
            return;
        };
        let mut goat = spawn_attach(w.pid(), &[]);
        let script = "watch -w main.counter\nwatch -w main.heap.field\nwatch -w main.limit\n\
                      continue\ncontinue\ncontinue\ncontinue\n";
        goat.stdin
            .as_mut()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write the script");
        // From the first commands to runs and stops at hits 20 ms apart.
        std::thread::sleep(Duration::from_millis(40 + 37 * trial as u64));
        goat.kill().expect("kill -9 goat");
        let out = goat.wait_with_output().expect("goat's output");
        if text(&out.stdout).contains("Watchpoint 3 set at") {
            armed += 1;
        }
        let ctx = format!("trial {trial} ({flavour})");
        assert_left_clean(&mut w, &ctx);
    }
    // Most kills came with the watchpoints in every thread's registers.
    assert!(
        armed >= TRIALS / 2,
        "only {armed} of {TRIALS} trials had set them"
    );
}

/// The session's tracer process itself SIGKILLed during a run with
/// watchpoints armed: the kernel detaches every thread with its debug
/// registers as they are, and the guardian clears DR7 on each. (The
/// watched variables are ones the program never writes: an access between
/// the kernel's detach and the guardian's seize would be a SIGTRAP, the
/// same window an int3 has. At the prompt nothing is armed.)
#[test]
fn the_guardian_clears_debug_registers_when_the_tracer_dies() {
    use std::io::{BufRead, BufReader, Read};
    for flavour in ["go1.19-exe", "go1.27-noopt"] {
        let Some(mut w) = Watched::start(flavour) else {
            continue;
        };
        let mut goat = spawn_attach(w.pid(), &[]);
        let mut stdin = goat.stdin.take().expect("stdin");
        stdin
            .write_all(b"watch -w main.limit\nwatch -w main.small\ncontinue\n")
            .expect("script");
        let mut stdout = BufReader::new(goat.stdout.take().expect("stdout"));
        let mut seen = String::new();
        // Each `watch` answers one line: two "Watchpoint N set" lines, or
        // an error (then the wait would never end).
        while seen.matches(" set at 0x").count() < 2 {
            assert!(!seen.contains("error"), "{flavour}: {seen}");
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("{flavour}: goat ended before setting the watchpoints: {seen}");
            }
            seen.push_str(&line);
        }
        // Into the run, with the watchpoints in every thread's registers.
        std::thread::sleep(Duration::from_millis(300));
        let tracer = common::tracer_of(w.pid());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(tracer),
            nix::sys::signal::SIGKILL,
        )
        .expect("kill -9 the tracer process");
        wait_guardian_done(w.pid());
        assert_untouched(w.pid());
        assert_no_debug_registers(w.pid());
        drop(stdin);
        let _ = goat.kill();
        let _ = goat.wait();
        let mut err = String::new();
        let _ = goat.stderr.take().expect("stderr").read_to_string(&mut err);
        assert!(
            err.contains("cleared the debug registers of"),
            "{flavour}: the guardian did not say so: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.alive(), "{flavour}: {err}");
    }
}

/// Waits up to 10 s for the guardian of `target` (`goat guardian PID`) to
/// finish its rescue and exit.
fn wait_guardian_done(target: i32) {
    let target = target.to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let running = || {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .any(|e| {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
                args.len() >= 3 && args[1] == b"guardian" && args[2] == target.as_bytes()
            })
    };
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the guardian of {target} never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
