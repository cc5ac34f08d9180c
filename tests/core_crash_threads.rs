//! Item 14 of issue 33: a `GOTRACEBACK=crash` dump prints, besides the
//! goroutines, a `goroutine 0 [idle]` block for each M its SIGQUIT caught
//! on the system stack; `goat stacks --core` of the core the kernel wrote
//! must print the same blocks, byte for byte, and no others. A core of a
//! process that did not crash has none.

mod common;

use std::path::Path;

use common::kernel_core::{kernel_core, kernel_core_fix, TempDir};
use common::{build_fixtures, fixture_path, run_goat, text, Fixture};

/// Every `goroutine 0 ...` block of a dump: its header and frames, up to
/// the blank line, the next header, or the registers the crash dump
/// prints after a thread's block (`rax    0x...`). Sorted: the runtime
/// prints them in the order its SIGQUIT went round the Ms, goat in `allm`
/// order.
fn g0_blocks(dump: &str) -> Vec<String> {
    let register = |l: &str| {
        let mut w = l.split_whitespace();
        matches!((w.next(), w.next(), w.next()), (Some(n), Some(v), None)
            if n.chars().all(|c| c.is_ascii_alphanumeric()) && v.starts_with("0x"))
    };
    let mut blocks = Vec::new();
    let mut lines = dump.lines().peekable();
    while let Some(l) = lines.next() {
        if !l.starts_with("goroutine 0 ") {
            continue;
        }
        let mut block = vec![l];
        while let Some(&next) = lines.peek() {
            if next.is_empty() || next.starts_with("goroutine ") || register(next) {
                break;
            }
            block.push(next);
            lines.next();
        }
        blocks.push(block.join("\n"));
    }
    blocks.sort();
    blocks
}

fn stacks_of_core(core: &Path, exe: &Path) -> String {
    let out = run_goat(&[
        "stacks",
        "--core",
        core.to_str().unwrap(),
        "--exe",
        exe.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_crash_core_shows_the_runtime_s_goroutine_0_blocks() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.21-pie", "go1.24-exe", "go1.27-pie"] {
        let dir = TempDir::new(&format!("g0-{flavour}"));
        let exe = fixture_path(flavour, "states");
        let (runtime_text, core) = kernel_core(&exe, &dir.0);
        let core = match core {
            Ok(c) => c,
            Err(why) => panic!("{flavour}: {}", kernel_core_fix(&why)),
        };
        let want = g0_blocks(&runtime_text);
        assert!(
            want.len() >= 2,
            "{flavour}: the runtime printed {} goroutine 0 blocks:\n{runtime_text}",
            want.len()
        );
        let ours = stacks_of_core(&core, &exe);
        let got = g0_blocks(&ours);
        assert_eq!(
            got.join("\n\n"),
            want.join("\n\n"),
            "{flavour}\n--- goat:\n{ours}\n--- runtime:\n{runtime_text}"
        );
        // JSON lists them too, as goroutines 0 with the runtime's status.
        let out = run_goat(&[
            "stacks",
            "--json",
            "--core",
            core.to_str().unwrap(),
            "--exe",
            exe.to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let zeros: Vec<&serde_json::Value> = v["goroutines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["id"] == 0)
            .collect();
        assert_eq!(zeros.len(), want.len(), "{flavour}");
        assert!(zeros.iter().all(|g| g["status"] == "idle"), "{zeros:?}");
    }
}

/// A core of a live process (goat's own, which stops it as gcore does)
/// was not written by a crash: no thread's stack is shown as goroutine 0.
#[test]
fn a_core_of_a_running_process_has_no_goroutine_0() {
    build_fixtures();
    let dir = TempDir::new("g0-live");
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let core = dir.0.join("core");
    common::write_core(fx.pid(), &core);
    let ours = stacks_of_core(&core, &fx.path);
    assert!(g0_blocks(&ours).is_empty(), "{ours}");
    assert!(ours.contains("goroutine 1 "), "{ours}");
}
