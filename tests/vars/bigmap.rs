//! `print` of containers of a million entries (the `bigmap` fixture): a
//! map (`gBig[k] = 3k+1`), a slice (`gSlice[i] = 7i`) and an array
//! (`gArr[i] = i % 1000`), as globals on every release (Go 1.24+ maps are
//! swiss tables, older ones buckets) and as locals in the unoptimized
//! builds. Each prints its first `max-array-values` (64) entries and its
//! length from its header, without reading the rest (delve#1391: minutes);
//! the values are checked against the rule that filled them and against
//! what the program printed with fmt.

use std::collections::HashMap;

use super::attach;
use crate::common::{assert_untouched, build_fixtures, text, Fixture};

const N: u64 = 1_000_000;
/// `max-array-values`' default.
const SHOWN: u64 = 64;

/// The fixture's `ready k=v ...` line as a map of its `EXPR=VALUE` words.
fn printed(line: &str) -> HashMap<String, String> {
    // `gSlice[:3]=[0 7 14]`: the values hold spaces; rejoin them.
    let mut out = HashMap::new();
    let mut words = line.strip_prefix("ready").expect(line).split_whitespace();
    while let Some(w) = words.next() {
        let (k, v) = w.split_once('=').expect(line);
        let mut v = v.to_string();
        while v.starts_with('[') && !v.ends_with(']') {
            v = format!("{v} {}", words.next().expect(line));
        }
        out.insert(k.to_string(), v);
    }
    out
}

/// Checks `map[int]int len: 1000000, [k: v, ...,...+999936 more]`: 64
/// distinct keys of the map, each with its value 3k+1.
fn check_map(flavour: &str, line: &str) {
    let more = format!(",...+{} more]", N - SHOWN);
    let body = line
        .strip_prefix(&format!("map[int]int len: {N}, ["))
        .and_then(|b| b.strip_suffix(&more))
        .unwrap_or_else(|| panic!("{flavour}: {line}"));
    let mut keys: Vec<u64> = body
        .split(", ")
        .map(|e| {
            let (k, v) = e.split_once(": ").expect(e);
            let (k, v): (u64, u64) = (k.parse().expect(e), v.parse().expect(e));
            assert!(k < N && v == 3 * k + 1, "{flavour}: {e} in {line}");
            k
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len() as u64, SHOWN, "{flavour}: {line}");
}

/// `PREFIX[f(0),f(1),...,f(63),...+999936 more]`
fn first_entries(prefix: &str, f: impl Fn(u64) -> u64) -> String {
    let shown: Vec<String> = (0..SHOWN).map(|i| f(i).to_string()).collect();
    format!("{prefix}[{},...+{} more]", shown.join(","), N - SHOWN)
}

/// The frame number of `main.hold` in goroutine 1's `bt`.
fn hold_frame(pid: i32) -> usize {
    let bt = text(&attach(pid, "gr 1 bt\n").stdout);
    bt.lines()
        .find(|l| l.ends_with(" in main.hold"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no main.hold frame in:\n{bt}"))
}

fn check(flavour: &str, locals: bool) {
    let (fx, line) = Fixture::start_line(flavour, "bigmap", &[]);
    let pid = fx.pid();
    let want = printed(&line);
    let frame = match locals {
        true => format!("gr 1 frame {} ", hold_frame(pid)),
        false => String::new(),
    };
    let (m, s) = match locals {
        true => ("local", "localSlice"),
        false => ("gBig", "gSlice"),
    };
    let exprs = [
        m.to_string(),
        format!("len({m})"),
        s.to_string(),
        format!("{s}[{}]", N - 1),
        "gArr".to_string(),
        "gArr[1001]".to_string(),
        // Last: a key the bounded search may not reach says so (stderr).
        format!("{m}[0]"),
    ];
    let script: String = exprs.iter().map(|e| format!("{frame}p {e}\n")).collect();
    let out = attach(pid, &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_untouched(pid);
    let lines: Vec<&str> = stdout.lines().collect();
    let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
    assert!(lines.len() >= 6, "{ctx}");
    check_map(flavour, lines[0]);
    assert_eq!(lines[1], want["len(gBig)"], "{ctx}");
    let slice = first_entries(&format!("[]int len: {N}, cap: {N}, "), |i| 7 * i);
    assert_eq!(lines[2], slice, "{ctx}");
    let head = want["gSlice[:3]"].trim_end_matches(']').replace(' ', ",");
    assert!(slice.contains(&format!("{head},")), "{ctx}");
    assert_eq!(lines[3], (7 * (N - 1)).to_string(), "{ctx}");
    assert_eq!(
        lines[4],
        first_entries(&format!("[{N}]int32 "), |i| i % 1000),
        "{ctx}"
    );
    let arr: Vec<&str> = want["gArr[998:1002]"]
        .trim_matches(['[', ']'])
        .split(' ')
        .collect();
    assert_eq!(lines[5], arr[3], "{ctx}");
    // m[0]: the value the program printed, or the search's honest bound.
    match lines.get(6) {
        Some(v) => assert_eq!(*v, want["gBig[0]"], "{ctx}"),
        None => assert!(
            stderr.contains(&format!("error: {m}[0]: key not among the first ")),
            "{ctx}"
        ),
    }
}

#[test]
fn million_entry_containers_print_their_first_entries_on_every_release() {
    build_fixtures();
    for v in ["go1.19", "go1.21", "go1.24", "go1.27"] {
        check(&format!("{v}-exe"), false);
        check(&format!("{v}-noopt"), false);
        check(&format!("{v}-noopt"), true);
    }
}
