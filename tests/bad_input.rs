//! Every way `goat stacks` can be pointed at the wrong thing: a one-line
//! explanation, a distinct exit code, no panic, and the target unharmed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_untouched, goat, run_goat, Fixture};

const NO_SUCH_PROCESS: i32 = 3;
const PERMISSION: i32 = 4;
const NOT_GO: i32 = 5;
const ALREADY_TRACED: i32 = 6;
const NOT_ATTACHABLE: i32 = 7;
const SELF: i32 = 8;
const EXITED: i32 = 9;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean_failure(out: &std::process::Output, code: i32, words: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    assert!(
        err.starts_with("goat: "),
        "one plain explanation expected:\n{err}"
    );
    assert!(
        err.to_lowercase().contains(words),
        "expected {words:?} in:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// A pid that no process has.
fn free_pid() -> i32 {
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (100..max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap()
}

#[test]
fn nonexistent_pid() {
    let out = run_goat(&["stacks", &free_pid().to_string()]);
    assert_clean_failure(&out, NO_SUCH_PROCESS, "no process");
}

#[test]
fn not_a_go_program() {
    let mut sleep = Command::new("sleep").arg("30").spawn().unwrap();
    let out = run_goat(&["stacks", &sleep.id().to_string()]);
    assert_clean_failure(&out, NOT_GO, "not a go program");
    assert_untouched(sleep.id() as i32);
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn goats_own_pid() {
    // `exec` makes the shell's pid goat's own.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {} stacks $$", env!("CARGO_BIN_EXE_goat")))
        .output()
        .unwrap();
    assert_clean_failure(&out, SELF, "itself");
}

#[test]
fn zombie() {
    // A child this test never waits for: once it exits it stays a zombie.
    let child = Command::new("true").spawn().unwrap();
    let zpid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::proc_status(zpid, "State").is_none_or(|s| !s.starts_with('Z')) {
        assert!(std::time::Instant::now() < deadline, "no zombie appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run_goat(&["stacks", &zpid.to_string()]);
    assert_clean_failure(&out, NOT_ATTACHABLE, "zombie");
    drop(child); // reaped when the test binary exits
}

#[test]
fn kernel_thread() {
    let visible = std::path::Path::new("/proc/2/comm").exists();
    if !common::require(
        "kernel thread",
        visible,
        "run outside a pid namespace (no kernel thread is visible in this one)",
    ) {
        return;
    }
    let out = run_goat(&["stacks", "2"]);
    assert_clean_failure(&out, NOT_ATTACHABLE, "kernel thread");
}

#[test]
fn already_traced_by_another_debugger() {
    let fx = Fixture::start("go1.21-exe", "states", &[]);
    let pid = fx.pid().to_string();
    // strace stays attached until it is killed.
    let mut strace = Command::new("strace")
        .args(["-qq", "-e", "trace=none", "-p", &pid])
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (scripts/test installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::proc_status(fx.pid(), "TracerPid").as_deref() == Some("0") {
        assert!(
            std::time::Instant::now() < deadline,
            "strace did not attach"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run_goat(&["stacks", &pid]);
    assert_clean_failure(&out, ALREADY_TRACED, "strace");
    let _ = strace.kill();
    let _ = strace.wait();
    assert_untouched(fx.pid());
}

#[test]
fn permission_denied_comes_with_the_fix() {
    let fx = Fixture::start("go1.21-exe", "states", &[]);
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_goat"))
        .args(["stacks", &fx.pid().to_string()])
        .output()
        .unwrap();
    assert_clean_failure(&out, PERMISSION, "not permitted to attach");
    let err = stderr_of(&out);
    assert!(
        err.contains("user: goat runs as uid 65534"),
        "the cause is named:\n{err}"
    );
    assert!(err.contains("sudo"), "the fix is named:\n{err}");
    assert_untouched(fx.pid());
}

#[test]
fn process_exiting_during_attach_is_reported_not_a_crash() {
    // Race goat against a fixture that is being killed: whatever the timing,
    // goat answers with a clean exit code.
    for i in 0..10 {
        let fx = Fixture::start("go1.27-exe", "states", &[]);
        let pid = fx.pid();
        let g = goat()
            .args(["stacks", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(500 * i));
        drop(fx);
        let out = g.wait_with_output().unwrap();
        let code = out.status.code();
        assert!(
            matches!(
                code,
                Some(0) | Some(NO_SUCH_PROCESS) | Some(EXITED) | Some(NOT_ATTACHABLE)
            ),
            "iteration {i}: exit {code:?}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn kill_9_of_goat_while_the_target_is_stopped_leaves_it_running() {
    let fx = Fixture::start("go1.27-pie", "states", &["spin"]);
    for hold_ms in [0u64, 1, 5, 50] {
        let mut g = goat()
            .args(["stacks", &fx.pid().to_string()])
            .env(common::hook("GOAT_TEST_HOLD_STOPPED_MS"), "2000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + hold_ms * 10));
        g.kill().unwrap();
        let _ = g.wait();
        assert_untouched(fx.pid());
    }
    // And it still answers: goat can read it again.
    let out = run_goat(&["stacks", &fx.pid().to_string()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
}
