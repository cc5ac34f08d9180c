//! Execution control over `goat attach` on the `ticker` fixture: breakpoints,
//! continue, next, step (into direct and indirect calls), stepout,
//! conditions, Ctrl-C, many threads hitting
//! one breakpoint, and goat killed while the program runs under
//! breakpoints. After every session the program must run on, untraced,
//! with its code byte for byte what it was.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_untouched, build_fixtures, goat, run_goat, text, text_segment, Fixture};

fn attach(pid: i32, script: &[&str]) -> Output {
    common::attach_with_stdin(pid, &[], &format!("{}\n", script.join("\n")))
}

/// The fixture's line carrying `// L:name`.
fn line_of(name: &str) -> u32 {
    let src = std::fs::read_to_string(common::root().join("tests/fixtures/ticker/main.go"))
        .expect("ticker source");
    let marker = format!("// L:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no {marker} in main.go"))
}

/// `(goroutine, function, line, rest)` of each `> [goroutine N] F() FILE:LINE ...` stop.
fn stops(out: &str) -> Vec<(u64, String, u32, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("> [goroutine ")?;
            let (g, rest) = rest.split_once("] ")?;
            let (func, rest) = rest.split_once("() ")?;
            let (loc, note) = rest.split_once(' ').unwrap_or((rest, ""));
            let line = loc.rsplit(':').next()?.parse().ok()?;
            Some((g.parse().ok()?, func.to_string(), line, note.to_string()))
        })
        .collect()
}

/// The program's own heartbeat, `main.beats`, read by goat.
fn beats(pid: i32) -> u64 {
    let out = run_goat(&["attach", &pid.to_string(), "--batch", "-x", "p main.beats"]);
    text(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("p main.beats: {out:?}"))
}

/// The program runs on, untraced, with its code as before, and still ticks
/// (the heartbeat is read through DWARF, when the binary has it).
fn assert_intact(fx: &mut Fixture, before: &[u8], ctx: &str) {
    assert_intact_with(fx, before, ctx, true);
}

fn assert_intact_with(fx: &mut Fixture, before: &[u8], ctx: &str, heartbeat: bool) {
    if let Some(status) = fx.child.try_wait().expect("try_wait") {
        let mut err = String::new();
        if let Some(mut e) = fx.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("the program died ({status}): {err}\n{ctx}");
    }
    assert_untouched(fx.pid());
    assert!(text_segment(fx) == before, "the text changed: {ctx}");
    if !heartbeat {
        return;
    }
    let first = beats(fx.pid());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        beats(fx.pid()) > first,
        "the program stopped ticking: {ctx}"
    );
}

fn break_next_step_stepout(flavour: &str) {
    let mut fx = Fixture::start(flavour, "ticker", &[]);
    let before = text_segment(&fx);
    let out = attach(
        fx.pid(),
        &[
            "break main.tick",
            "continue",
            "continue",
            "breakpoints",
            "next",
            "next",
            "step",
            "stepout",
            "clear 1",
            "breakpoints",
            "quit",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    assert!(!stderr.contains("error"), "{ctx}");
    let set = format!(
        "for main.tick() ./tests/fixtures/ticker/main.go:{}",
        line_of("tick")
    );
    assert!(
        stdout.contains("Breakpoint 1 set at 0x") && stdout.contains(&set),
        "{ctx}"
    );
    let s = stops(&stdout);
    assert_eq!(s.len(), 6, "{ctx}");
    let g = s[0].0;
    // Two hits of the function breakpoint by the one ticking goroutine.
    assert_eq!(
        (s[0].1.as_str(), s[0].2),
        ("main.tick", line_of("tick")),
        "{ctx}"
    );
    assert!(
        s[0].3.contains(&format!("goroutine({g}):1 total:1")),
        "{ctx}"
    );
    assert_eq!((s[1].0, s[1].1.as_str()), (g, "main.tick"), "{ctx}");
    assert!(s[1].3.contains("total:2"), "{ctx}");
    assert!(
        stdout.contains(&format!("(hits goroutine({g}):2 total:2)\n")),
        "breakpoints lists the hits: {ctx}"
    );
    // next, next: one line each; step: into the call; stepout: back.
    let at = |i: usize| (s[i].0, s[i].1.as_str(), s[i].2);
    assert_eq!(at(2), (g, "main.tick", line_of("tick-a")), "{ctx}");
    assert_eq!(at(3), (g, "main.tick", line_of("tick-b")), "{ctx}");
    assert_eq!(at(4), (g, "main.helper", line_of("helper")), "{ctx}");
    assert_eq!((s[5].0, s[5].1.as_str()), (g, "main.tick"), "{ctx}");
    assert!(
        [line_of("tick-b"), line_of("tick-c")].contains(&s[5].2),
        "{ctx}"
    );
    // The source line is shown, marked.
    let src_line = format!("=> {:>5}:\t\ttotal := record(n)", line_of("tick-a"));
    assert!(stdout.contains(&src_line), "{ctx}");
    assert!(
        stdout.contains("Breakpoint 1 cleared") && stdout.matches("Breakpoint 1 at ").count() == 1,
        "{ctx}"
    );
    drop(out);
    assert_intact(&mut fx, &before, &ctx);
}

#[test]
fn break_continue_next_step_stepout_then_quit_leaves_the_program_pristine() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"] {
        break_next_step_stepout(flavour);
    }
}

/// `step` on each call line of main.indirect: `(marker of the line,
/// function stepped into, marker of its first line)`.
const INDIRECT_CALLS: [(&str, &str, &str); 5] = [
    ("call-func", "main.triple", "triple"),
    ("call-closure", "main.makeAdder.func1", "adder"),
    ("call-iface", "main.(*square).area", "square"),
    // Through the autogenerated (*circle).area wrapper.
    ("call-wrapper", "main.circle.area", "circle"),
    // Through the method value's (*square).area-fm closure.
    ("call-method-value", "main.(*square).area", "square"),
];

fn step_into_indirect_calls(flavour: &str) {
    let mut fx = Fixture::start(flavour, "ticker", &[]);
    let before = text_segment(&fx);
    let break_at = |m: &str| format!("break ticker/main.go:{}", line_of(m));
    // From a breakpoint on the first line: step over its call into the
    // runtime (runtime.Gosched through a func value, which may move the
    // goroutine to another thread) to the next line, step into its call;
    // then a breakpoint on each later line, continue to it, step.
    let mut script = vec![
        break_at("call-runtime"),
        "continue".into(),
        "step".into(),
        "step".into(),
        "clear 1".into(),
    ];
    let mut want = vec![
        ("main.indirect", line_of("call-runtime")),
        ("main.indirect", line_of("call-func")),
        (INDIRECT_CALLS[0].1, line_of(INDIRECT_CALLS[0].2)),
    ];
    for (at, callee, first) in &INDIRECT_CALLS[1..] {
        script.push(break_at(at));
        want.push(("main.indirect", line_of(at)));
        want.push((callee, line_of(first)));
    }
    // Each continue stops on the next line's breakpoint in the same call.
    for _ in 1..INDIRECT_CALLS.len() {
        script.extend(["continue".into(), "step".into()]);
    }
    // `step` on the return line enters the deferred call. Go 1.22+ names
    // the closure that runs it `indirect.deferwrap1`, and goat goes through
    // it to settle; Go 1.19's is an ordinary-looking `indirect.func1`, a
    // stop of its own on the `defer` line.
    script.extend([
        break_at("return-deferred"),
        "continue".into(),
        "step".into(),
    ]);
    want.push(("main.indirect", line_of("return-deferred")));
    if flavour.starts_with("go1.19") {
        script.push("step".into());
        want.push(("main.indirect.func1", line_of("defer")));
    }
    want.push(("main.settle", line_of("settle")));
    script.extend(["clearall".into(), "quit".into()]);
    let script: Vec<&str> = script.iter().map(String::as_str).collect();
    let out = attach(fx.pid(), &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success() && !stderr.contains("error"), "{ctx}");
    let s = stops(&stdout);
    let g = s.first().map(|h| h.0);
    assert!(s.iter().all(|h| Some(h.0) == g), "one goroutine: {ctx}");
    let got: Vec<(&str, u32)> = s.iter().map(|h| (h.1.as_str(), h.2)).collect();
    assert_eq!(got, want, "{ctx}");
    assert_intact(&mut fx, &before, &ctx);
}

#[test]
fn step_enters_calls_through_func_values_closures_and_interfaces() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"] {
        step_into_indirect_calls(flavour);
    }
}

fn hot_function(flavour: &str) {
    let mut fx = Fixture::start(flavour, "ticker", &[]);
    let before = text_segment(&fx);
    let mut script = vec!["break main.hot"];
    script.extend(["continue"; 20]);
    script.extend([
        "breakpoints",
        "cond 1 id == 2",
        "continue",
        "p id",
        "continue",
        "p id",
        "clearall",
        "quit",
    ]);
    let out = attach(fx.pid(), &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success() && !stderr.contains("error"), "{ctx}");
    let s = stops(&stdout);
    assert_eq!(s.len(), 22, "{ctx}");
    assert!(s.iter().all(|h| h.1 == "main.hot"), "{ctx}");
    // Four goroutines call it: several of them hit.
    let gs: std::collections::BTreeSet<u64> = s[..20].iter().map(|h| h.0).collect();
    assert!(gs.len() > 1, "{ctx}");
    assert!(s[19].3.ends_with("total:20)"), "{ctx}");
    // The condition: both stops are the worker with id 2, one goroutine.
    let printed: Vec<&str> = stdout.lines().filter(|l| *l == "2").collect();
    assert_eq!(printed.len(), 2, "{ctx}");
    assert_eq!(s[20].0, s[21].0, "{ctx}");
    assert!(stdout.contains("All user breakpoints cleared."), "{ctx}");
    assert_intact(&mut fx, &before, &ctx);
}

#[test]
fn a_breakpoint_hit_by_many_threads_at_once_and_a_condition() {
    build_fixtures();
    for flavour in ["go1.19-pie", "go1.27-exe"] {
        hot_function(flavour);
    }
}

#[test]
fn ctrl_c_interrupts_a_continue_and_the_session_goes_on() {
    build_fixtures();
    let mut fx = Fixture::start("go1.27-pie", "ticker", &[]);
    let before = text_segment(&fx);
    let mut child = common::spawn_attach(fx.pid(), &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "break main.never\ncontinue").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let goat_pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(goat_pid, nix::sys::signal::SIGINT).expect("SIGINT goat");
    std::thread::sleep(Duration::from_millis(300));
    // At the prompt, Ctrl-C is only a note.
    nix::sys::signal::kill(goat_pid, nix::sys::signal::SIGINT).expect("SIGINT goat");
    std::thread::sleep(Duration::from_millis(100));
    writeln!(stdin, "bt\nbreakpoints\ngrs\nquit").unwrap();
    drop(stdin);
    let out = child.wait_with_output().expect("wait for goat");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    assert!(
        stdout.contains("received SIGINT, stopping the process"),
        "{ctx}"
    );
    assert_eq!(stops(&stdout).len(), 1, "where it stopped: {ctx}");
    assert!(
        stderr.contains("Ctrl-C interrupts a running continue"),
        "{ctx}"
    );
    assert!(
        stdout.contains("in runtime.") && stdout.contains(" goroutines]"),
        "{ctx}"
    );
    assert!(
        stdout.contains("for main.never() ") && stdout.contains("total:0)"),
        "{ctx}"
    );
    assert_intact(&mut fx, &before, &ctx);
}

#[test]
fn breakpoints_without_dwarf_and_no_running_a_core() {
    build_fixtures();
    let mut fx = Fixture::start("go1.27-nodwarf", "ticker", &[]);
    let before = text_segment(&fx);
    let out = attach(fx.pid(), &["b main.tick", "c", "stepout", "quit"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    let s = stops(&stdout);
    assert_eq!(s.len(), 2, "{ctx}");
    assert_eq!(s[0].1, "main.tick", "{ctx}");
    assert_eq!(s[1].1, "main.main.func1", "{ctx}");
    assert_intact_with(&mut fx, &before, &ctx, false);

    let dir = common::scratch_dir("exec");
    let core = dir.join("ticker.core");
    common::write_core(fx.pid(), &core);
    let out = goat()
        .arg("debug")
        .arg(&core)
        .args([
            "-x",
            "break main.tick",
            "-x",
            "continue",
            "-x",
            "next",
            "-x",
            "step",
            "-x",
            "stepout",
            "-x",
            "breakpoints",
            "--batch",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("a core file cannot be run").count(),
        6,
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// goat SIGKILLed while the program runs with an int3 in it: the guardian
/// puts the byte back and the program runs on.
#[test]
fn goat_killed_while_armed_leaves_a_correct_program() {
    build_fixtures();
    let mut fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let before = text_segment(&fx);
    let mut child = common::spawn_attach(fx.pid(), &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "break main.never\ncontinue").unwrap();
    stdin.flush().unwrap();
    // Wait until the int3 is in: the text differs from before.
    let deadline = Instant::now() + Duration::from_secs(10);
    while text_segment(&fx) == before {
        assert!(Instant::now() < deadline, "the breakpoint was never armed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL goat");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text_segment(&fx) != before {
        assert!(
            Instant::now() < deadline,
            "the guardian did not restore the code"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    assert_intact(&mut fx, &before, "after SIGKILL");
}

/// The program dies during a `continue`: the session says how, and does not
/// claim to have left it running.
#[test]
fn a_program_that_dies_during_continue_ends_the_session_saying_how() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let mut child = common::spawn_attach(fx.pid(), &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "break main.never\ncontinue").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let target = nix::unistd::Pid::from_raw(fx.pid());
    nix::sys::signal::kill(target, nix::sys::signal::SIGTERM).expect("SIGTERM the program");
    drop(stdin);
    let out = child.wait_with_output().expect("wait for goat");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("pid {} was killed by SIGTERM", fx.pid())),
        "{stderr}"
    );
    assert!(!stderr.contains("it is running"), "{stderr}");
}

/// `break FILE:LINE` on a `return` line stops where the return runs, not
/// at an instruction the optimizer moved into the prologue and attributed
/// to that line (Go 1.27 does so with an argument's spill): `next` from it
/// then goes to the caller.
#[test]
fn a_breakpoint_on_a_return_line_is_at_the_return() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let mut fx = Fixture::start(flavour, "ticker", &[]);
        let before = text_segment(&fx);
        let at = format!("break ticker/main.go:{}", line_of("tick-d"));
        let out = attach(fx.pid(), &[&at, "continue", "clear 1", "next", "quit"]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
        let s = stops(&stdout);
        let got: Vec<(&str, u32)> = s.iter().map(|h| (h.1.as_str(), h.2)).collect();
        assert_eq!(
            got,
            [
                ("main.tick", line_of("tick-d")),
                ("main.main.func1", line_of("call-tick"))
            ],
            "{ctx}"
        );
        assert_intact(&mut fx, &before, &ctx);
    }
}
