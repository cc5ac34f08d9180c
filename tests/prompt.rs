//! The interactive prompt on terminals that never answer a query (`script`
//! fed by a pipe: reedline waited 2 s for each cursor-position answer, so
//! `quit` took up to a minute with the target stopped), and the history
//! file: private, never followed through a symlink, kept only by
//! interactive sessions.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_untouched, build_fixtures, goat, scratch_dir, text, Fixture};

/// `goat ARGS` under `script`, whose terminal answers nothing: its input is
/// a pipe kept open, its output (goat's stdout and stderr) collected.
struct Scripted {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Scripted {
    fn start(home: &Path, args: &str) -> Scripted {
        let have = Command::new("script").arg("--version").output();
        assert!(
            have.is_ok_and(|o| o.status.success()),
            "this test needs util-linux's script: apt-get install -y bsdutils"
        );
        let goat_bin = env!("CARGO_BIN_EXE_goat");
        let mut child = Command::new("script")
            .args([
                "-q",
                "-e",
                "-c",
                &format!("'{goat_bin}' {args}"),
                "/dev/null",
            ])
            .env("HOME", home)
            .env_remove("XDG_STATE_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run script");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut out = child.stdout.take().expect("stdout");
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdin = child.stdin.take();
        Scripted { child, stdin, seen }
    }

    fn output(&self) -> String {
        text(&self.seen.lock().unwrap())
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write");
        stdin.flush().expect("flush");
    }

    /// Waits up to `limit` for the output to contain `what`.
    fn wait_for(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} within {limit:?}; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for goat (and script) to exit.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "still running {limit:?} after quit; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        // goat sees end of input and detaches; script is killed if stuck.
        self.stdin.take();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn history(home: &Path) -> PathBuf {
    home.join(".local/state/goat/history")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// One session under `script`: the prompt comes right after the banner,
/// `grs` and `quit` are acted on within seconds (reedline took 4 s to show
/// a prompt there, waiting for two answers; the limits leave room for a
/// loaded machine); returns the output.
fn session(home: &Path, pid: i32) -> String {
    let mut s = Scripted::start(home, &format!("attach {pid}"));
    s.wait_for("attached to", Duration::from_secs(30));
    s.wait_for("(goat g", Duration::from_secs(3));
    s.send("grs");
    s.wait_for(" goroutines]", Duration::from_secs(3));
    s.send("quit");
    let status = s.wait_exit(Duration::from_secs(5));
    let out = s.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("goat: detached from"), "{out}");
    assert_untouched(pid);
    out
}

#[test]
fn prompt_works_on_a_terminal_that_never_answers() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let home = scratch_dir("prompt-home");
    let out = session(&home, fx.pid());
    assert!(
        out.contains("did not answer a cursor-position query within 200 ms"),
        "{out}"
    );
    // The plain reader keeps history.
    let h = history(&home);
    assert_eq!(mode(&h), 0o600);
    assert_eq!(std::fs::read_to_string(&h).unwrap(), "grs\nquit\n");

    // Commands typed ahead, as a pipe feeds them, before any prompt (with
    // reedline this took 50 s: its queries' waits swallowed the input).
    let mut s = Scripted::start(&home, &format!("attach {}", fx.pid()));
    s.wait_for("attached to", Duration::from_secs(30));
    s.send("grs");
    std::thread::sleep(Duration::from_millis(300));
    s.send("quit");
    let status = s.wait_exit(Duration::from_secs(8));
    let out = s.output();
    assert!(status.success(), "{out}");
    assert!(out.contains(" goroutines]"), "{out}");
    assert_untouched(fx.pid());
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn history_is_private_never_followed_and_only_interactive() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let pid = fx.pid();
    let home = scratch_dir("history-home");
    let h = history(&home);
    std::fs::create_dir_all(h.parent().unwrap()).unwrap();

    // A symlink there: refused with one note, not followed, session works.
    let victim = home.join("victim");
    std::fs::write(&victim, b"someone else's\n").unwrap();
    std::os::unix::fs::symlink(&victim, &h).unwrap();
    let out = session(&home, pid);
    let note = format!(
        "goat: not keeping history in {}: it is a symbolic link",
        h.display()
    );
    assert_eq!(out.matches(&note).count(), 1, "{out}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"someone else's\n");
    assert!(std::fs::symlink_metadata(&h).unwrap().is_symlink());

    // A FIFO there: refused without blocking the session's start.
    std::fs::remove_file(&h).unwrap();
    nix::unistd::mkfifo(&h, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = session(&home, pid);
    assert!(out.contains("it is a FIFO, not a regular file"), "{out}");
    assert!(std::fs::symlink_metadata(&h).unwrap().file_type().is_fifo());

    // An existing 0644 history: read, tightened to 0600, appended to.
    std::fs::remove_file(&h).unwrap();
    std::fs::write(&h, b"bt\n").unwrap();
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o644)).unwrap();
    session(&home, pid);
    assert_eq!(mode(&h), 0o600);
    assert_eq!(std::fs::read_to_string(&h).unwrap(), "bt\ngrs\nquit\n");

    // --batch on a terminal, and commands from a pipe: no history at all.
    std::fs::remove_file(&h).unwrap();
    let mut s = Scripted::start(&home, &format!("attach {pid} --batch -x grs"));
    let status = s.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", s.output());
    let out = goat()
        .args(["attach", &pid.to_string()])
        .env("HOME", &home)
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"grs\nquit\n")?;
            c.wait_with_output()
        })
        .expect("run goat");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(" goroutines]"));
    assert!(!h.exists(), "history written by a batch or piped session");
    assert_untouched(pid);
    let _ = std::fs::remove_dir_all(&home);
}
