//! `goat stacks --core`: gdb's `gcore` of a live fixture must give the same
//! goroutines as `goat stacks PID` on it a moment before; the kernel's own
//! core (GOTRACEBACK=crash) the same parked goroutines as the runtime's dump
//! printed as it died; bad cores a one-line error and a distinct exit code.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::kernel_core::{kernel_core, kernel_core_fix, TempDir};
use common::traceback::{self, Block};
use common::{build_fixtures, fixture_path, run_goat, Fixture};

const NOT_GO: i32 = 5;
const NOT_CORE: i32 = 11;
const BAD_CORE: i32 = 12;
const NO_EXECUTABLE: i32 = 13;

fn have_gcore() -> bool {
    // gcore has no --version; that it runs at all is enough.
    Command::new("gcore").arg("--help").output().is_ok()
}

/// `gcore -o DIR/core PID`: stops the process, writes DIR/core.PID, detaches.
fn gcore(pid: i32, dir: &Path) -> PathBuf {
    let out = Command::new("gcore")
        .arg("-o")
        .arg(dir.join("core"))
        .arg(pid.to_string())
        .output()
        .expect("run gcore");
    let path = dir.join(format!("core.{pid}"));
    assert!(
        out.status.success() && path.exists(),
        "gcore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn goat_ok(args: &[&str]) -> String {
    let out = run_goat(args);
    assert!(
        out.status.success(),
        "goat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "goat {args:?} warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn parked(b: &Block) -> bool {
    !matches!(
        b.status(),
        "running" | "runnable" | "preempted" | "copystack"
    )
}

/// Every goroutine of `want` is in `got` with the same header, frames and
/// creator; running ones (which moved between the two looks) by function only.
fn assert_same(
    label: &str,
    got: &BTreeMap<u64, Block>,
    want: &BTreeMap<u64, Block>,
    texts: (&str, &str),
) {
    let ctx = || format!("{label}\n--- core:\n{}\n--- live:\n{}", texts.0, texts.1);
    assert!(
        want.len() >= 15,
        "only {} goroutines: {}",
        want.len(),
        ctx()
    );
    for (id, w) in want {
        let g = got
            .get(id)
            .unwrap_or_else(|| panic!("goroutine {id} missing, {}", ctx()));
        // The runtime's own goroutines change state on their own between
        // the two looks (the scavenger goes from "GC scavenge wait" to
        // "sleep"): only the fixture's are frozen.
        let own = *id == 1
            || w.created_by
                .as_ref()
                .is_some_and(|c| c.0.starts_with("main."));
        if !own {
            continue;
        }
        assert_eq!(g.gp, w.gp, "goroutine {id} gp, {}", ctx());
        assert_eq!(
            g.created_by,
            w.created_by,
            "goroutine {id} created by, {}",
            ctx()
        );
        if parked(w) {
            assert_eq!(g.bracket, w.bracket, "goroutine {id} header, {}", ctx());
            assert_eq!(g.frames, w.frames, "goroutine {id} frames, {}", ctx());
        } else {
            // A spinning goroutine is running at one look and preempted
            // (runnable, under runtime.asyncPreempt) at the other: the
            // same code, below the runtime's frames.
            assert!(
                !parked(g),
                "goroutine {id} parked in one look only, {}",
                ctx()
            );
            let funcs = |b: &Block| {
                b.frames
                    .iter()
                    .map(|f| f.0.clone())
                    .skip_while(|f| f.starts_with("runtime."))
                    .collect::<Vec<_>>()
            };
            assert_eq!(funcs(g), funcs(w), "goroutine {id} functions, {}", ctx());
        }
    }
    for (id, g) in got {
        let own = g
            .created_by
            .as_ref()
            .is_some_and(|c| c.0.starts_with("main.main"));
        assert!(
            !own || want.contains_key(id),
            "extra goroutine {id}, {}",
            ctx()
        );
    }
}

fn gcore_matches_live(flavour: &str) {
    let dir = TempDir::new(flavour);
    let fx = Fixture::start(flavour, "states", &["spin"]);
    let pid = fx.pid();
    let live_text = goat_ok(&["stacks", &pid.to_string()]);
    let core = gcore(pid, &dir.0);
    drop(fx);
    let core_s = core.to_str().unwrap();

    let found = goat_ok(&["stacks", "--core", core_s]);
    let exe = fixture_path(flavour, "states");
    let given = goat_ok(&["stacks", "--core", core_s, "--exe", exe.to_str().unwrap()]);
    assert_eq!(found, given, "{flavour}: --exe changes the dump");

    let live = traceback::parse(&live_text);
    let ours = traceback::parse(&found);
    assert_same(flavour, &ours, &live, (&found, &live_text));
    // The spinning goroutine is on a thread: its frames come from that
    // thread's registers in the core.
    let spin = ours
        .values()
        .find(|b| b.frames.iter().any(|f| f.0 == "main.spin"))
        .unwrap_or_else(|| panic!("{flavour}: no main.spin goroutine:\n{found}"));
    assert_eq!(spin.status(), "running", "{flavour}:\n{found}");
    assert_eq!(spin.frames[0].0, "main.spin", "{flavour}:\n{found}");

    let json = goat_ok(&["stacks", "--json", "--core", core_s]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["goroutines"].as_array().map(Vec::len), Some(ours.len()));
}

#[test]
fn gcore_gives_the_same_goroutines_as_the_live_process() {
    build_fixtures();
    if !common::require("gcore", have_gcore(), "install gdb (apt-get install gdb)") {
        return;
    }
    for f in ["go1.19-exe", "go1.21-pie", "go1.27-pie"] {
        gcore_matches_live(f);
    }
}

/// The crash dump prints the signalled thread's registers (and a
/// `SIGQUIT: quit` banner) right after a goroutine's frames; blank them out
/// so they are not read as frames.
fn without_registers(text: &str) -> String {
    let noise = |l: &str| {
        let mut w = l.split_whitespace();
        let reg = matches!((w.next(), w.next(), w.next()), (Some(n), Some(v), None)
            if n.chars().all(|c| c.is_ascii_alphanumeric()) && v.starts_with("0x"));
        reg || l.starts_with("-----") || l.starts_with("SIGQUIT") || l.starts_with("PC=")
    };
    text.lines()
        .map(|l| if noise(l) { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

fn kernel_core_matches_runtime_dump(flavour: &str) {
    let dir = TempDir::new(&format!("k-{flavour}"));
    let exe = fixture_path(flavour, "states");
    let (runtime_text, core) = kernel_core(&exe, &dir.0);
    let core = match core {
        Ok(c) => c,
        Err(why) => {
            let _ = common::require("kernel core", false, &kernel_core_fix(&why));
            return;
        }
    };
    let text = goat_ok(&["stacks", "--core", core.to_str().unwrap()]);
    let ours = traceback::parse(&text);
    // The crash dump also prints each M's g0 as `goroutine 0`: not goroutines.
    let theirs: BTreeMap<u64, Block> = traceback::parse(&without_registers(&runtime_text))
        .into_iter()
        .filter(|(id, _)| *id != 0)
        .collect();
    let ctx = || format!("{flavour}\n--- goat:\n{text}\n--- runtime:\n{runtime_text}");
    let mut compared = 0;
    for (id, want) in &theirs {
        if !parked(want) {
            continue;
        }
        let got = ours
            .get(id)
            .unwrap_or_else(|| panic!("goroutine {id} missing, {}", ctx()));
        assert_eq!(
            got.bracket,
            want.bracket,
            "goroutine {id} status, {}",
            ctx()
        );
        assert_eq!(got.frames, want.frames, "goroutine {id} frames, {}", ctx());
        assert_eq!(
            got.created_by,
            want.created_by,
            "goroutine {id} created by, {}",
            ctx()
        );
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} compared, {}", ctx());
}

#[test]
fn kernel_core_gives_the_runtime_s_own_dump() {
    build_fixtures();
    for f in ["go1.19-exe", "go1.21-pie", "go1.24-exe", "go1.27-pie"] {
        kernel_core_matches_runtime_dump(f);
    }
}

fn assert_clean_failure(out: &std::process::Output, code: i32, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    assert!(err.starts_with("goat: "), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    assert!(err.contains(words), "expected {words:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_said_once(&err);
}

/// No part of a message is said twice (`cannot read X: not a regular
/// file: not a regular file` came from a cause both in the text and in
/// the error chain).
fn assert_said_once(err: &str) {
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} said twice in:\n{err}");
    }
}

#[test]
fn bad_cores_get_one_line_and_distinct_exit_codes() {
    build_fixtures();
    let dir = TempDir::new("bad");
    // Not a core: a text file and an executable.
    let text = common::root().join("README.md");
    let out = run_goat(&["stacks", "--core", text.to_str().unwrap()]);
    assert_clean_failure(&out, NOT_CORE, "not an x86-64 ELF core file");
    let exe = fixture_path("go1.27-exe", "states");
    let out = run_goat(&["stacks", "--core", exe.to_str().unwrap()]);
    assert_clean_failure(&out, NOT_CORE, "not a core");
    let out = run_goat(&["stacks", "--core", "/nonexistent/core"]);
    assert_clean_failure(&out, 1, "cannot read /nonexistent/core: No such file");
    let out = run_goat(&["stacks", "--core", dir.0.to_str().unwrap()]);
    assert_clean_failure(&out, 1, "not a regular file");

    // A core whose executable has gone: copy the fixture, crash the copy,
    // delete it.
    let copy = dir.0.join("states-copy");
    common::install_executable(&exe, &copy);
    let (_, core) = kernel_core(&copy, &dir.0);
    let core = match core {
        Ok(c) => c,
        Err(why) => {
            let _ = common::require("kernel core", false, &kernel_core_fix(&why));
            return;
        }
    };
    std::fs::remove_file(&copy).unwrap();
    let core_s = core.to_str().unwrap();
    let out = run_goat(&["stacks", "--core", core_s]);
    assert_clean_failure(&out, NO_EXECUTABLE, "not on this machine: pass --exe");
    assert!(String::from_utf8_lossy(&out.stderr).contains("states-copy"));
    // --exe stands in for it (text and read-only data are read from it).
    let text = goat_ok(&["stacks", "--core", core_s, "--exe", exe.to_str().unwrap()]);
    assert!(text.contains("main.chanReceive"), "{text}");
    assert!(
        text.contains("[sync.Mutex.Lock]") || text.contains("[semacquire]"),
        "{text}"
    );

    // --exe that is not Go.
    let out = run_goat(&["stacks", "--core", core_s, "--exe", "/bin/sh"]);
    assert_clean_failure(&out, NOT_GO, "not a Go program");

    // Truncated.
    let bytes = std::fs::read(&core).unwrap();
    let cut = dir.0.join("cut");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = run_goat(&[
        "stacks",
        "--core",
        cut.to_str().unwrap(),
        "--exe",
        exe.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, BAD_CORE, "truncated");

    // One p_offset with a flipped high bit: a bad header, not a cut.
    let mut flipped = bytes.clone();
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    // A PT_LOAD with bytes in the file, in the middle of the table.
    let header = (phnum / 2..phnum)
        .map(|i| phoff + i * 56)
        .find(|&h| bytes[h] == 1 && u64_at(h + 32) > 0)
        .expect("a PT_LOAD with file bytes");
    flipped[header + 8 + 5] ^= 0x40;
    let flipped_path = dir.0.join("flipped");
    std::fs::write(&flipped_path, &flipped).unwrap();
    let out = run_goat(&["stacks", "--core", flipped_path.to_str().unwrap()]);
    assert_clean_failure(&out, BAD_CORE, "bad segment offset");

    // Neither or both of PID and --core.
    let out = run_goat(&["stacks"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run_goat(&["stacks", "1", "--core", core_s]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.status.signal().is_none());
}
