//! Issue 33, items 15 and 16: messages that named the wrong thing or kept
//! quiet. An existing tracer is named as it is (strace, goat's own tracer)
//! instead of always "gdb/dlv"; `x -count 5000` says it stopped at 4096
//! bytes; and the README/help points of item 16.

mod common;

use std::process::{Command, Stdio};

use common::{
    assert_untouched, attach_with_stdin, build_fixtures, proc_status, require_tool, run_goat,
    spawn_attach, text, tracer_of, Fixture,
};

/// `goat stacks PID` refused because `pid` is traced: its stderr.
fn refused_stacks(pid: i32) -> String {
    let out = run_goat(&["stacks", &pid.to_string(), "--mode", "stop"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn an_existing_tracer_is_named_as_it_is() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let pid = fx.pid();

    // goat's own tracer, holding the target for a session still open.
    let mut session = spawn_attach(pid, &[]);
    // TracerPid is the tracing thread; the process is what goat names.
    let tracer = proc_status(tracer_of(pid), "Tgid").expect("the tracer's status");
    let err = refused_stacks(pid);
    assert!(
        err.contains(&format!(
            "already traced by pid {tracer} (goat tracer); another goat session holds it: \
             quit that session first; if it is hung: kill {tracer}"
        )),
        "{err}"
    );
    assert!(!err.contains("gdb/dlv"), "{err}");
    drop(session.stdin.take());
    assert!(session.wait().expect("the session ends").success());
    assert_untouched(pid);

    // strace.
    if !require_tool("strace", "apt-get install strace") {
        return;
    }
    let mut strace = Command::new("strace")
        .args(["-q", "-o", "/dev/null", "-p", &pid.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("run strace");
    let tracer = tracer_of(pid);
    assert_eq!(tracer, strace.id() as i32);
    let err = refused_stacks(pid);
    // `goat check` says the same.
    let check = text(&run_goat(&["check", &pid.to_string()]).stdout);
    // strace detaches on SIGTERM; it is our own child, ended by its pid.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(strace.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .expect("SIGTERM strace");
    let _ = strace.wait();
    let advice = format!("detach strace (pid {tracer}) first; if it is hung: kill {tracer}");
    assert!(
        err.contains(&format!(
            "already traced by pid {tracer} (strace); {advice}"
        )),
        "{err}"
    );
    assert!(check.contains(&advice), "{check}");
    assert_untouched(pid);
}

#[test]
fn examine_says_where_it_stopped() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "vars", &[]);
    let out = attach_with_stdin(
        fx.pid(),
        &[],
        "x -count 5000 main.gHuge\nx -count 4096 main.gHuge\n",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump_lines = stdout.lines().filter(|l| l.starts_with("0x")).count();
    // 4096 bytes, 16 a line, twice.
    assert_eq!(dump_lines, 2 * 256, "{stdout}");
    let notes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("(x shows"))
        .collect();
    assert_eq!(notes.len(), 1, "{stdout}");
    assert!(
        notes[0].starts_with("(x shows at most 4096 bytes: 904 more not shown; `x 0x"),
        "{}",
        notes[0]
    );
    assert_untouched(fx.pid());
}

/// Item 16: `goat help --help` gives help; a usage error exits 2 (the
/// README's table says so); `[1 goroutine]`; a core named `core` is not
/// "core core".
#[test]
fn help_usage_singular_and_core_names() {
    let help = run_goat(&["help", "--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    assert!(text(&help.stdout).contains("Usage: goat <COMMAND>"));
    let bad = run_goat(&["attach"]);
    assert_eq!(bad.status.code(), Some(2));
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    assert!(readme.contains("2 usage error"), "README lists exit code 2");

    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let out = attach_with_stdin(fx.pid(), &[], "goroutines -f main.chanReceive\n");
    assert!(
        text(&out.stdout).contains("\n[1 goroutine]\n"),
        "{}",
        text(&out.stdout)
    );

    let dir = common::scratch_dir("core-named-core");
    common::write_core(fx.pid(), &dir.join("core"));
    let out = common::goat()
        .args(["debug", "core", "--batch"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("goat debug");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.starts_with("core ./core (pid "), "{stderr}");
    // The same in goat stacks' refusal of another program's executable.
    let other = common::fixture_path("go1.27-exe", "ticker");
    let out = common::goat()
        .args(["stacks", "--core", "core", "--exe"])
        .arg(&other)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("goat stacks --core");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("core ./core was taken of"), "{stderr}");
    assert!(!stderr.contains("core core"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_untouched(fx.pid());
}
