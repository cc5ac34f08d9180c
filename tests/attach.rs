//! `goat attach` on live fixtures: commands read from a pipe, `-x`/`--batch`,
//! and a real terminal (tmux). Stacks are held against the Go runtime's own
//! SIGQUIT traceback taken after goat has detached.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::traceback::{self, Block};
use common::{assert_untouched, attach_with_stdin, build_fixtures, goat, run_goat, text, Fixture};

/// The goroutine blocks of `goat stacks PID`.
fn stacks(pid: i32) -> std::collections::BTreeMap<u64, Block> {
    let out = run_goat(&["stacks", &pid.to_string()]);
    assert!(out.status.success(), "goat stacks: {}", text(&out.stderr));
    traceback::parse(&text(&out.stdout))
}

fn chan_receive(blocks: &std::collections::BTreeMap<u64, Block>) -> (u64, usize) {
    blocks
        .values()
        .find_map(|b| {
            let at = b.frames.iter().position(|f| f.0 == "main.chanReceive")?;
            Some((b.id, at))
        })
        .expect("the main.chanReceive goroutine")
}

/// Goroutine ids of `goroutines` lines (`  Goroutine 12 - ...`, `*` for the current).
fn listed_goroutines(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.get(2..)?.strip_prefix("Goroutine "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

/// Function names of `stack` lines (`3  0x000000000049c2e5 in main.f`).
fn stack_functions(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<usize>().ok()?;
            words.next()?.strip_prefix("0x")?;
            (words.next()? == "in").then_some(())?;
            words.next().map(str::to_string)
        })
        .collect()
}

fn task_ids(pid: i32) -> BTreeSet<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn session_over_a_pipe(flavour: &str) {
    let fx = Fixture::start(flavour, "states", &[]);
    let pid = fx.pid();
    let before = stacks(pid);
    let (id, depth) = chan_receive(&before);
    let script = format!(
        "grs\ngr {id}\nbt\nframe 1\nup\ndown\nframe {depth}\nlist\nthreads\nhelp\nbogus\n\
         goroutine\nquit\ngrs\n"
    );
    let out = attach_with_stdin(pid, &[], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = || format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{}", ctx());
    assert_untouched(pid);
    assert!(
        stderr.contains(&format!("attached to {pid} (states, go1."))
            && stderr.contains("the process is stopped until you quit or detach"),
        "banner: {}",
        ctx()
    );

    // grs: every goroutine `goat stacks` lists (a runtime worker may have
    // started since); `quit` ended the session (the `grs` after it did not run).
    let listed: BTreeSet<u64> = listed_goroutines(&stdout).into_iter().collect();
    let want: BTreeSet<u64> = before.keys().copied().collect();
    assert!(
        listed.is_superset(&want),
        "{listed:?} vs {want:?}: {}",
        ctx()
    );
    assert_eq!(
        stdout.matches(" goroutines]").count(),
        1,
        "only one grs ran: {}",
        ctx()
    );

    // frame 1 / up / down / frame DEPTH selected 1, 2, 1, DEPTH.
    let selected: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Frame ")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(selected, [1, 2, 1, depth], "{}", ctx());

    // list: the fixture's own line, marked.
    let marked = stdout
        .lines()
        .find(|l| l.starts_with("=>") && l.contains("started.Done(); <-ch"))
        .unwrap_or_else(|| panic!("no => line in main.go: {}", ctx()));
    let frame = &before[&id].frames[depth];
    let source = std::fs::read_to_string(&frame.1).expect("fixture source");
    let line = source.lines().nth(frame.2 as usize - 1).expect("the line");
    assert!(
        marked.ends_with(line) && marked.contains(&format!(" {}:", frame.2)),
        "{marked:?} vs {line:?}: {}",
        ctx()
    );
    assert!(
        stdout.contains(&format!("Showing {}:{}", frame.1, frame.2)),
        "{}",
        ctx()
    );

    // threads: one line per task.
    let tids: BTreeSet<i32> = stdout
        .lines()
        .filter_map(|l| {
            l.get(2..)?
                .strip_prefix("Thread ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(tids, task_ids(pid), "{}", ctx());

    // help: every command; the unknown command failed and the session went on.
    for c in goat::repl::COMMANDS {
        assert!(
            stdout.contains(&format!("    {} ", c.name)),
            "help lacks {}: {}",
            c.name,
            ctx()
        );
    }
    assert!(
        stderr.contains("error: unknown command \"bogus\""),
        "{}",
        ctx()
    );
    assert!(
        stdout.contains(&format!("Goroutine {id} - chan receive - main.chanReceive")),
        "goroutine after the error: {}",
        ctx()
    );

    // bt: the runtime's own frames for that goroutine.
    let ours = stack_functions(&stdout);
    let runtime = traceback::parse(&fx.sigquit_dump());
    let theirs: Vec<String> = runtime[&id].frames.iter().map(|f| f.0.clone()).collect();
    assert_eq!(ours, theirs, "{}", ctx());
}

#[test]
fn piped_session_inspects_goroutines_like_the_runtime_and_detaches() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"] {
        session_over_a_pipe(flavour);
    }
}

#[test]
fn target_stays_stopped_at_the_prompt_and_runs_after_eof() {
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let mut child = common::spawn_attach(pid, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"grs\n").expect("write");
    stdin.flush().expect("flush");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains(" goroutines]") {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "goat ended early"
        );
    }
    // Waiting for the next command: every thread is in a tracing stop.
    for tid in task_ids(pid) {
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
        assert!(
            status.contains("State:\tt (tracing stop)"),
            "thread {tid} not stopped:\n{status}"
        );
    }
    drop(stdin);
    let status = child.wait().expect("wait");
    assert!(status.success());
    assert_untouched(pid);
}

#[test]
fn batch_runs_the_commands_and_detaches() {
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let pid = fx.pid().to_string();
    let out = goat()
        .args(["attach", &pid, "--batch", "-x", "grs", "-x", "bt"])
        .stdin(Stdio::null())
        .output()
        .expect("run goat");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains(" goroutines]"), "grs output:\n{stdout}");
    assert!(!stack_functions(&stdout).is_empty(), "bt output:\n{stdout}");
    assert_untouched(fx.pid());

    // A failing command in batch mode is an error status, after the rest ran.
    let out = goat()
        .args(["attach", &pid, "--batch", "-x", "frame 999", "-x", "grs"])
        .stdin(Stdio::null())
        .output()
        .expect("run goat");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: "),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains(" goroutines]"));
    assert_untouched(fx.pid());
}

/// A tmux server on its own socket, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        text(&self.cmd(&["capture-pane", "-p", "-t", "goat"]).stdout)
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "goat"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    /// Waits until the screen satisfies `ok`. The bound only ends a hung
    /// session: it is far above what a loaded 2-core machine needs (goat
    /// loads the program's DWARF before its first prompt, seconds when the
    /// other core is busy), so the test waits on the screen, not on time.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn terminal_session_with_prompt_completion_and_history() {
    if !common::require_tool("tmux", "apt-get install -y tmux") {
        return;
    }
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let home = std::env::temp_dir().join(format!("goat-attach-home-{pid}"));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).expect("temp HOME");
    let tmux = Tmux {
        socket: format!("goat-test-{pid}"),
    };
    let goat_bin = PathBuf::from(env!("CARGO_BIN_EXE_goat"));
    let shell = format!(
        "env -u XDG_STATE_HOME HOME={} {} attach {pid}; echo goat-exited-$?; sleep 60",
        home.display(),
        goat_bin.display()
    );
    let started = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "goat",
        "-x",
        "160",
        "-y",
        "60",
        &shell,
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    tmux.wait_for("the prompt", |s| s.contains("(goat g"));

    tmux.keys(&["grs", "Enter"]);
    tmux.wait_for("the goroutine list", |s| s.contains(" goroutines]"));
    tmux.keys(&["gr 1", "Enter"]);
    // (capture-pane drops the prompt's trailing space)
    tmux.wait_for("the g1 prompt", |s| {
        s.lines().any(|l| l.trim_end() == "(goat g1)")
    });
    tmux.keys(&["bt", "Enter"]);
    tmux.wait_for("the stack", |s| s.contains("in main.main"));
    tmux.keys(&["gorou", "Tab"]);
    let screen = tmux.wait_for("the completed word", |s| {
        s.lines().any(|l| l.trim_end().ends_with(" goroutine"))
    });
    assert!(screen.contains("(goat g1) bt"), "{screen}");
    assert!(screen.contains("     at "), "{screen}");
    assert!(
        screen.contains("goroutines"),
        "the menu offers both: {screen}"
    );

    // Ctrl-C at the prompt clears the line and says how to leave (issue
    // 33, item 16: the README said so and nothing appeared).
    tmux.keys(&["C-c"]);
    tmux.wait_for("the Ctrl-C note", |s| {
        s.contains("Ctrl-C interrupts a running continue; to leave, type quit or press Ctrl-D")
    });

    // Function names complete after `list` (a unique prefix is taken).
    tmux.keys(&["list main.chanRec", "Tab"]);
    tmux.wait_for("the completed function", |s| {
        s.lines()
            .any(|l| l.trim_end().ends_with("list main.chanReceive"))
    });

    // Clear the line, then quit. What is typed before the editor is back
    // is dropped, as a terminal drops its input queue on Ctrl-C (and CI
    // once typed `quit` into that gap): wait for the second note.
    tmux.keys(&["C-c"]);
    tmux.wait_for("the second Ctrl-C note and a new prompt", |s| {
        s.matches("to leave, type quit or press Ctrl-D").count() >= 2
            && s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim_end)
                == Some("(goat g1)")
    });
    tmux.keys(&["quit", "Enter"]);
    tmux.wait_for("goat to exit", |s| s.contains("goat-exited-0"));
    assert_untouched(pid);
    let history =
        std::fs::read_to_string(home.join(".local/state/goat/history")).expect("the history file");
    for cmd in ["grs", "gr 1", "bt", "quit"] {
        assert!(history.lines().any(|l| l == cmd), "{cmd} in {history}");
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// `goat debug CORE`: the same session commands on a core goat wrote.
#[test]
fn debug_session_on_a_core() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let dir = common::scratch_dir("debug");
    let core = dir.join("states.core");
    common::write_core(fx.pid(), &core);
    let live = stacks(fx.pid());
    drop(fx);

    let (id, _) = chan_receive(&live);
    let script = format!("grs\ngr {id}\nbt\nquit\n");
    let out = common::goat_with_stdin(&["debug", core.to_str().unwrap()], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("core "),
        "banner names the core: {stderr}"
    );
    assert!(
        !stderr.contains("detached"),
        "nothing to detach from a core: {stderr}"
    );
    let listed: BTreeSet<u64> = listed_goroutines(&stdout).into_iter().collect();
    let want: BTreeSet<u64> = live.keys().copied().collect();
    assert_eq!(listed, want, "{stdout}");
    let want_frames: Vec<String> = live[&id].frames.iter().map(|f| f.0.clone()).collect();
    assert_eq!(stack_functions(&stdout), want_frames, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `x ADDR [N]` dumps target memory; an unreadable address is an error and
/// the session goes on.
#[test]
fn examine_memory_prints_hex_and_ascii() {
    build_fixtures();
    let fx = Fixture::start("go1.19-exe", "states", &[]);
    // A non-PIE Go executable is mapped at 0x400000: its ELF header.
    let out = attach_with_stdin(fx.pid(), &[], "x 0x400000 4\nx 0x10 8\nx 0x400000\n");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("0x0000000000400000: 7f 45 4c 46"),
        "{stdout}"
    );
    assert!(lines[0].ends_with(".ELF"), "{stdout}");
    assert!(
        stderr.contains("error:"),
        "unreadable 0x10 is reported: {stderr}"
    );
    assert_eq!(
        lines.len(),
        1 + 4,
        "default 64 bytes = 4 lines after the first dump:\n{stdout}"
    );
    assert_untouched(fx.pid());
}

/// `core FILE` inside a session writes the stop being looked at: the core
/// gives the goroutines the session lists, the session goes on, an existing
/// file is refused without -f, and the target runs on afterwards.
#[test]
fn core_from_inside_a_session() {
    build_fixtures();
    let fx = Fixture::start("go1.19-exe", "states", &[]);
    let dir = std::env::temp_dir().join(format!("goat-session-core-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core = dir.join("in-session.core");
    let c = core.to_str().unwrap();
    let out = attach_with_stdin(
        fx.pid(),
        &[],
        &format!("core {c}\ncore {c}\ncore -f {c}\ngrs\nquit\n"),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("wrote ").count(), 2, "{stdout}");
    assert!(stderr.contains("exists"), "second core refused: {stderr}");
    assert_untouched(fx.pid());
    let mode = std::fs::metadata(&core).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let from_core = run_goat(&["stacks", "--core", c]);
    assert!(from_core.status.success(), "{}", text(&from_core.stderr));
    let in_core: BTreeSet<u64> = traceback::parse(&text(&from_core.stdout))
        .keys()
        .copied()
        .collect();
    let listed: BTreeSet<u64> = listed_goroutines(&stdout).into_iter().collect();
    assert_eq!(in_core, listed, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `disassemble` of the selected frame marks one instruction and names call
/// targets; a function by name and a bad range work or fail cleanly.
#[test]
fn disassemble_marks_the_frame_and_names_calls() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let fx = Fixture::start(flavour, "states", &[]);
        let out = attach_with_stdin(
            fx.pid(),
            &["--batch"],
            "gr 1\ndisass\ndisass -a 0x1 0x2\ndisassemble main.lockMutex\n",
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        // --batch reports the failed command in its status.
        assert!(!out.status.success(), "{flavour}: {stderr}");
        assert_eq!(stdout.matches("\n=>\t").count(), 1, "{flavour}: {stdout}");
        assert!(
            stdout.contains("TEXT runtime.gopark(SB)"),
            "{flavour}: {stdout}"
        );
        assert!(stdout.contains("call runtime.mcall"), "{flavour}: {stdout}");
        assert!(
            stdout.contains("TEXT main.lockMutex(SB)"),
            "{flavour}: {stdout}"
        );
        assert!(stderr.contains("cannot read"), "{flavour}: {stderr}");
        assert_untouched(fx.pid());
    }
}
