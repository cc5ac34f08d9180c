//! `call` of a function that does not return (issue 33, item 3): Ctrl-C
//! leaves the call running in the program and returns to the prompt; a
//! `quit`, or goat killed, leaves the program running, traced only where
//! the call's end will need the tracer (its thread, from Go 1.21), and
//! untraced once the function returns; the goroutine that made the call
//! then goes on.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::piped::{lasting_children, PipedSession};
use common::{assert_untouched, build_fixtures, proc_status, scratch_dir, Fixture};

/// A release whose runtime may move the callee (1.19) and one that locks
/// it to the call's thread.
const FLAVOURS: [&str; 2] = ["go1.19-exe", "go1.27-exe"];

/// The last "ticks T hot H released R" line: (T, H, R).
fn counts(log: &Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with("ticks "))
        .unwrap_or("");
    let n: Vec<u64> = last
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        n.first().copied().unwrap_or(0),
        n.get(1).copied().unwrap_or(0),
        n.get(2).copied().unwrap_or(0),
    )
}

fn wait_until(what: &str, ctx: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < end, "{what}: {ctx}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The program runs: its ticker goroutine counts on.
fn ticks_on(log: &Path, ctx: &str) {
    let from = counts(log).0;
    wait_until("the program stopped running", ctx, || {
        counts(log).0 > from + 20
    });
}

/// A session stopped in main.hot with the call of main.blockForever under
/// way.
fn calling(pid: i32) -> PipedSession {
    let mut g = PipedSession::attach(pid);
    g.send("break main.hot\ncontinue\n");
    g.wait_stdout("> [goroutine", Duration::from_secs(20));
    g.send("clear 1\ncall main.blockForever()\n");
    std::thread::sleep(Duration::from_millis(500));
    g
}

/// After the session: traced as the release allows until SIGUSR1 lets
/// the function return, then untouched, the calling goroutine going on.
fn released_and_untouched(fx: &Fixture, log: &Path, flavour: &str, ctx: &str) {
    let pid = fx.pid();
    ticks_on(log, ctx);
    let leader_traced = || proc_status(pid, "TracerPid").is_some_and(|t| t != "0");
    if flavour.starts_with("go1.19") {
        assert!(
            leader_traced(),
            "go1.19 keeps every thread until the call ends: {ctx}"
        );
    } else {
        wait_until("the main thread stays traced", ctx, || !leader_traced());
    }
    assert_eq!(counts(log).2, 0, "returned before its time: {ctx}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("SIGUSR1");
    wait_until("the function never returned", ctx, || counts(log).2 == 1);
    assert_untouched(pid);
    let hot = counts(log).1;
    wait_until("the calling goroutine did not go on", ctx, || {
        counts(log).1 > hot + 20
    });
    assert_eq!(lasting_children(pid), Vec::<String>::new(), "{ctx}");
    assert_untouched(pid);
}

#[test]
fn ctrl_c_during_an_endless_call_leaves_it_running() {
    build_fixtures();
    for flavour in FLAVOURS {
        let dir = scratch_dir(&format!("endless-{flavour}"));
        let log = dir.join("log");
        let fx = Fixture::start(flavour, "blocker", &[log.to_str().unwrap()]);
        let mut g = calling(fx.pid());
        g.interrupt();
        g.wait_stdout("has not returned", Duration::from_secs(10));
        g.send("continue\n");
        ticks_on(&log, flavour);
        g.interrupt();
        g.send("quit\n");
        let (status, stdout, stderr) = g.finish(Duration::from_secs(20));
        let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
        assert!(status.success(), "{ctx}");
        assert!(!stderr.contains("interrupts a running continue"), "{ctx}");
        assert!(!stderr.contains("error"), "{ctx}");
        if flavour.starts_with("go1.19") {
            assert!(
                stderr.contains("keeps every thread of pid"),
                "no note: {ctx}"
            );
        }
        released_and_untouched(&fx, &log, flavour, &ctx);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn goat_killed_during_an_endless_call_lets_go_when_it_returns() {
    build_fixtures();
    for flavour in FLAVOURS {
        let dir = scratch_dir(&format!("endless-kill-{flavour}"));
        let log = dir.join("log");
        let fx = Fixture::start(flavour, "blocker", &[log.to_str().unwrap()]);
        let mut g = calling(fx.pid());
        g.kill();
        let ctx = format!("{flavour}\n--- stderr:\n{}", g.stderr());
        released_and_untouched(&fx, &log, flavour, &ctx);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
