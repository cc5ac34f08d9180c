//! `goat core` of a process whose executable was deleted or replaced since
//! it started (a deploy): the running image is saved beside the core as
//! `CORE.exe` (0600), goat says so, and `goat stacks --core` and `goat
//! debug` then read the core with no `--exe`, exactly as with the original
//! executable. Without the copy the core would be unreadable (exit 13) or
//! refused against the new build (exit 14). `goat why` and `goat heap`,
//! which copy the process the same way, read it too.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{build_fixtures, fixture_path, run_goat, text, Fixture};

const NO_EXECUTABLE: i32 = 13;
const WRONG_EXECUTABLE: i32 = 14;

/// How the program's file goes away after it started.
#[derive(Clone, Copy, Debug)]
enum Deploy {
    /// `rm`: nothing at the name.
    Delete,
    /// A new build renamed over the name, as deploy tools do.
    Replace,
}

/// A copy of `FLAVOUR/states` run from `dir`, its file then deployed over.
fn start_then_deploy(dir: &Path, flavour: &str, how: Deploy) -> (Fixture, PathBuf) {
    let exe = dir.join("states");
    common::install_executable(&fixture_path(flavour, "states"), &exe);
    let fx = Fixture::start_path(&exe, &[]);
    match how {
        Deploy::Delete => std::fs::remove_file(&exe).unwrap(),
        Deploy::Replace => {
            // Another program entirely: what the core must not be read with.
            let new = dir.join("states.new");
            common::install_executable(&fixture_path(flavour, "ticker"), &new);
            std::fs::rename(&new, &exe).unwrap();
        }
    }
    (fx, dir.join("states.core"))
}

fn stacks(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_goat(args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn replay(flavour: &str, how: Deploy) {
    let dir = common::scratch_dir(&format!("saved-exe-{flavour}-{how:?}"));
    let (fx, core) = start_then_deploy(&dir, flavour, how);
    let core_s = core.to_str().unwrap();
    let out = run_goat(&["core", &fx.pid().to_string(), "-o", core_s]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{flavour} {how:?}: goat core: {err}");
    common::assert_untouched(fx.pid());
    let saved = dir.join("states.core.exe");
    assert!(
        err.contains("was replaced or removed since pid")
            && err.contains(&format!(
                "saved the running executable as {}",
                saved.display()
            )),
        "{flavour} {how:?}: goat core did not say it saved the executable: {err}"
    );
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{flavour} {how:?}");
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(fixture_path(flavour, "states")).unwrap(),
        "{flavour} {how:?}: the saved copy is not the running executable"
    );
    drop(fx);

    // The oracle: the same core read with the original build by hand.
    let original = fixture_path(flavour, "states");
    let (code, want, werr) = stacks(&[
        "stacks",
        "--core",
        core_s,
        "--exe",
        original.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{flavour} {how:?}: with --exe: {werr}");
    assert!(want.contains("[chan receive]"), "{want}");
    let (code, got, gerr) = stacks(&["stacks", "--core", core_s]);
    assert_eq!(code, Some(0), "{flavour} {how:?}: no --exe: {gerr}");
    assert!(
        gerr.contains(&format!("saved beside the core: {}", saved.display())),
        "{flavour} {how:?}: did not say which executable it read: {gerr}"
    );
    assert_eq!(got, want, "{flavour} {how:?}: read with the saved copy");

    let (code, session, serr) = stacks(&["debug", core_s, "--batch", "-x", "goroutines"]);
    assert_eq!(code, Some(0), "{flavour} {how:?}: goat debug: {serr}");
    assert!(session.contains("main."), "{flavour} {how:?}: {session}");

    // Without the copy, what the core names is gone or another program.
    std::fs::remove_file(&saved).unwrap();
    let (code, got, err) = stacks(&["stacks", "--core", core_s]);
    let refused = match how {
        Deploy::Delete => NO_EXECUTABLE,
        Deploy::Replace => WRONG_EXECUTABLE,
    };
    assert_eq!(code, Some(refused), "{flavour} {how:?}: {err}");
    assert!(got.is_empty(), "{got}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_or_replaced_executable_is_saved_beside_the_core() {
    build_fixtures();
    for flavour in ["go1.19-pie", "go1.27-exe"] {
        for how in [Deploy::Delete, Deploy::Replace] {
            replay(flavour, how);
        }
    }
}

#[test]
fn an_executable_still_in_place_is_not_copied() {
    build_fixtures();
    let dir = common::scratch_dir("saved-exe-in-place");
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let core = dir.join("c.core");
    let out = run_goat(&["core", &fx.pid().to_string(), "-o", core.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!dir.join("c.core.exe").exists());
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `goat why` and `goat heap` copy the process as `goat core` does, then
/// read the copy while it runs on: after a deploy they read the running
/// executable through `/proc/PID/exe`, as `goat stacks` does, and save no
/// copy of it (theirs is private and gone when they end). Before, both
/// failed: "cannot read executable" of the name's "(deleted)" form.
#[test]
fn why_and_heap_read_a_process_whose_executable_was_deployed_over() {
    build_fixtures();
    for how in [Deploy::Delete, Deploy::Replace] {
        let dir = common::scratch_dir(&format!("deployed-why-heap-{how:?}"));
        let (fx, _) = start_then_deploy(&dir, "go1.27-exe", how);
        let pid = fx.pid().to_string();
        for (command, says) in [("why", "goat why: pid "), ("heap", "goat heap: pid ")] {
            let out = run_goat(&[command, &pid]);
            let (said, err) = (text(&out.stdout), text(&out.stderr));
            assert!(out.status.success(), "{how:?}: goat {command}: {err}");
            assert!(said.starts_with(says), "{how:?}: goat {command}: {said}");
            assert!(
                err.contains("reading the running executable through /proc/")
                    && !err.contains("saved the running executable"),
                "{how:?}: goat {command}: {err}"
            );
        }
        common::assert_untouched(fx.pid());
        drop(fx);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
