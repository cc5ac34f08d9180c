//! Files goat writes while a target waits stopped (`dump-bytes`, the
//! session's `core`, `goat core -o`) are regular files of its own: a FIFO,
//! a device, a socket or a directory at the destination is refused at once
//! (opening a FIFO used to hang the session, target stopped), a symbolic
//! link is neither followed nor replaced, and a file replaced with -f ends
//! up 0600 whatever its mode was. The target runs on untraced afterwards.

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{assert_untouched, build_fixtures, goat, run_goat, scratch_dir, text, Fixture};

/// Runs `goat ARGS` with `script` on stdin, failing (after killing goat)
/// if it takes more than `limit`: what a blocking open would do.
fn within(limit: Duration, args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = goat()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goat");
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(script.as_bytes())
        .expect("write the script");
    drop(stdin);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for goat"),
        Err(_) => {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            panic!("goat {args:?} still running after {limit:?} (blocked on a file?)");
        }
    }
}

/// Destinations that are not regular files, with what goat must call them.
struct Specials {
    dir: PathBuf,
    fifo: PathBuf,
    /// A character device made here (`mknod`, when allowed) or `/dev/null`.
    node: PathBuf,
    link: PathBuf,
    victim: PathBuf,
    /// A socket, bound while this lives.
    sock: PathBuf,
    _listener: std::os::unix::net::UnixListener,
}

impl Specials {
    fn make(name: &str) -> Specials {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dir = scratch_dir(name);
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let made = dir.join("null");
        let node = match mknod(
            &made,
            SFlag::S_IFCHR,
            Mode::S_IRUSR | Mode::S_IWUSR,
            makedev(1, 3),
        ) {
            Ok(()) => made,
            Err(_) => PathBuf::from("/dev/null"),
        };
        let victim = dir.join("victim");
        std::fs::write(&victim, b"not yours").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let sock = dir.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        Specials {
            dir,
            fifo,
            node,
            link,
            victim,
            sock,
            _listener,
        }
    }

    /// Each destination and the words goat's refusal must contain.
    fn cases(&self) -> Vec<(&Path, String)> {
        let said = |p: &Path, what: &str| format!("not writing to {}: it is {what}", p.display());
        vec![
            (&self.fifo, said(&self.fifo, "a FIFO, not a regular file")),
            (
                &self.node,
                said(&self.node, "a character device, not a regular file"),
            ),
            (
                Path::new("/dev/null"),
                said(Path::new("/dev/null"), "a character device"),
            ),
            (&self.sock, said(&self.sock, "a socket, not a regular file")),
            (
                &self.dir,
                said(&self.dir, "a directory, not a regular file"),
            ),
            (&self.link, said(&self.link, "a symbolic link to ")),
        ]
    }

    /// Everything is as it was, and no temporary was left behind.
    fn assert_intact(&self) {
        let ft = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();
        assert!(ft(&self.fifo).is_fifo());
        assert!(ft(&self.node).is_char_device());
        assert!(ft(&self.sock).is_socket());
        assert!(ft(&self.link).is_symlink());
        assert_eq!(std::fs::read(&self.victim).unwrap(), b"not yours");
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-goat")), "{names:?}");
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A 0644 file in `dir` holding `old`.
fn loose_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b"old").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

#[test]
fn session_refuses_special_destinations_and_replaces_files_0600() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "vars", &[]);
    let sp = Specials::make("out-session");
    let loose = loose_file(&sp.dir, "loose.bin");
    let loose_core = loose_file(&sp.dir, "loose.core");
    let mut script = String::new();
    for (dest, _) in sp.cases() {
        let d = dest.display();
        script += &format!("dump-bytes main.gLongStr {d} -f\ndump-bytes main.gLongStr {d}\n");
        script += &format!("core -f {d}\ncore {d}\n");
    }
    let (l, c) = (loose.display(), loose_core.display());
    script += &format!("dump-bytes main.gLongStr {l}\ndump-bytes main.gLongStr {l} --force\n");
    script += &format!("core {c}\ncore -f {c}\nquit\n");
    let pid = fx.pid().to_string();
    let out = within(Duration::from_secs(60), &["attach", &pid], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    for (_, said) in sp.cases() {
        // Refused four times each (dump-bytes and core, with and without -f).
        let n = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("error: {said}")))
            .count();
        assert_eq!(n, 4, "{said:?} in:\n{stderr}");
    }
    assert_eq!(
        stderr.matches("already exists (use -f or --force").count(),
        2,
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("wrote 120 bytes to {l}")),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&loose).unwrap(), "ab".repeat(60).as_bytes());
    assert_eq!(mode(&loose), 0o600, "replaced with -f: 0600");
    assert_eq!(stdout.matches("wrote ").count(), 2, "{stdout}");
    assert!(std::fs::read(&loose_core).unwrap().starts_with(b"\x7fELF"));
    assert_eq!(mode(&loose_core), 0o600);
    sp.assert_intact();
    assert_untouched(fx.pid());
    let _ = std::fs::remove_dir_all(&sp.dir);
}

#[test]
fn goat_core_refuses_special_destinations_and_replaces_files_0600() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "vars", &[]);
    let pid = fx.pid().to_string();
    let sp = Specials::make("out-core");
    for (dest, said) in sp.cases() {
        for force in [&["--force"][..], &["-f"], &[]] {
            let args = [&["core", &pid, "-o", dest.to_str().unwrap()][..], force].concat();
            let out = within(Duration::from_secs(60), &args, "");
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("goat: {said}")),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        }
    }
    let loose = loose_file(&sp.dir, "core");
    let out = run_goat(&["core", &pid, "-o", loose.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(&loose).unwrap().starts_with(b"\x7fELF"));
    assert_eq!(mode(&loose), 0o600, "replaced with --force: 0600");
    sp.assert_intact();
    assert_untouched(fx.pid());

    // On a core (`goat debug`), dump-bytes refuses the same way.
    let core = loose.display().to_string();
    let mut args = vec!["debug", core.as_str(), "--batch"];
    let cmds: Vec<String> = sp
        .cases()
        .iter()
        .map(|(d, _)| format!("dump-bytes main.gLongStr {} -f", d.display()))
        .collect();
    for c in &cmds {
        args.extend(["-x", c.as_str()]);
    }
    let out = within(Duration::from_secs(60), &args, "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (_, said) in sp.cases() {
        assert!(
            stderr.contains(&format!("error: {said}")),
            "{said:?} in:\n{stderr}"
        );
    }
    sp.assert_intact();
    let _ = std::fs::remove_dir_all(&sp.dir);
}

/// `goat core` ended by SIGTERM, SIGHUP or Ctrl-C while it writes leaves
/// neither a temporary core nor a touched target, in every mode: the
/// signal thread's `exit` runs no destructors, so the temporary must be
/// removed on purpose (a campaign found one left after the tracer process
/// had died and goat traced from itself).
#[test]
fn goat_core_ended_by_a_signal_leaves_no_temporary() {
    use nix::sys::signal::{kill, Signal};
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let dir = scratch_dir("core-signalled");
    let dest = dir.join("core");
    for (mode, sig) in [
        ("stop", Signal::SIGTERM),
        ("fork", Signal::SIGHUP),
        ("live", Signal::SIGINT),
        ("fork", Signal::SIGTERM),
    ] {
        let ctx = format!("--mode {mode}, {sig}");
        let (mut child, said) = common::spawn_held(&mut common::core_holding(
            fx.pid(),
            Some(mode),
            &dest,
            20_000,
        ));
        kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().expect("wait for goat");
        let said = said.join().unwrap();
        assert_eq!(status.code(), Some(128 + sig as i32), "{ctx}: {said}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{ctx}: left {left:?}; goat said {said}");
        assert_untouched(fx.pid());
    }
}
