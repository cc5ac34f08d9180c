//! The file users copy onto a box (`scripts/dist`: target/dist/goat) runs
//! in an empty root, a directory holding only that file and /proc, as in
//! a distroless container or an ephemeral debug container: no libc, no
//! shell, no /tmp. It reads a process outside the root exactly as the
//! usual build does, writes a core there, and holds a session.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_untouched, build_fixtures, run_goat, text, Fixture};

fn dist_binary() -> Option<PathBuf> {
    let path = common::root().join("target/dist/goat");
    common::require("static goat", path.is_file(), "run scripts/dist").then_some(path)
}

/// An empty root at `dir` (goat as /goat, /proc bound from the host) in a
/// mount namespace of its own, where `args` run as `/goat ARGS`.
fn in_empty_root(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let script = format!(
        "mount --bind /proc {root}/proc && exec chroot {root} /goat \"$@\"",
        root = dir.display()
    );
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run unshare");
    use std::io::Write;
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for goat")
}

#[test]
fn the_static_file_works_in_an_empty_root() {
    if !common::require_tool("unshare", "apt-get install -y util-linux") {
        return;
    }
    let Some(goat) = dist_binary() else {
        return;
    };
    // That it is static is shown by running at all: the root has no
    // loader and no libc.
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid().to_string();

    let dir = common::scratch_dir("empty-root");
    std::fs::create_dir_all(dir.join("proc")).unwrap();
    common::install_executable(&goat, &dir.join("goat"));
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(entries.len(), 2, "the root holds goat and /proc only");

    // stacks: the same goroutines as the usual build sees.
    let out = in_empty_root(&dir, &["stacks", &pid], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = run_goat(&["stacks", &pid]);
    let ids = |o: &Output| common::ids_after(text(&o.stdout).lines(), "goroutine ");
    assert_eq!(ids(&out), ids(&host), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("main.chanReceive"));
    assert_untouched(fx.pid());

    // A core written inside the root, read back by the usual build.
    let out = in_empty_root(&dir, &["core", &pid, "-o", "/core"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_untouched(fx.pid());
    let core = dir.join("core");
    let exe = common::fixture_path("go1.27-pie", "states");
    let read = run_goat(&[
        "stacks",
        "--core",
        core.to_str().unwrap(),
        "--exe",
        exe.to_str().unwrap(),
    ]);
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(ids(&read), ids(&host));

    // A session (its tracer process is goat itself, re-executed).
    let out = in_empty_root(&dir, &["attach", &pid], "grs\ngr 1\nbt\nquit\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("in main.main"),
        "{}",
        text(&out.stdout)
    );
    assert_untouched(fx.pid());
    let _ = std::fs::remove_dir_all(&dir);
}
