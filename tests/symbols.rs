//! Symbols and DWARF from another file than the running executable: a debug
//! file found through `.gnu_debuglink`, `--symbols` with the unstripped
//! build of a stripped binary, and the refusals: another build (the
//! issue's stripped `-s -w` binary beside an unstripped rebuild, whose data
//! sits 0x20 bytes away), a file that is not Go. Values printed through
//! the symbols are the program's own.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    assert_untouched, build_fixtures, fixture_path, run_goat, scratch_dir, text, Fixture,
};

/// goat's exit codes (README's table).
const NOT_GO: i32 = 5;
const WRONG_EXECUTABLE: i32 = 14;

fn objcopy(args: &[&str], dir: &Path) {
    let ok = Command::new("objcopy")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run objcopy (apt-get install binutils)")
        .success();
    assert!(ok, "objcopy {args:?} failed");
}

/// `app`: the unoptimized `vars` fixture stripped of symbols and DWARF
/// with objcopy (its memory image unchanged), and `app.full`, the build it
/// was stripped from.
fn stripped_vars(dir: &Path) {
    std::fs::copy(fixture_path("go1.24-noopt", "vars"), dir.join("app.full")).unwrap();
    objcopy(&["--strip-all", "app.full", "app"], dir);
}

fn session(pid: i32, args: &[&str], script: &str) -> (String, String, Option<i32>) {
    let out = common::attach_with_stdin(pid, args, script);
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

#[test]
fn a_debug_file_named_by_debuglink_is_found_and_used() {
    build_fixtures();
    if !common::require_tool("objcopy", "apt-get install -y binutils") {
        return;
    }
    let dir = scratch_dir("symbols-debuglink");
    stripped_vars(&dir);
    objcopy(&["--only-keep-debug", "app.full", "app.debug"], &dir);
    objcopy(&["--add-gnu-debuglink=app.debug", "app"], &dir);
    let fx = Fixture::start_path(&dir.join("app"), &[]);

    let (out, err, code) = session(fx.pid(), &[], "p main.counter\n");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("42"), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "reading symbols and DWARF from {}",
            dir.join("app.debug").display()
        )),
        "{err}"
    );
    assert_untouched(fx.pid());

    // The same binary without its debug file has nothing to print with:
    // the value above came through the debug file.
    std::fs::rename(dir.join("app.debug"), dir.join("elsewhere")).unwrap();
    let (out, err, _) = session(fx.pid(), &[], "p main.counter\n");
    assert!(!out.contains("42"), "{out}\n{err}");
    assert_untouched(fx.pid());

    // A debug file of another build under that name is not used.
    std::fs::copy(fixture_path("go1.27-noopt", "vars"), dir.join("wrong")).unwrap();
    objcopy(&["--only-keep-debug", "wrong", "app.debug"], &dir);
    let (_, err, _) = session(fx.pid(), &[], "p main.counter\n");
    assert!(
        err.contains("not using a debug file") && err.contains("does not describe"),
        "{err}"
    );
    assert_untouched(fx.pid());
}

#[test]
fn symbols_from_the_unstripped_build_print_values_live_and_from_a_core() {
    build_fixtures();
    if !common::require_tool("objcopy", "apt-get install -y binutils") {
        return;
    }
    let dir = scratch_dir("symbols-full");
    stripped_vars(&dir);
    let full = dir.join("app.full");
    let full = full.to_str().unwrap();
    let fx = Fixture::start_path(&dir.join("app"), &[]);
    let pid = fx.pid();

    let (out, err, code) = session(
        pid,
        &["--symbols", full],
        "p main.counter\nwhatis main.counter\n",
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("42") && out.contains("int"), "{out}\n{err}");
    assert_untouched(pid);

    let stacks = run_goat(&["stacks", "--symbols", full, &pid.to_string()]);
    assert!(stacks.status.success(), "{}", text(&stacks.stderr));
    assert!(text(&stacks.stdout).contains("main.main"));

    let core = dir.join("core");
    let wrote = run_goat(&["core", "-o", core.to_str().unwrap(), &pid.to_string()]);
    assert!(wrote.status.success(), "{}", text(&wrote.stderr));
    assert_untouched(pid);
    let out = common::goat_with_stdin(
        &["debug", "--symbols", full, core.to_str().unwrap()],
        "p main.counter\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("42"), "{}", text(&out.stdout));
}

/// A rebuild, not the build itself: production runs a `strip`ped build,
/// and the symbols come from building the same source again later (Go
/// builds are reproducible, so with the same flags and toolchain the
/// rebuild's code and data sit where production's do, which goat checks).
#[test]
fn symbols_from_a_rebuild_of_the_same_source_print_values() {
    if !common::require_tool("objcopy", "apt-get install -y binutils") {
        return;
    }
    let dir = scratch_dir("symbols-rebuild");
    let flags = ["-gcflags=all=-N -l"];
    let Some(()) = common::go_build("go1.24", "vars", &flags, &dir.join("app.built")) else {
        return;
    };
    objcopy(&["--strip-all", "app.built", "app"], &dir);
    std::fs::remove_file(dir.join("app.built")).unwrap();
    let rebuild = dir.join("app.rebuild");
    let Some(()) = common::go_build("go1.24", "vars", &flags, &rebuild) else {
        return;
    };
    let fx = Fixture::start_path(&dir.join("app"), &[]);
    let (out, err, code) = session(
        fx.pid(),
        &["--symbols", rebuild.to_str().unwrap()],
        "p main.counter\n",
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("42"), "{out}\n{err}");
    assert_untouched(fx.pid());
    // Without them the stripped program has no variables to print.
    let (out, err, _) = session(fx.pid(), &[], "p main.counter\n");
    assert!(!out.contains("42"), "{out}\n{err}");
    assert_untouched(fx.pid());
}

/// The case: production runs a `-s -w` build; the unstripped
/// rebuild of the same source puts the data 0x20 bytes further (the binary
/// records its build flags). goat refuses it and says what differs, never
/// an empty dump.
#[test]
fn another_build_or_a_non_go_file_is_refused() {
    build_fixtures();
    let fx = Fixture::start("go1.24-stripped", "states", &[]);
    let pid = fx.pid().to_string();
    let rebuild = fixture_path("go1.24-exe", "states");
    for args in [
        vec!["stacks", "--symbols", rebuild.to_str().unwrap(), &pid],
        vec!["attach", "--symbols", rebuild.to_str().unwrap(), &pid],
    ] {
        let out = run_goat(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(WRONG_EXECUTABLE), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("does not describe the executable") && err.contains(" is at 0x"),
            "{err}"
        );
        assert_untouched(fx.pid());
    }
    let other_release = fixture_path("go1.27-exe", "states");
    let out = run_goat(&["stacks", "--symbols", other_release.to_str().unwrap(), &pid]);
    assert_eq!(
        out.status.code(),
        Some(WRONG_EXECUTABLE),
        "{}",
        text(&out.stderr)
    );

    for not_go in ["/bin/true", "/etc/passwd"] {
        let out = run_goat(&["stacks", "--symbols", not_go, &pid]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(NOT_GO), "{not_go}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_untouched(fx.pid());
}
