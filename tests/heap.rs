//! `goat heap` on `tests/fixtures/heappop`, a program holding known
//! populations: 5000 `main.Item`s through a package variable's slice, a
//! map of 2000 `*main.Entry`, 20 byte slices of 1 MiB, a list of 3000
//! `main.ListNode`s that only one goroutine's local variable reaches, and
//! dropped garbage. The oracles are what the program printed: its counts,
//! and `runtime.MemStats` after two collections. Live (a copy taken while
//! the program runs, which must be left running and untraced) and from a
//! core `goat core` wrote, the answers must be the same.

mod common;

use std::collections::HashMap;

use serde_json::Value;

use common::{assert_untouched, run_goat, scratch_dir, text, Fixture};

/// `key=value` pairs of the fixture's line.
fn parse_line(line: &str) -> HashMap<String, u64> {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"), "heappop said: {line}");
    words
        .map(|w| {
            let (k, v) = w.split_once('=').expect("key=value");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

fn heap_json(args: &[&str]) -> Value {
    let mut all = vec!["heap", "--json"];
    all.extend_from_slice(args);
    let out = run_goat(&all);
    assert!(out.status.success(), "goat {all:?}: {}", text(&out.stderr));
    assert!(
        out.stderr.is_empty(),
        "goat {all:?} wrote to stderr under --json: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("goat heap --json is JSON")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Objects and bytes of the type named `name`.
fn of_type(doc: &Value, name: &str) -> (u64, u64) {
    doc["types"]
        .as_array()
        .expect("types")
        .iter()
        .find(|t| t["type"] == name)
        .map_or((0, 0), |t| (u(&t["objects"]), u(&t["bytes"])))
}

/// The root whose name `matches`: (name, retained bytes, retained objects).
fn root(doc: &Value, what: &str, matches: impl Fn(&str) -> bool) -> (String, u64, u64) {
    let r = doc["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .find(|r| matches(r["root"].as_str().unwrap_or("")))
        .unwrap_or_else(|| panic!("no root for {what} in {:#}", doc["roots"]));
    (
        r["root"].as_str().unwrap_or("").to_string(),
        u(&r["retained_bytes"]),
        u(&r["retained_objects"]),
    )
}

fn within_one_percent(got: u64, want: u64) -> bool {
    got.abs_diff(want) * 100 <= want
}

fn check(what: &str, doc: &Value, want: &HashMap<String, u64>) {
    let n = |k: &str| want[k];
    let totals = &doc["totals"];
    let (objects, bytes) = (u(&totals["objects"]), u(&totals["bytes"]));
    assert!(
        within_one_percent(objects, n("heapobjects")),
        "{what}: {objects} objects, the runtime's HeapObjects is {}",
        n("heapobjects")
    );
    assert!(
        within_one_percent(bytes, n("heapalloc")),
        "{what}: {bytes} bytes, the runtime's HeapAlloc is {}",
        n("heapalloc")
    );

    // Exact counts of each population's type.
    let items = of_type(doc, "main.Item");
    let entries = of_type(doc, "main.Entry");
    let blobs = of_type(doc, &format!("[{}]uint8", n("blob_size")));
    let nodes = of_type(doc, "main.ListNode");
    assert_eq!(items.0, n("items"), "{what}: main.Item objects");
    assert_eq!(entries.0, n("entries"), "{what}: main.Entry objects");
    assert_eq!(blobs.0, n("blobs"), "{what}: blob objects");
    assert_eq!(nodes.0, n("nodes"), "{what}: main.ListNode objects");
    assert_eq!(blobs.1, n("blobs") * n("blob_size"), "{what}: blob bytes");

    // The right root for each, and what each retains.
    let (_, b, o) = root(doc, "items", |r| r == "main.items");
    assert_eq!(
        o,
        n("items") + 1,
        "{what}: main.items retains the items and the slice's array"
    );
    assert!(
        b >= items.1,
        "{what}: main.items retains {b} bytes, the items are {}",
        items.1
    );
    let (_, b, o) = root(doc, "blobs", |r| r == "main.blobs");
    assert_eq!(
        o,
        n("blobs") + 1,
        "{what}: main.blobs retains the blobs and the slice's array"
    );
    assert!(b > blobs.1, "{what}: main.blobs retains {b} bytes");
    let (_, b, o) = root(doc, "cache", |r| r == "main.cache");
    assert!(
        o > n("entries") && b > entries.1,
        "{what}: main.cache retains {o} objects ({b} bytes), fewer than its entries"
    );
    let (name, b, o) = root(doc, "the list", |r| {
        r.starts_with("goroutine ") && r.contains("main.holdList")
    });
    assert!(
        name.ends_with("main.holdList.head"),
        "{what}: the list's root is named {name:?}, not by its variable"
    );
    assert_eq!(
        (o, b),
        (n("nodes"), nodes.1),
        "{what}: {name} retains exactly the list"
    );

    // Retained sizes add up: roots retain disjoint sets of what is reachable.
    let sum: u64 = doc["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| u(&r["retained_bytes"]))
        .sum();
    let reachable = u(&totals["reachable_bytes"]);
    assert!(
        sum <= reachable,
        "{what}: the roots retain {sum} bytes, more than the {reachable} reachable"
    );
    assert_eq!(
        reachable + u(&totals["unreachable_bytes"]),
        bytes,
        "{what}: reachable and unreachable make the total"
    );

    // The biggest type's chain starts at its package variable.
    let chain = doc["chains"]
        .as_array()
        .expect("chains")
        .iter()
        .find(|c| c["type"] == format!("[{}]uint8", n("blob_size")))
        .unwrap_or_else(|| panic!("{what}: no chain for the blobs"));
    assert_eq!(chain["path"][0], "main.blobs", "{what}: {chain}");
}

fn populations(flavour: &str) {
    let (fx, line) = Fixture::start_line(flavour, "heappop", &[]);
    let want = parse_line(&line);
    let pid = fx.pid().to_string();
    let live = heap_json(&[&pid]);
    assert_untouched(fx.pid());
    check(&format!("{flavour} live"), &live, &want);

    let dir = scratch_dir(&format!("heap-{flavour}"));
    let core = dir.join("core");
    common::write_core(fx.pid(), &core);
    let from_core = heap_json(&[
        "--core",
        core.to_str().unwrap(),
        "--exe",
        fx.path.to_str().unwrap(),
    ]);
    check(&format!("{flavour} core"), &from_core, &want);
    // The runtime allocates on its own meanwhile (a timer): the program's
    // own types must match.
    let mine = |doc: &Value| -> Vec<Value> {
        let types = doc["types"].as_array().expect("types");
        types
            .iter()
            .filter(|t| t["type"].as_str().unwrap_or("").contains("main."))
            .cloned()
            .collect()
    };
    assert_eq!(
        mine(&live),
        mine(&from_core),
        "{flavour}: live and core differ in the program's types"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `go tool pprof -top` of a `--pprof` profile: each row's flat value by
/// name (objects, with -sample_index=inuse_objects).
fn pprof_top_objects(path: &std::path::Path) -> HashMap<String, u64> {
    let go = common::root().join(".toolchains/go1.27/bin/go");
    assert!(
        go.exists(),
        "{} is missing: run scripts/setup-go",
        go.display()
    );
    let out = std::process::Command::new(&go)
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodecount=1000",
            "-nodefraction=0",
            "-sample_index=inuse_objects",
        ])
        .arg(path)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go tool pprof -top");
    assert!(
        out.status.success(),
        "go tool pprof -top: {}",
        text(&out.stderr)
    );
    // "      5000 43.10% 43.10%       5000 43.10%  main.Item"
    text(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flat = f.first()?.parse().ok()?;
            Some((f.get(5..)?.join(" "), flat))
        })
        .collect()
}

/// `--pprof`: a profile `go tool pprof` reads, whose leaves are the
/// objects' types and whose roots hold them.
#[test]
fn pprof_profile() {
    let (fx, line) = Fixture::start_line("go1.27-exe", "heappop", &[]);
    let want = parse_line(&line);
    let dir = scratch_dir("heap-pprof");
    let profile = dir.join("heap.pb.gz");
    let out = run_goat(&[
        "heap",
        "--pprof",
        profile.to_str().unwrap(),
        &fx.pid().to_string(),
    ]);
    assert!(
        out.status.success(),
        "goat heap --pprof: {}",
        text(&out.stderr)
    );
    assert_untouched(fx.pid());
    let top = pprof_top_objects(&profile);
    assert_eq!(top.get("main.Item"), Some(&want["items"]), "{top:?}");
    assert_eq!(top.get("main.ListNode"), Some(&want["nodes"]), "{top:?}");
    assert_eq!(top.get("main.Entry"), Some(&want["entries"]), "{top:?}");
    let blobs = format!("[{}]uint8", want["blob_size"]);
    assert_eq!(top.get(&blobs), Some(&want["blobs"]), "{top:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn populations_go1_19() {
    populations("go1.19-exe");
}

#[test]
fn populations_go1_21() {
    populations("go1.21-exe");
}

#[test]
fn populations_go1_24() {
    populations("go1.24-exe");
}

#[test]
fn populations_go1_27() {
    populations("go1.27-exe");
}

#[test]
fn populations_go1_27_pie() {
    populations("go1.27-pie");
}

/// The text names the populations and their roots.
#[test]
fn text_report() {
    let (fx, line) = Fixture::start_line("go1.27-exe", "heappop", &[]);
    let want = parse_line(&line);
    let out = run_goat(&["heap", "--top", "5", &fx.pid().to_string()]);
    assert!(out.status.success(), "goat heap: {}", text(&out.stderr));
    let t = text(&out.stdout);
    assert_untouched(fx.pid());
    assert!(t.starts_with("goat heap: pid "), "{t}");
    assert!(t.contains("the last GC marked"), "{t}");
    let blob_row = format!("{:>10}  [{}]uint8", want["blobs"], want["blob_size"]);
    assert!(t.contains(&blob_row), "no {blob_row:?} in\n{t}");
    assert!(
        t.contains("main.blobs → [20][]uint8 → [1048576]uint8"),
        "{t}"
    );
    assert!(t.contains("main.holdList.head"), "{t}");
}

/// `--diff`: after the program adds items (on SIGUSR1), the growth by type
/// and by root against a report taken before.
#[test]
fn diff_after_growth() {
    let (fx, line) = Fixture::start_line("go1.27-exe", "heappop", &[]);
    let want = parse_line(&line);
    let dir = scratch_dir("heap-diff");
    let old = dir.join("old.json");
    let pid = fx.pid().to_string();
    let out = run_goat(&["heap", "--json", &pid]);
    assert!(out.status.success(), "goat heap: {}", text(&out.stderr));
    std::fs::write(&old, &out.stdout).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill -USR1");
    assert!(st.success());
    let row = |d: &Value, list: &str, name: &str| -> Value {
        d[list]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {list}: {d:#}"))
    };
    // The program grows, then collects: read until it has (10 s at most).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let d = loop {
        let d = heap_json(&["--diff", old.to_str().unwrap(), &pid]);
        let grown = d["types"]
            .as_array()
            .expect("types")
            .iter()
            .any(|r| r["name"] == "main.Item" && r["objects_delta"] == want["grow"] as i64);
        if grown || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_untouched(fx.pid());
    let items = row(&d, "types", "main.Item");
    assert_eq!(items["objects_delta"], want["grow"] as i64, "{items}");
    assert_eq!(items["old"]["objects"], want["items"], "{items}");
    let root = row(&d, "roots", "main.items");
    assert_eq!(root["objects_delta"], want["grow"] as i64, "{root}");
    // The program's other populations did not change.
    for t in d["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap_or("");
        assert!(
            !matches!(name, "main.Entry" | "main.ListNode"),
            "{name} changed: {t}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a session, `heap` gives the same report of the session's stop, and
/// `heap path` / `heap retained` answer for one object named by an
/// expression: a blob, reached from `main.blobs`, retaining its own MiB.
#[test]
fn session_heap_path_and_retained() {
    let (fx, _) = Fixture::start_line("go1.27-exe", "heappop", &[]);
    let out = common::attach_with_stdin(
        fx.pid(),
        &[],
        "heap\nheap path main.blobs[0]\nheap retained main.blobs[0]\nheap path 0x1\nquit\n",
    );
    let (said, err) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{said}\n--- stderr:\n{err}");
    assert!(out.status.success(), "{ctx}");
    assert!(said.contains("goat heap: pid"), "{ctx}");
    assert!(said.contains("main.Item"), "{ctx}");
    assert!(said.contains("main.blobs → "), "{ctx}");
    let path = said
        .lines()
        .find(|l| l.starts_with("main.blobs → ") && l.ends_with("[1048576]uint8"))
        .unwrap_or_else(|| panic!("no chain to the blob: {ctx}"));
    assert!(path.contains("[]uint8"), "{ctx}");
    assert!(
        said.lines().any(|l| l.starts_with("[1048576]uint8 at 0x")
            && l.contains("retains 1048576 bytes in 1 objects")),
        "{ctx}"
    );
    assert!(err.contains("0x1 is in no allocated heap object"), "{ctx}");
    assert_untouched(fx.pid());
}
