//! A core goat writes, read back by goat: `goat stacks --core` on it lists
//! the same goroutines, with the same stacks, as `goat stacks` on the live
//! process, for both core modes, Go 1.19 and 1.27, PIE and not; gdb reads
//! the thread ids and rips goat's own core reader parses. goat's cores
//! record the clock at the stop, so wait minutes match the live dump's too.

mod common;

use common::traceback::{self, Block};
use common::{assert_untouched, goat, run_goat, Fixture};

/// A "now" ten and a half minutes ahead of the real one: the fixture's
/// goroutines (waitsince stamped by its GC) have then waited 10 minutes.
/// Fixed, so a live dump and a core taken moments apart measure against the
/// same instant (`GOAT_TEST_MONOTONIC_NS`).
fn future_now() -> String {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now = ts.tv_sec() * 1_000_000_000 + ts.tv_nsec();
    (now + 630 * 1_000_000_000).to_string()
}

fn parked(b: &Block) -> bool {
    !matches!(
        b.status(),
        "running" | "runnable" | "preempted" | "copystack"
    )
}

fn round_trip(flavour: &str, mode: &str) {
    let fx = Fixture::start(flavour, "states", &[]);
    let pid = fx.pid().to_string();
    let dir = std::env::temp_dir().join(format!("goat-rt-{}-{flavour}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let core = dir.join("core");
    let core = core.to_str().unwrap();

    let now = future_now();
    let with_now = |args: &[&str]| {
        goat()
            .args(args)
            .env(common::hook("GOAT_TEST_MONOTONIC_NS"), &now)
            .output()
            .unwrap()
    };
    let live = with_now(&["stacks", &pid]);
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let written = with_now(&["core", &pid, "-o", core, "--mode", mode]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert_untouched(fx.pid());
    // The program runs on between the dumps: a goroutine that changed
    // meanwhile (Go's scavenger, busy in a fresh process, sleeps and parks
    // by turns) is not compared; every one that stayed put must match.
    let after = with_now(&["stacks", &pid]);
    assert!(after.status.success());
    let read = run_goat(&["stacks", "--core", core]);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );

    let live_text = String::from_utf8_lossy(&live.stdout).into_owned();
    let core_text = String::from_utf8_lossy(&read.stdout).into_owned();
    let live = traceback::parse(&live_text);
    let from_core = traceback::parse(&core_text);
    let after_text = String::from_utf8_lossy(&after.stdout).into_owned();
    let after = traceback::parse(&after_text);
    let stayed = |id: &u64, b: &Block| {
        after.get(id).is_some_and(|a| {
            a.bracket == b.bracket && a.frames == b.frames && a.created_by == b.created_by
        })
    };
    let ctx = || format!("{flavour} {mode}\n--- live:\n{live_text}\n--- core:\n{core_text}");
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        from_core.keys().collect::<Vec<_>>(),
        "goroutine ids, {}",
        ctx()
    );
    let mut compared = 0;
    let mut waited = 0;
    for (id, want) in live.iter().filter(|(id, b)| parked(b) && stayed(id, b)) {
        let got = &from_core[id];
        // Wait minutes included: the core's note gives the same "now".
        assert_eq!(got.bracket, want.bracket, "goroutine {id}, {}", ctx());
        waited += usize::from(want.bracket.ends_with(", 10 minutes"));
        assert_eq!(got.gp, want.gp, "goroutine {id}, {}", ctx());
        assert_eq!(got.frames, want.frames, "goroutine {id}, {}", ctx());
        assert_eq!(got.created_by, want.created_by, "goroutine {id}, {}", ctx());
        compared += 1;
    }
    assert!(
        compared >= 15,
        "{flavour} {mode}: only {compared} goroutines compared"
    );
    assert!(
        waited >= 10,
        "{flavour} {mode}: only {waited} goroutines waited 10 minutes, {}",
        ctx()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn goats_own_cores_read_back_like_the_live_process() {
    for flavour in ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"] {
        for mode in ["fork", "stop", "live"] {
            round_trip(flavour, mode);
        }
    }
}

/// gdb reads the same thread ids and rips from goat's core as goat's own
/// core reader, one per thread of the target, each rip inside its code.
#[test]
fn gdb_sees_every_thread_at_the_recorded_rip() {
    use goat::corefile::CoreFile;
    use goat::process::Target;
    for flavour in ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"] {
        for mode in ["fork", "stop", "live"] {
            let fx = Fixture::start(flavour, "states", &[]);
            let dir = std::env::temp_dir()
                .join(format!("goat-gdb-{}-{flavour}-{mode}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let core = dir.join("core");
            let out = run_goat(&[
                "core",
                &fx.pid().to_string(),
                "-o",
                core.to_str().unwrap(),
                "--mode",
                mode,
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let task_count = std::fs::read_dir(format!("/proc/{}/task", fx.pid()))
                .unwrap()
                .count();

            let ours: std::collections::BTreeMap<i64, u64> = CoreFile::open(&core)
                .unwrap()
                .threads()
                .iter()
                .map(|t| (i64::from(t.tid), t.regs.rip))
                .collect();
            assert_eq!(
                ours.len(),
                task_count,
                "{flavour} {mode}: one NT_PRSTATUS per thread"
            );
            // Every recorded rip is code: inside an executable mapping of
            // the live process (its text, the vdso or libc).
            let maps = std::fs::read_to_string(format!("/proc/{}/maps", fx.pid())).unwrap();
            let code: Vec<(u64, u64)> = maps
                .lines()
                .filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('x')))
                .filter_map(|l| {
                    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
                    Some((
                        u64::from_str_radix(a, 16).ok()?,
                        u64::from_str_radix(b, 16).ok()?,
                    ))
                })
                .collect();
            for (tid, rip) in &ours {
                assert!(
                    code.iter().any(|&(a, b)| (a..b).contains(rip)),
                    "{flavour} {mode}: thread {tid} rip {rip:#x} is outside the code\n{maps}"
                );
            }

            let gdb = std::process::Command::new("gdb")
                .args(["-batch", "-nx", "-ex", "thread apply all p/x $rip"])
                .arg(&fx.path)
                .arg(&core)
                .output()
                .expect("gdb (scripts/test installs it)");
            let text = String::from_utf8_lossy(&gdb.stdout);
            let mut theirs = std::collections::BTreeMap::new();
            let mut lwp = None;
            for line in text.lines() {
                if let Some(rest) = line.split("(LWP ").nth(1) {
                    lwp = rest.split(')').next().and_then(|n| n.parse::<i64>().ok());
                } else if let Some(hex) = line.split("= 0x").nth(1) {
                    let tid = lwp.take().expect("a thread line before each value");
                    theirs.insert(tid, u64::from_str_radix(hex.trim(), 16).unwrap());
                }
            }
            assert_eq!(
                theirs, ours,
                "{flavour} {mode}: gdb's threads and rips\n{text}"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
