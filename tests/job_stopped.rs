//! Issue 33, item 9: a target SIGSTOPped before the session. goat said
//! "it is running" on detach, and `continue` hung with no word. Now the
//! attach says it is stopped by job control, commands that would run it
//! are refused with the way out, and the detach leaves it stopped as goat
//! found it, untraced.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{assert_untouched, build_fixtures, error_lines, proc_status, spawn_attach, Fixture};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every thread of `pid` in job-control stop (`T`), and no tracer.
fn stopped_untraced(pid: i32) -> Result<(), String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for t in tasks.filter_map(Result::ok) {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let state = status.lines().find(|l| l.starts_with("State:"));
        if !state.is_some_and(|s| s.contains("T (stopped)")) {
            return Err(format!("thread {:?}: {state:?}", t.file_name()));
        }
    }
    match proc_status(pid, "TracerPid").as_deref() {
        Some("0") => Ok(()),
        other => Err(format!("TracerPid {other:?}")),
    }
}

/// Waits up to 5 s for `check` to hold.
fn eventually(what: &str, check: impl Fn() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = check() {
        assert!(Instant::now() < deadline, "{what}: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_target_stopped_by_job_control_stays_stopped_and_continue_says_why() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "states", &[]);
        let pid = fx.pid();
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP");
        eventually("stopped before the session", || stopped_untraced(pid));

        let mut goat = spawn_attach(pid, &[]);
        let mut stdin = goat.stdin.take().expect("stdin");
        stdin
            .write_all(b"continue\nstep-instruction\ngoroutines -n 1\n")
            .expect("the script");
        drop(stdin);
        // `continue` once waited for ever: a deadline, not a hang.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = goat.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = goat.kill();
                panic!("{flavour}: goat hung on a job-stopped target");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (mut out, mut err) = (String::new(), String::new());
        goat.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        goat.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "{flavour}: {err}");
        assert!(
            err.contains("it was already stopped by job control (SIGSTOP or Ctrl-Z)"),
            "{flavour}: {err}"
        );
        let errors = error_lines(&err);
        assert_eq!(errors.len(), 2, "{flavour}: {err}");
        for e in errors {
            assert!(
                e.contains("stopped by job control")
                    && e.contains(&format!("`kill -CONT {pid}`, then attach again")),
                "{flavour}: {e}"
            );
        }
        assert!(out.contains("Goroutine 1 - "), "{flavour}: {out}");
        assert!(
            err.contains(&format!(
                "goat: detached from {pid}; it is stopped by job control, as goat found it"
            )),
            "{flavour}: {err}"
        );
        assert!(!err.contains("it is running"), "{flavour}: {err}");
        eventually("left stopped as found", || stopped_untraced(pid));

        // The way out the message gives: SIGCONT, and it runs untouched.
        kill(Pid::from_raw(pid), Signal::SIGCONT).expect("SIGCONT");
        assert_untouched(pid);
    }
}
