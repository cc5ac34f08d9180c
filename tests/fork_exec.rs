//! Programs that start programs under a session (issue 33, items 2 and
//! 4): a breakpoint in code only a forked child runs never kills the
//! child, and an exec during `continue` ends the session cleanly, with
//! the new program running on untraced. After each, the program is alive,
//! running, untraced, with no child left behind.

mod common;

use std::time::{Duration, Instant};

use common::piped::{lasting_children, PipedSession};
use common::{assert_untouched, build_fixtures, fixture_path, scratch_dir, Fixture};

/// The oldest and the newest release.
const FLAVOURS: [&str; 2] = ["go1.19-exe", "go1.27-exe"];

fn count(log: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// Waits up to 10 s for `n` more successful runs of /bin/true than `from`.
fn runs_on(log: &std::path::Path, from: usize, n: usize, ctx: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while count(log, "ok ") < from + n {
        assert!(
            Instant::now() < end,
            "the program stopped starting children: {ctx}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `b syscall.runtime_AfterForkInChild`, `c`: the program's children run
/// it, never the program. The continue runs on (nothing to stop at), every
/// child succeeds meanwhile and after, and goat says once why the
/// breakpoint never stops.
#[test]
fn a_breakpoint_only_children_run_never_kills_them() {
    build_fixtures();
    for flavour in FLAVOURS {
        let dir = scratch_dir(&format!("forks-{flavour}"));
        let log = dir.join("log");
        let fx = Fixture::start(flavour, "forkexec", &["run", log.to_str().unwrap()]);
        let pid = fx.pid();
        runs_on(&log, 0, 5, flavour);
        let mut g = PipedSession::attach(pid);
        g.send("break syscall.runtime_AfterForkInChild\ncontinue\n");
        let start = count(&log, "ok ");
        // The program forks about fifty times a second under the continue.
        runs_on(&log, start, 50, flavour);
        let ran = g.stdout();
        g.interrupt();
        g.send("quit\n");
        let (status, stdout, stderr) = g.finish(Duration::from_secs(20));
        let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
        assert!(status.success(), "{ctx}");
        assert!(!ran.contains("> [goroutine"), "a stop in the parent: {ctx}");
        assert_eq!(
            stderr.matches("lets its children run untraced").count(),
            1,
            "told once: {ctx}"
        );
        assert_untouched(pid);
        runs_on(&log, count(&log, "ok "), 20, flavour);
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(count(&log, "fail"), 0, "{ctx}\n--- log:\n{log_text}");
        assert_eq!(lasting_children(pid), Vec::<String>::new(), "{ctx}");
        assert_untouched(pid);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `b main.tick`, `c`, then the program execs (/bin/sleep, or a Go
/// program) during the next `c`: goat says so, shows nothing of the old
/// image and detaches; the new program runs on untraced.
#[test]
fn an_exec_during_continue_ends_the_session() {
    build_fixtures();
    for flavour in FLAVOURS {
        let go_prog = fixture_path(flavour, "forkexec");
        let targets: [(&str, Vec<&str>); 2] = [
            ("/bin/sleep", vec!["/bin/sleep", "1000"]),
            (
                go_prog.to_str().unwrap(),
                vec![go_prog.to_str().unwrap(), "idle"],
            ),
        ];
        for (exe, argv) in targets {
            let exe = std::fs::canonicalize(exe).unwrap();
            let exe = exe.to_str().unwrap();
            let dir = scratch_dir(&format!("execs-{flavour}"));
            let trigger = dir.join("go");
            let mut args = vec!["exec", trigger.to_str().unwrap()];
            args.extend(argv);
            let fx = Fixture::start(flavour, "forkexec", &args);
            let pid = fx.pid();
            let mut g = PipedSession::attach(pid);
            g.send("break main.tick\ncontinue\n");
            g.wait_stdout("> [goroutine", Duration::from_secs(20));
            std::fs::write(&trigger, b"").unwrap();
            g.send("continue\ngoroutines\nbt\n");
            let (status, stdout, stderr) = g.finish(Duration::from_secs(20));
            let ctx = format!("{flavour} -> {exe}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
            assert!(status.success(), "{ctx}");
            let said = stdout
                .find(&format!("pid {pid} exec'd {exe}"))
                .unwrap_or_else(|| panic!("the exec is not told: {ctx}"));
            assert!(
                !stdout[said..].contains("goroutine "),
                "stale goroutines after the exec: {ctx}"
            );
            assert!(!stderr.contains("cannot restore"), "{ctx}");
            assert!(!stderr.contains("error:"), "{ctx}");
            assert_eq!(
                std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
                std::path::PathBuf::from(exe),
                "{ctx}"
            );
            assert_untouched(pid);
            assert_eq!(lasting_children(pid), Vec::<String>::new(), "{ctx}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
