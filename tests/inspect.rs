//! The session's inspection commands that read runtime structures beyond
//! the stacks: goroutine labels (`goroutines -l`, `-with label`, `-group
//! label`, `goroutine`), the waiters of a channel (`goroutines -chan`) and
//! pending deferred calls (`deferred`, `stack -defer`), on every release
//! goat is tested against, live and from a core. Every session must leave
//! the program as it found it.

mod common;

use std::collections::BTreeMap;

use common::traceback::{self, Block};
use common::{assert_untouched, attach_with_stdin, build_fixtures, run_goat, text, Fixture};

/// The four releases every test covers, PIE and not between them.
const FLAVOURS: [&str; 4] = ["go1.19-exe", "go1.21-pie", "go1.24-exe", "go1.27-pie"];

/// (stdout, stderr) of a piped session on `pid` running `script`, which
/// must end well; the target must be left untouched.
fn session(pid: i32, script: &str) -> (String, String) {
    let out = attach_with_stdin(pid, &[], script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    (stdout, stderr)
}

/// The goroutine blocks of `goat stacks PID`.
fn stacks(pid: i32) -> BTreeMap<u64, Block> {
    let out = run_goat(&["stacks", &pid.to_string()]);
    assert!(out.status.success(), "goat stacks: {}", text(&out.stderr));
    traceback::parse(&text(&out.stdout))
}

/// The goroutine with `func` on its stack, and that frame's number.
fn parked_in(blocks: &BTreeMap<u64, Block>, func: &str) -> (u64, usize) {
    blocks
        .values()
        .find_map(|b| Some((b.id, b.frames.iter().position(|f| f.0 == func)?)))
        .unwrap_or_else(|| panic!("no goroutine in {func}"))
}

/// The `goroutines` lists of `out`, each ended by its `[N goroutines]`
/// line: the ids listed and the lines under each.
fn lists(out: &str) -> Vec<Vec<(u64, Vec<String>)>> {
    let mut all = Vec::new();
    let mut cur: Vec<(u64, Vec<String>)> = Vec::new();
    for l in out.lines() {
        if l.starts_with('[') && l.ends_with(" goroutines]") {
            all.push(std::mem::take(&mut cur));
        } else if let Some(rest) = l.get(2..).and_then(|r| r.strip_prefix("Goroutine ")) {
            let id = rest.split(' ').next().and_then(|n| n.parse().ok());
            cur.push((id.expect("a goroutine id"), Vec::new()));
        } else if let Some((_, under)) = cur.last_mut() {
            under.push(l.to_string());
        }
    }
    all
}

fn ids(list: &[(u64, Vec<String>)]) -> Vec<u64> {
    list.iter().map(|(id, _)| *id).collect()
}

const LABELS: &str = "\tLabels: \"job\":\"resize\", \"worker\":\"7\"";

#[test]
fn labels_are_listed_filtered_grouped_and_described() {
    build_fixtures();
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let pid = fx.pid();
        let (labelled, _) = parked_in(&stacks(pid), "main.labelled");
        let (deferring, _) = parked_in(&stacks(pid), "main.deferring");
        let script = format!(
            "goroutines -l\n\
             goroutines -with label worker=7\n\
             goroutines -w label job\n\
             goroutines -label worker=7\n\
             goroutines -with label worker=8\n\
             goroutines -without label worker\n\
             goroutine {labelled}\n\
             goroutine\n\
             goroutine {deferring}\n\
             goroutine\n\
             goroutines -group label worker\n\
             goroutines -group label\n"
        );
        let (stdout, stderr) = session(pid, &script);
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        let l = lists(&stdout);
        assert_eq!(l.len(), 6, "{ctx}");
        // -l: the labels under the labelled goroutine only.
        let with_labels: Vec<_> = l[0].iter().filter(|(_, u)| !u.is_empty()).collect();
        assert_eq!(with_labels.len(), 1, "{ctx}");
        assert_eq!(with_labels[0].0, labelled, "{ctx}");
        assert_eq!(with_labels[0].1, [LABELS], "{ctx}");
        assert_eq!(ids(&l[1]), [labelled], "{ctx}");
        assert_eq!(ids(&l[2]), [labelled], "{ctx}");
        assert_eq!(ids(&l[3]), [labelled], "{ctx}");
        assert!(l[4].is_empty(), "{ctx}");
        let mut others = ids(&l[0]);
        others.retain(|&id| id != labelled);
        assert_eq!(ids(&l[5]), others, "{ctx}");
        // goroutine N: the labels in its description, none for another.
        assert_eq!(stdout.matches(LABELS).count(), 2, "{ctx}");
        assert!(
            stdout.contains(&format!("Goroutine {deferring} - ")),
            "{ctx}"
        );
        // -group label KEY: one group per value, those without it apart.
        assert!(stdout.contains("\nworker=7\n"), "{ctx}");
        assert!(
            stdout.contains("\nworker=\n") || stdout.starts_with("worker=\n"),
            "{ctx}"
        );
        assert!(stdout.contains("\tTotal: 1\n"), "{ctx}");
        // A key is needed: one line, and the session went on.
        assert_eq!(stderr.matches("error: ").count(), 1, "{ctx}");
        assert!(
            stderr.contains("error: goroutines: -group label needs a KEY"),
            "{ctx}"
        );
    }
}

#[test]
fn labels_read_from_a_core_as_from_the_process() {
    build_fixtures();
    let fx = Fixture::start("go1.21-exe", "inspect", &[]);
    let pid = fx.pid();
    let dir = common::scratch_dir("inspect-labels");
    let core = dir.join("core");
    common::write_core(pid, &core);
    assert_untouched(pid);
    let out = common::goat_with_stdin(
        &["debug", core.to_str().unwrap()],
        "goroutines -l -with label worker=7\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    let l = lists(&stdout);
    assert_eq!(l.len(), 1, "{ctx}");
    assert_eq!(l[0].len(), 1, "{ctx}");
    assert_eq!(l[0][0].1, [LABELS], "{ctx}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chan_lists_the_goroutines_waiting_on_a_channel() {
    build_fixtures();
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "states", &[]);
        let pid = fx.pid();
        let before = stacks(pid);
        let (recv, rd) = parked_in(&before, "main.chanReceive");
        let (send, sd) = parked_in(&before, "main.chanSend");
        let script = format!(
            "goroutine {recv} frame {rd} goroutines -chan ch\n\
             goroutine {send} frame {sd} goroutines -chan ch\n\
             goroutine {recv} frame {rd} goroutines -chan ch -without userloc chanReceive\n\
             goroutines -chan main.mu\n\
             goroutines -chan\n"
        );
        let (stdout, stderr) = session(pid, &script);
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        let l = lists(&stdout);
        assert_eq!(l.len(), 3, "{ctx}");
        assert_eq!(ids(&l[0]), [recv], "{ctx}");
        assert_eq!(ids(&l[1]), [send], "{ctx}");
        assert!(l[2].is_empty(), "{ctx}");
        assert_eq!(stderr.matches("error: ").count(), 2, "{ctx}");
        assert!(
            stderr.contains("error: goroutines -chan main.mu: sync.Mutex is not a channel"),
            "{ctx}"
        );
        assert!(
            stderr.contains("error: goroutines: -chan needs a channel EXPR"),
            "{ctx}"
        );
    }
}
