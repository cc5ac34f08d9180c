//! `goat core` when things go wrong around it: a full disk, temporaries a
//! killed goat left behind, a target whose seccomp filter refuses a fork.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_untouched, build_fixtures, goat, run_goat, Fixture};

fn scratch(tag: &str) -> PathBuf {
    common::scratch_dir(&format!("faults-{tag}"))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` when this test cannot mount one and `GOAT_SKIP_ROOT` or
    /// `GOAT_SKIP_TMPFS` says to skip it (see `common::require`).
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !common::require(
            "root",
            root,
            "mounting a small tmpfs needs root: run the tests as root",
        ) {
            return None;
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .expect("mount");
        if !out.status.success() {
            let why = format!(
                "cannot mount a tmpfs here ({}): run the tests where root may mount (a container needs CAP_SYS_ADMIN)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            let _ = common::require("tmpfs", false, &why);
            return None;
        }
        Some(SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_plainly_removes_the_temporary_and_spares_the_target() {
    build_fixtures();
    let dir = scratch("full");
    let Some(_disk) = SmallDisk::mount(&dir, "8m") else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    // 64 MiB of ever-changing bytes: far more than 8 MiB of core.
    let mut fx = Fixture::start("go1.27-pie", "checksum", &[]);
    for mode in ["fork", "stop", "live"] {
        let dest = dir.join(format!("core.{mode}"));
        let out = run_goat(&[
            "core",
            &fx.pid().to_string(),
            "--mode",
            mode,
            "-o",
            dest.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}: {err}");
        let want = format!("no space left on device writing {} after ", dest.display());
        assert!(err.contains(&want), "{mode}: {err}");
        let mib: u64 = err
            .split(&want)
            .nth(1)
            .and_then(|r| r.split(' ').next()?.parse().ok())
            .expect("after N MiB");
        assert!((1..=8).contains(&mib), "{mode}: {err}");
        assert!(err.contains("partial file was removed"), "{mode}: {err}");
        assert_eq!(entries(&dir), Vec::<String>::new(), "{mode}: left behind");
        assert_untouched(fx.pid());
        let kids = common::children(fx.pid());
        assert!(kids.is_empty(), "{mode}: copy left: {kids:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        fx.child.try_wait().unwrap().is_none(),
        "the checksum fixture exited (CORRUPT?)"
    );
    drop(_disk);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_goats_temporary_is_removed_by_the_next_run() {
    build_fixtures();
    let dir = scratch("stale");
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid().to_string();
    let (mut g, _) = common::spawn_held(&mut common::core_holding(
        fx.pid(),
        None,
        &dir.join("core.first"),
        5000,
    ));
    let dead = g.id();
    // Both goat and its tracer process killed (the tracer alone would have
    // removed the temporary as it exited): only the next run can.
    let tracer = common::tracer_of(fx.pid());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tracer),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    g.kill().unwrap();
    let _ = g.wait();
    assert_untouched(fx.pid());
    let left = entries(&dir);
    let stale = format!(".core.first.tmp-goat{dead}-");
    assert!(
        left.len() == 1 && left[0].starts_with(&stale),
        "expected one temporary named {stale}XXXXXX: {left:?}"
    );
    // A file of the same shape that is not ours to remove: world-readable.
    let decoy = dir.join(format!(".notes.tmp-goat{dead}-abcdef"));
    std::fs::write(&decoy, b"keep").unwrap();

    let out = run_goat(&[
        "core",
        &pid,
        "-o",
        dir.join("core.second").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let removed = format!("removed {}", dir.join(&left[0]).display());
    assert!(err.contains(&removed), "{err}");
    assert!(err.contains(&format!("goat pid {dead}")), "{err}");
    assert_eq!(
        entries(&dir),
        vec![
            ".notes.tmp-goat".to_string() + &format!("{dead}-abcdef"),
            "core.second".to_string()
        ]
    );
    assert_untouched(fx.pid());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_seccomp_filtered_target_gets_a_stop_mode_core() {
    build_fixtures();
    let dir = scratch("seccomp");
    let fx = Fixture::start("go1.27-pie", "seccomp", &[]);
    let pid = fx.pid().to_string();
    let live = common::goroutine_ids(&["stacks", &pid]);
    assert!(live.len() >= 4, "{live:?}");
    // As shipped, goat does not even try; with the test variable it injects
    // the clone, the filter refuses it (EPERM), and goat falls back.
    for (try_clone, why) in [
        (false, "the target runs under a seccomp filter"),
        (
            true,
            "cloning the target failed: clone in the target: EPERM",
        ),
    ] {
        let core = dir.join(format!("core.{try_clone}"));
        let mut cmd = goat();
        cmd.args(["core", &pid, "--mode", "fork", "--stats", "-o"])
            .arg(&core);
        if try_clone {
            cmd.env(common::hook("GOAT_TEST_CLONE_UNDER_SECCOMP"), "1");
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("goat: fork mode unavailable: {why}")),
            "{err}"
        );
        assert!(err.contains("goat: used stop mode instead"), "{err}");
        assert!(err.contains("mode stop:"), "{err}");
        assert_untouched(fx.pid());
        assert!(
            common::children(fx.pid()).is_empty(),
            "{:?}",
            common::children(fx.pid())
        );
        // A valid core: goat reads the same goroutines from it, gdb loads it.
        let from_core = common::goroutine_ids(&["stacks", "--core", core.to_str().unwrap()]);
        assert_eq!(from_core, live, "{try_clone}");
        let gdb = Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "info threads"])
            .arg(&fx.path)
            .arg(&core)
            .output()
            .expect("gdb");
        let text = String::from_utf8_lossy(&gdb.stdout);
        assert!(text.matches("LWP ").count() >= 4, "{text}");
        // The target still works after the refused clone: same goroutines.
        assert_eq!(
            common::goroutine_ids(&["stacks", &pid]),
            live,
            "{try_clone}"
        );
    }
    // The default, live mode, injects a syscall too, so it is not tried.
    let core = dir.join("core.default");
    let out = run_goat(&["core", &pid, "--stats", "-o", core.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("goat: live mode unavailable: the target runs under a seccomp filter"),
        "{err}"
    );
    assert!(err.contains("goat: used stop mode instead"), "{err}");
    assert_untouched(fx.pid());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_target_killed_mid_write_gets_a_plain_error_and_no_file() {
    build_fixtures();
    let dir = scratch("killed");
    for mode in ["live", "fork", "stop"] {
        let mut fx = Fixture::start("go1.27-exe", "bigheap", &["64"]);
        let dest = dir.join(format!("core.{mode}"));
        let (mut g, said) =
            common::spawn_held(&mut common::core_holding(fx.pid(), Some(mode), &dest, 1500));
        fx.child.kill().unwrap();
        let _ = fx.child.wait();
        let status = g.wait().unwrap();
        let err = said.join().unwrap();
        if mode == "fork" {
            // The copy was taken while the target lived and outlives it:
            // the core is that moment's, whole (its reaper thread died with
            // the target, whose copy init then reaps).
            assert!(status.success(), "{mode}: {err}");
            let exe = common::fixture_path("go1.27-exe", "bigheap");
            let read = run_goat(&[
                "stacks",
                "--core",
                dest.to_str().unwrap(),
                "--exe",
                exe.to_str().unwrap(),
            ]);
            let said = String::from_utf8_lossy(&read.stdout);
            assert!(read.status.success(), "{mode}: {said}");
            assert!(said.contains("main.main"), "{mode}: {said}");
            let _ = std::fs::remove_file(&dest);
            continue;
        }
        assert!(!status.success(), "{mode}: {err}");
        assert!(
            err.contains(&format!(
                "pid {} exited while its core was being written; nothing was saved",
                fx.pid()
            )),
            "{mode}: {err}"
        );
        assert_eq!(entries(&dir), Vec::<String>::new(), "{mode}: left behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
