//! Item 11 of issue 33: without `--mode`, `goat stacks` reads a small
//! program in stop mode (one short stop: pre-copy's two fixed stops are
//! longer there) and a large one in pre-copy mode, and `--stats` says which
//! and why; `--mode` still forces either. The timings behind the threshold
//! are `scripts/bench modes`' (never a timed test).

mod common;

use common::{assert_stop_windows, assert_untouched, run_goat, text, Fixture};

/// `goat stacks ARGS --stats PID`: its stderr, after checking it printed
/// the fixture's workers.
fn stats(fx: &Fixture, args: &[&str], workers: usize) -> String {
    let pid = fx.pid().to_string();
    let mut all = vec!["stacks", "--stats"];
    all.extend_from_slice(args);
    all.push(&pid);
    let out = run_goat(&all);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    let listed = text(&out.stdout).matches("\nmain.worker(").count();
    assert_eq!(listed, workers, "{args:?}: {err}");
    assert_untouched(fx.pid());
    err
}

#[test]
fn a_small_program_is_stopped_a_large_one_pre_copied() {
    common::build_fixtures();
    // A small service: about 150 goroutines, 0.3 MiB to copy.
    let small = Fixture::start("go1.27-exe", "service", &["150"]);
    let err = stats(&small, &[], 150);
    assert!(
        err.contains("(the longest stop; stop mode)")
            && err.contains("goat: stop mode, chosen: ")
            && err.contains("below the 2 MiB from which pre-copy's pause is the shorter"),
        "{err}"
    );
    // No setup stop, no tracer process borrowing a userfaultfd.
    assert!(!err.contains("pauses: setup"), "{err}");
    assert_stop_windows(&err, 1);
    // --mode still forces pre-copy on it.
    let err = stats(&small, &["--mode", "precopy"], 150);
    assert!(err.contains("goat: precopy mode, as --mode says"), "{err}");
    assert_stop_windows(&err, 2);
    drop(small);

    // 4000 goroutines: about 7 MiB, where pre-copy's pause is the shorter.
    let large = Fixture::start("go1.27-exe", "service", &["4000"]);
    let err = stats(&large, &[], 4000);
    assert!(
        err.contains("goat: precopy mode, chosen: ") && err.contains("past the 2 MiB"),
        "{err}"
    );
    let err = stats(&large, &["--mode", "stop"], 4000);
    assert!(
        err.contains("goat: stop mode, as --mode says") && !err.contains("pauses: setup"),
        "{err}"
    );
}
