//! Package variables of the `vars` fixture (globals.go) print exactly on
//! every toolchain and build (their values do not depend on the
//! optimizer), live and from a core: maps (one swiss group, many swiss
//! tables, values stored by pointer, nil, empty), channels (a wrapped ring,
//! a full one with a blocked sender, unbuffered ones with a waiting sender
//! or receiver, closed, nil), errors, interfaces (of types with and
//! without DWARF), nil and long slices, a long string, arrays and pointers.

use std::time::{Duration, Instant};

use super::{attach, text};
use crate::common::{self, build_fixtures, Fixture};

/// The toolchains scripts/build-fixtures builds `vars` with.
const TOOLCHAINS: &[&str] = &["go1.19", "go1.21", "go1.24", "go1.27"];

/// Ids of the goroutines parked in `main.sendFull`, `main.sendUnbuf` and
/// `main.recvInbox`.
struct Parked {
    full: u64,
    unbuf: u64,
    inbox: u64,
}

/// Waits until the three goroutines show up in `grs -f FUNC`.
fn parked(pid: i32, flavour: &str) -> Parked {
    let funcs = ["main.sendFull", "main.sendUnbuf", "main.recvInbox"];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids: Vec<Option<u64>> = funcs
            .iter()
            .map(|f| {
                let grs = text(&attach(pid, &format!("grs -f {f}\n")).stdout);
                let ids: Vec<u64> = grs
                    .lines()
                    .filter_map(|l| {
                        let rest = l.trim().strip_prefix("Goroutine ")?;
                        rest.split(' ').next()?.parse().ok()
                    })
                    .collect();
                // Exactly one: a second would make the expected queue ambiguous.
                (ids.len() == 1).then(|| ids[0])
            })
            .collect();
        if let [Some(full), Some(unbuf), Some(inbox)] = ids[..] {
            return Parked { full, unbuf, inbox };
        }
        assert!(
            Instant::now() < deadline,
            "{flavour}: goroutines not parked: {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (expression, exact output); maps are checked apart (their order is random).
fn exact(p: &Parked) -> Vec<(&'static str, String)> {
    let chan = |ty: &str, len: u64, cap: u64, closed: bool, elems: &str, rq: &str, sq: &str| {
        format!(
            "chan {ty} {{len: {len}, cap: {cap}, closed: {closed}, elems: [{elems}], \
             recvq: [{rq}], sendq: [{sq}]}}"
        )
    };
    let g = |id: u64| format!("goroutine {id}");
    let squares: Vec<String> = (0..64u64).map(|i| (i * i).to_string()).collect();
    vec![
        ("gEmptyMap", "map[string]int len: 0".into()),
        ("gNilMap", "map[string]int nil".into()),
        ("gRing", chan("int", 3, 3, false, "2, 3, 4", "", "")),
        ("gFull", chan("int", 1, 1, false, "1", "", &g(p.full))),
        ("gUnbuf", chan("string", 0, 0, false, "", "", &g(p.unbuf))),
        ("gInbox", chan("int", 0, 0, false, "", &g(p.inbox), "")),
        ("gClosed", chan("int", 1, 2, true, "9", "", "")),
        ("gNilChan", "chan int nil".into()),
        (
            "gErr",
            r#"error(*errors.errorString) *errors.errorString {s: "x"}"#.into(),
        ),
        (
            "gWrapped",
            r#"error(*fmt.wrapError) *fmt.wrapError {msg: "ctx: x", err: error(*errors.errorString) *errors.errorString {s: "x"}}"#.into(),
        ),
        ("gNilErr", "error nil".into()),
        ("gAny", "interface {}(int) 42".into()),
        // Pointer-shaped: the interface's data word is the pointer itself.
        (
            "gBox",
            r#"interface {}(main.Box) main.Box {P: *main.Inner {Name: "p", Count: 1}}"#.into(),
        ),
        // Dynamic types without DWARF: named by the runtime's descriptors.
        ("gHidden1", "interface {}(main.hiddenCount) -7".into()),
        ("gHidden2", r#"interface {}(main.hiddenLabel) "hi""#.into()),
        ("gHidden3", "interface {}(main.hiddenRatio) 0.5".into()),
        (
            "gHidden4",
            // Go 1.19 gives the struct a DWARF entry, later releases do
            // not; the descriptor's view prints the same.
            r#"interface {}(main.hiddenPair) main.hiddenPair {N: -3, Label: "pair", In: struct { On bool } {On: true}}"#.into(),
        ),
        ("gNilSlice", "[]int len: 0, cap: 0, nil".into()),
        ("gEmptySlice", "[]int len: 0, cap: 0, []".into()),
        (
            "gLong",
            format!(
                "[]int len: 100, cap: 100, [{},...+36 more]",
                squares.join(",")
            ),
        ),
        ("gLong[99]", "9801".into()),
        ("gLongStr", format!("\"{}\"...+20 more", "ab".repeat(50))),
        ("gArr", "[3]int [1,2,3]".into()),
        ("gNilPtr", "*main.Request nil".into()),
        ("gPtr", r#"*main.Inner {Name: "p", Count: 1}"#.into()),
        ("*gPtr", r#"main.Inner {Name: "p", Count: 1}"#.into()),
    ]
}

const MAPS: &[&str] = &["gSmall", "gLarge", "gBigVals"];

/// Checks the output of `p` of every expression of [`exact`] then [`MAPS`].
fn check(flavour: &str, p: &Parked, stdout: &str) {
    let want = exact(p);
    let lines: Vec<&str> = stdout.lines().collect();
    let n = want.len() + MAPS.len();
    assert!(lines.len() >= n, "{flavour}: {n} lines wanted:\n{stdout}");
    let got = &lines[lines.len() - n..];
    for ((expr, want), got) in want.iter().zip(got) {
        assert_eq!(got, want, "{flavour}: p {expr}");
    }
    let [small, large, big] = got[want.len()..] else {
        unreachable!()
    };
    let mut small_entries = entries(small, "map[string]int len: 3, [", flavour);
    small_entries.sort();
    assert_eq!(
        small_entries,
        [r#""a": 1"#, r#""b": 2"#, r#""c": 3"#],
        "{flavour}: {small}"
    );
    // 2000 entries: 64 shown, each k: 2k, all different.
    let large_body = large
        .strip_suffix(",...+1936 more]")
        .unwrap_or_else(|| panic!("{flavour}: {large}"));
    let mut keys: Vec<u64> = entries(
        &format!("{large_body}]"),
        "map[int]int len: 2000, [",
        flavour,
    )
    .iter()
    .map(|e| {
        let (k, v) = e
            .split_once(": ")
            .unwrap_or_else(|| panic!("{flavour}: {e}"));
        let (k, v): (u64, u64) = (k.parse().unwrap(), v.parse().unwrap());
        assert_eq!(v, 2 * k, "{flavour}: {e}");
        assert!(k < 2000, "{flavour}: {e}");
        k
    })
    .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 64, "{flavour}: {large}");
    // Values over 128 bytes sit behind a pointer in the slot.
    assert!(
        big.starts_with("map[int]main.Big len: 2, ["),
        "{flavour}: {big}"
    );
    let pad = format!("Pad: [16]int64 [{}]}}", ["0"; 16].join(","));
    for kv in [
        format!(r#"1: main.Big {{Name: "one", {pad}"#),
        format!(r#"2: main.Big {{Name: "two", {pad}"#),
    ] {
        assert!(big.contains(&kv), "{flavour}: {kv} in {big}");
    }
}

/// The `, `-separated entries of `line` after `prefix`, up to its last `]`.
fn entries<'a>(line: &'a str, prefix: &str, flavour: &str) -> Vec<&'a str> {
    let body = line
        .strip_prefix(prefix)
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{flavour}: {prefix}... in {line}"));
    body.split(", ").collect()
}

fn script() -> String {
    let mut s = String::new();
    for (expr, _) in exact(&Parked {
        full: 0,
        unbuf: 0,
        inbox: 0,
    }) {
        s.push_str(&format!("p {expr}\n"));
    }
    for m in MAPS {
        s.push_str(&format!("p {m}\n"));
    }
    s
}

#[test]
fn package_variables_print_exactly_on_every_build() {
    build_fixtures();
    for ver in TOOLCHAINS {
        for kind in ["exe", "pie", "noopt"] {
            let flavour = format!("{ver}-{kind}");
            let fx = Fixture::start(&flavour, "vars", &[]);
            let p = parked(fx.pid(), &flavour);
            let out = attach(fx.pid(), &script());
            let err = text(&out.stderr);
            assert!(!err.contains("error:"), "{flavour}: {err}");
            check(&flavour, &p, &text(&out.stdout));
        }
    }
}

/// The same from a core of each toolchain's optimized PIE build.
#[test]
fn package_variables_of_a_core_file() {
    build_fixtures();
    for ver in TOOLCHAINS {
        let flavour = format!("{ver}-pie");
        let fx = Fixture::start(&flavour, "vars", &[]);
        let p = parked(fx.pid(), &flavour);
        let core = std::env::temp_dir().join(format!(
            "goat-vars-globals-{}-{ver}.core",
            std::process::id()
        ));
        common::write_core(fx.pid(), &core);
        drop(fx);
        let exe = common::fixture_path(&flavour, "vars");
        let out = common::goat_with_stdin(
            &[
                "debug",
                core.to_str().unwrap(),
                "--exe",
                exe.to_str().unwrap(),
            ],
            &script(),
        );
        let _ = std::fs::remove_file(&core);
        assert!(out.status.success(), "{flavour}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("error:"), "{flavour}");
        check(&flavour, &p, &text(&out.stdout));
    }
}
