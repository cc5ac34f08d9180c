//! Breakpoint features on the `runctl` fixture, on every release, optimized
//! and `-N -l`: names, conditions with && and ||, on, toggle, hit-count
//! conditions, display, clear NAME, clearall LOCATION, bare `b` and
//! `b +N`, a breakpoint on a function the optimizer inlined everywhere,
//! `next` while another goroutine hits a breakpoint (also when the stepping
//! goroutine runs while the others are being stopped), no hit lost by a
//! goroutine that runs while the others are being stopped, stepout's
//! returned values, step-instruction. After each session the program runs on,
//! untraced, its code as before.

mod common;

use common::runctl::{line_of, session, stops, FLAVOURS};
use common::{assert_untouched, build_fixtures, text_segment, Fixture};

fn names_conditions_on_toggle_display(flavour: &str) {
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let (out, err, ctx) = session(
        flavour,
        fx.pid(),
        &[
            "b main.roundDone",
            "c",
            "b tp main.traced if i == 3 && len(name) == 2 || i > 100",
            "on tp print i",
            "on tp print name",
            "display -a rounds",
            "c",
            "toggle tp",
            "c",
            "toggle tp",
            "cond -clear tp",
            "cond -hitcount tp % 3",
            "c",
            "c",
            "c",
            "bp",
            "clear tp",
            "display -d 0",
            "b other main.bystander",
            "clearall main.bystander",
            "bp",
            "cond 1 goroutine == 1 && r >= 0",
            "cond -per-g-hitcount 1 % 2",
            "on 1 stack 1",
            "c",
            "c",
            "quit",
        ],
    );
    assert!(!err.contains("error"), "{ctx}");
    let s = stops(&out);
    assert_eq!(s.len(), 8, "{ctx}");
    assert!(s[0].is(1, "main.roundDone", "round-done"), "{ctx}");
    // The condition held for i == 3 only; on printed its expressions.
    assert!(s[1].is(1, "main.traced", "traced"), "{ctx}");
    assert!(
        s[1].note.starts_with("[tp] (hits goroutine(1):1 total:1)"),
        "{ctx}"
    );
    let after = |i: usize| out.lines().skip(s[i].at).collect::<Vec<_>>().join("\n");
    assert!(after(1).contains("\ti: 3\n\tname: \"ab\""), "{ctx}");
    // Disabled: the next round goes by it.
    assert!(s[2].is(1, "main.roundDone", "round-done"), "{ctx}");
    // -hitcount % 3 after the condition is gone: hits 2..6 are the calls
    // with i = 0..4 of the next round: it stops at the 3rd and 6th.
    assert!(s[3].is(1, "main.traced", "traced"), "{ctx}");
    assert!(after(3).contains("\ti: 1\n"), "{ctx}");
    assert!(s[3].note.contains("total:3)"), "{ctx}");
    assert!(s[4].is(1, "main.traced", "traced"), "{ctx}");
    assert!(after(4).contains("\ti: 4\n"), "{ctx}");
    assert!(s[5].is(1, "main.roundDone", "round-done"), "{ctx}");
    // display: at every stop from the one after `display -a`, until -d.
    assert_eq!(out.matches("\n0: rounds = ").count(), 6, "{ctx}");
    assert!(
        out.contains("Breakpoint tp 2 at 0x")
            && out.contains("\tcond -hitcount % 3\n\tprint i\n\tprint name"),
        "{ctx}"
    );
    assert!(out.contains("Breakpoint tp 2 cleared at"), "{ctx}");
    assert!(out.contains("Breakpoint other 3 cleared at"), "{ctx}");
    // The last listing: breakpoint 1 and the runtime's two, not 2 or 3.
    let last = out.rsplit("Breakpoint other 3 cleared").next().unwrap();
    assert!(last.contains("Breakpoint 1 at"), "{ctx}");
    assert!(last.contains("Breakpoint unrecovered-panic -1 at"), "{ctx}");
    assert!(
        last.contains("Breakpoint runtime-fatal-throw -2 at"),
        "{ctx}"
    );
    assert!(
        !last.contains("Breakpoint other") && !last.contains("Breakpoint tp"),
        "{ctx}"
    );
    // `goroutine` in a compound condition; -per-g-hitcount % 2: goroutine
    // 1's 4th and 6th hits stop, its 5th is counted and goes by.
    assert!(s[6].is(1, "main.roundDone", "round-done"), "{ctx}");
    assert!(s[6].note.contains("(hits goroutine(1):4 total:4)"), "{ctx}");
    assert!(after(6).contains("\tstack 1:\n0  0x"), "{ctx}");
    assert!(s[7].is(1, "main.roundDone", "round-done"), "{ctx}");
    assert!(s[7].note.contains("(hits goroutine(1):6 total:6)"), "{ctx}");
    drop(out);
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}

#[test]
fn names_conditions_on_toggle_hitcount_and_display() {
    build_fixtures();
    for flavour in FLAVOURS {
        names_conditions_on_toggle_display(flavour);
    }
}

fn steps_inlined_si_and_lines(flavour: &str) {
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let nap = format!("b runctl/main.go:{}", line_of("nap"));
    let (out, err, ctx) = session(
        flavour,
        fx.pid(),
        &[
            &nap,
            "c",
            "b +1",
            "clear 2",
            "b main.bystander",
            "next",
            "goroutine",
            "b",
            "bp",
            "clearall",
            "b main.finish",
            "c",
            "clear 5",
            "b main.traced",
            "c",
            "stepout",
            "si",
            "quit",
        ],
    );
    assert!(!err.contains("error"), "{ctx}");
    // What every goat process killed at once would do, said once, at the
    // first breakpoint (issue 31).
    assert_eq!(
        out.matches("were every goat process killed at once")
            .count(),
        1,
        "{ctx}"
    );
    let s = stops(&out);
    assert!(s[0].is(1, "main.main", "nap"), "{ctx}");
    // `b +1`: the line after the selected frame's.
    let after_nap = line_of("after-nap");
    assert!(
        out.lines().any(|l| l.starts_with("Breakpoint 2 set at 0x")
            && l.ends_with(&format!("main.go:{after_nap}"))),
        "{ctx}"
    );
    // next over the nap: the bystander goroutine's hits are reported, the
    // step ends on goroutine 1, which stays selected.
    let other: Vec<_> = s.iter().filter(|x| x.func == "main.bystander").collect();
    assert!(!other.is_empty(), "{ctx}");
    assert!(
        other
            .iter()
            .all(|x| x.g != 1 && common::runctl::at_marker(x.line, "bystander")),
        "{ctx}"
    );
    assert!(
        out.contains("\tbreakpoint hit during a step, continuing..."),
        "{ctx}"
    );
    let k = s
        .iter()
        .position(|x| x.func != "main.bystander" && x.at > s[0].at)
        .unwrap();
    assert!(s[k].is(1, "main.main", "after-nap"), "{ctx}");
    assert!(out.contains("Goroutine 1 - "), "{ctx}");
    // Bare `b`: the selected frame's line.
    assert!(
        out.lines().any(|l| l.starts_with("Breakpoint 4 set at 0x")
            && l.contains("for main.main() ")
            && l.ends_with(&format!("main.go:{after_nap}"))),
        "{ctx}"
    );
    // main.finish: inlined everywhere when optimized, a function with -N -l.
    let fin = &s[k + 1];
    assert!(fin.is(1, "main.finish", "finish"), "{ctx}");
    assert!(fin.note.contains("(hits goroutine(1):1 total:1)"), "{ctx}");
    // stepout of traced(0, "ab") returns 2, shown as Delve does.
    assert!(s[k + 2].is(1, "main.traced", "traced"), "{ctx}");
    let back = &s[k + 3];
    assert_eq!((back.g, back.func.as_str()), (1, "main.main"), "{ctx}");
    assert!(out.contains("Values returned:\n\t~r0: 2\n"), "{ctx}");
    // si: one instruction on, in the same goroutine.
    let si = &s[k + 4];
    assert_eq!(si.g, 1, "{ctx}");
    assert!(
        si.note.starts_with("(PC: 0x") && si.note != back.note,
        "{ctx}"
    );
    assert_eq!(s.len(), k + 5, "{ctx}");
    drop(out);
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}

#[test]
fn next_with_another_goroutines_hit_inlined_breakpoints_stepout_and_si() {
    build_fixtures();
    for flavour in FLAVOURS {
        steps_inlined_si_and_lines(flavour);
    }
}

/// `goat attach PID` with `script` typed in, made to wait 10 ms between
/// each hit and the stop of the other threads (a test hook), so that
/// goroutines run on in that window: its stdout, and the context to print
/// when an assertion fails.
fn session_with_slow_stops(
    flavour: &str,
    pid: i32,
    script: &[impl AsRef<str>],
) -> (String, String) {
    let pid = pid.to_string();
    let mut cmd = common::goat();
    cmd.args(["attach", &pid])
        .env(common::hook("GOAT_TEST_STOP_DELAY_US"), "10000");
    let lines: Vec<&str> = script.iter().map(AsRef::as_ref).collect();
    let out = common::command_with_stdin(cmd, &format!("{}\n", lines.join("\n")));
    let (stdout, stderr) = (common::text(&out.stdout), common::text(&out.stderr));
    let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    (stdout, ctx)
}

/// `next` over `time.Sleep` while another goroutine hits a breakpoint
/// every millisecond: each hit stops the program, and between the hit and
/// the stop of every thread the stepping goroutine may wake and run. Goat
/// is made to wait 10 ms in that window (a test hook), so the goroutine
/// does run there; it must still stop at the line after the sleep, in the
/// same round of the loop (`main.rounds` unchanged), not pass its lines
/// unseen and stop a round or more later.
fn next_stops_on_its_line_when_it_runs_while_others_stop(flavour: &str) {
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let mut script = vec![
        format!("b runctl/main.go:{}", line_of("nap")),
        "c".to_string(),
        "b main.bystander".to_string(),
    ];
    const ROUNDS: usize = 4;
    for _ in 0..ROUNDS {
        // Before and after the step; then on to the nap of the next round
        // with the bystander's breakpoint off.
        for cmd in [
            "p main.rounds",
            "next",
            "p main.rounds",
            "toggle 2",
            "c",
            "toggle 2",
        ] {
            script.push(cmd.to_string());
        }
    }
    script.push("quit".to_string());
    let (stdout, ctx) = session_with_slow_stops(flavour, fx.pid(), &script);
    let rounds: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(rounds.len(), 2 * ROUNDS, "{ctx}");
    for pair in rounds.chunks(2) {
        assert_eq!(pair[0], pair[1], "a `next` ran a round of the loop: {ctx}");
    }
    // The bystander was stopped during the steps, so the window was used.
    assert!(
        stdout.contains("\tbreakpoint hit during a step, continuing..."),
        "{ctx}"
    );
    let ends: Vec<_> = stops(&stdout)
        .into_iter()
        .filter(|x| x.func == "main.main" && x.note.starts_with("(PC: "))
        .collect();
    assert_eq!(ends.len(), ROUNDS, "{ctx}");
    assert!(
        ends.iter().all(|x| x.is(1, "main.main", "after-nap")),
        "{ctx}"
    );
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}

/// `continue` with breakpoints that two goroutines hit: the main one in
/// `main.traced`, the bystander in `main.bystander`, each call with the
/// next `n`. Goat is made to wait 10 ms between a hit and the stop of the
/// other threads (a test hook), so the bystander reaches its breakpoint
/// in that window while the main goroutine's hit is being reported. That
/// hit must come on the next `continue`, not be lost: the `n` of the
/// bystander's hits go up one at a time.
fn continue_loses_no_hit_of_a_thread_running_while_others_stop(flavour: &str) {
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let mut script = vec!["b main.bystander", "on 1 print n", "b main.traced"];
    script.extend(std::iter::repeat_n("c", 40));
    script.push("quit");
    let (stdout, ctx) = session_with_slow_stops(flavour, fx.pid(), &script);
    let ns: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("\tn: ")?.trim().parse().ok())
        .collect();
    let s = stops(&stdout);
    let traced = s.iter().filter(|x| x.func == "main.traced").count();
    // Both goroutines stopped, the main one often enough to open windows.
    assert!(ns.len() >= 5 && traced >= 5, "{ctx}");
    for pair in ns.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "a hit of main.bystander was lost: {ctx}"
        );
    }
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}

#[test]
fn goroutines_that_run_while_others_stop_lose_no_hit_and_no_line() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.24-noopt", "go1.27-exe"] {
        next_stops_on_its_line_when_it_runs_while_others_stop(flavour);
        continue_loses_no_hit_of_a_thread_running_while_others_stop(flavour);
    }
}

/// Wrong uses of the new commands: each a one-line error; the session and
/// the program go on (the last command still works).
#[test]
fn bad_input_to_breakpoint_commands_gives_one_line_errors() {
    build_fixtures();
    let flavour = "go1.27-exe";
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let script = [
        "b main.roundDone",
        "b main.roundDone",
        "b 1x main.traced",
        "b dup main.explode",
        "b dup main.throwNow",
        "clear nosuch",
        "toggle 99",
        "cond -hitcount 1 =~ 3",
        "cond -hitcount 1 > many",
        "cond 1 n ==",
        "on 1 quit",
        "on 1 frame x print r",
        "on nosuch print r",
        "display -d 7",
        "display -a 1 +",
        "trace main.traced -stack many",
        "trace main.nosuch",
        "si extra",
        "clearall main.nosuch",
        "c",
    ];
    let (out, err, ctx) = session(flavour, fx.pid(), &script);
    let errors = common::error_lines(&err);
    for want in [
        "a breakpoint is already set at",
        "\"1x\" is not a breakpoint name",
        "a breakpoint is named \"dup\" already",
        "clear: no breakpoint \"nosuch\"",
        "toggle: no breakpoint \"99\"",
        "\"=~\" is not one of",
        "\"many\" is not a hit count",
        "condition \"n ==\"",
        "on: \"quit\" cannot run at a hit",
        "usage: on N frame FRAME COMMAND",
        "on: no breakpoint \"nosuch\"",
        "display: no expression 7",
        "display: \"1 +\"",
        "-stack \"many\" is not a count",
        "no function, file or line \"main.nosuch\"",
        "step-instruction takes no arguments",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want:?} missing: {ctx}"
        );
    }
    assert_eq!(errors.len(), 17, "one line per wrong command: {ctx}");
    // The session went on: the last `c` stopped at the first breakpoint.
    let s = stops(&out);
    assert_eq!(s.len(), 1, "{ctx}");
    assert!(s[0].is(1, "main.roundDone", "round-done"), "{ctx}");
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}
