//! The session's inspection commands that read runtime structures beyond
//! the stacks: goroutine labels (`goroutines -l`, `-with label`, `-group
//! label`, `goroutine`), the waiters of a channel (`goroutines -chan`) and
//! pending deferred calls (`deferred`, `stack -defer`) and frame offsets
//! (`stack -offsets`), on every release
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
/// line (`[1 goroutine]` for one): the ids listed and the lines under each.
fn lists(out: &str) -> Vec<Vec<(u64, Vec<String>)>> {
    let mut all = Vec::new();
    let mut cur: Vec<(u64, Vec<String>)> = Vec::new();
    for l in out.lines() {
        if l.starts_with('[') && (l.ends_with(" goroutines]") || l.ends_with(" goroutine]")) {
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

/// `N  0xPC in FUNC` lines of a stack listing: (frame number, function).
fn frame_heads(out: &str) -> Vec<(usize, String)> {
    out.lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once("  0x")?;
            let f = rest.split_once(" in ")?.1;
            Some((
                n.parse().ok()?,
                f.trim_end_matches(" (inlined)").to_string(),
            ))
        })
        .collect()
}

#[test]
fn deferred_calls_are_listed_per_frame() {
    build_fixtures();
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let pid = fx.pid();
        let before = stacks(pid);
        let (g, inner) = parked_in(&before, "main.deferInner");
        let (_, outer) = parked_in(&before, "main.deferring");
        let script = format!(
            "goroutine {g} stack -defer\n\
             goroutine {g} frame {inner} deferred\n\
             goroutine {g} frame {outer} deferred 2\n\
             goroutine {g} frame {outer} deferred 3\n\
             goroutine {g} frame {outer} deferred 1 args\n\
             goroutine {g} deferred x\n"
        );
        let (stdout, stderr) = session(pid, &script);
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        // The compiler's wrapper closure is unwrapped to the function it
        // calls, main.cleanup, as Delve shows it (checked against dlv on
        // go1.19).
        let src = "tests/fixtures/inspect/main.go";
        // stack -defer, then `deferred` (frame inner) or `deferred 2` (outer).
        for (by, line, n) in [("deferInner", 40, 2), ("deferring", 32, 3)] {
            let deferred_by = format!("deferred by main.{by} at ");
            let hits: Vec<&str> = stdout
                .lines()
                .filter(|l| l.contains(&deferred_by))
                .collect();
            assert_eq!(hits.len(), n, "{ctx}");
            assert!(
                hits.iter().all(|l| l.ends_with(&format!("{src}:{line}"))),
                "{ctx}"
            );
            assert!(stdout.contains(" in main.cleanup\n"), "{ctx}");
        }
        // stack -defer puts them under their frames; one and two.
        let listing: String = stdout.split("\n\n").take_while(|b| !b.is_empty()).collect();
        let heads = frame_heads(&stdout);
        assert!(heads.contains(&(inner, "main.deferInner".into())), "{ctx}");
        assert_eq!(
            stdout.matches("    defer 1: ").count(),
            3,
            "{listing}\n{ctx}"
        );
        assert_eq!(stdout.matches("    defer 2: ").count(), 2, "{ctx}");
        assert!(stdout.contains("closure at 0x"), "{ctx}");
        let errors = common::error_lines(&stderr);
        assert_eq!(errors.len(), 3, "{ctx}");
        assert!(errors[0].contains("has 2 deferred call(s), not 3"), "{ctx}");
        assert!(
            errors[1].contains("cannot run commands in a deferred call's context"),
            "{ctx}"
        );
        assert!(
            errors[2].contains("is not a number greater than 0"),
            "{ctx}"
        );
    }
}

#[test]
fn stack_offsets_count_down_from_the_stack_top() {
    build_fixtures();
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let pid = fx.pid();
        let (g, _) = parked_in(&stacks(pid), "main.deferInner");
        let (stdout, stderr) = session(pid, &format!("goroutine {g} stack -offsets\n"));
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        // Go's %+#x: -0x28, +0x0; `?` for a frame pointer not known.
        let parse = |w: &str| match w.split_at(1) {
            ("-", hex) => Some(-i64::from_str_radix(&hex[2..], 16).unwrap()),
            ("+", hex) => Some(i64::from_str_radix(&hex[2..], 16).unwrap()),
            _ => None,
        };
        let offs: Vec<(Option<i64>, Option<i64>)> = stdout
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("frame: "))
            .map(|l| {
                let (cfa, bp) = l.split_once(" frame pointer ").expect("two offsets");
                (parse(cfa), parse(bp))
            })
            .collect();
        assert_eq!(offs.len(), frame_heads(&stdout).len(), "{ctx}");
        assert!(offs.len() >= 5, "{ctx}");
        // Outwards the CFA rises towards the top (0); below it, each frame's
        // BP is its CFA - 16 (the return address, then the saved BP).
        assert!(offs.windows(2).all(|w| w[0].0 <= w[1].0), "{ctx}");
        assert!(
            offs.iter().all(|&(cfa, _)| cfa.is_some_and(|c| c <= 0)),
            "{ctx}"
        );
        let deferring = frame_heads(&stdout)
            .iter()
            .position(|(_, f)| f == "main.deferring")
            .expect("main.deferring");
        let (cfa, bp) = offs[deferring];
        assert_eq!(cfa.zip(bp).map(|(c, b)| c - b), Some(16), "{ctx}");
    }
}
