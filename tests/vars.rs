//! `args`, `locals`, `print`, `dump-bytes` and `x` over `goat attach` on the
//! `vars` fixture, whose goroutine parks in `main.hold` with variables of
//! every kind live. The unoptimized build (`-N -l`) must show every value
//! exactly; optimized builds may mark a value optimized out or unavailable
//! (Go's DWARF for optimized code is partial) but must never show a wrong one.

#[path = "vars/bigmap.rs"]
mod bigmap;
#[path = "vars/bytes.rs"]
mod bytes;
mod common;
#[path = "vars/core.rs"]
mod core_file;
#[path = "vars/eval.rs"]
mod eval;
#[path = "vars/eval_errors.rs"]
mod eval_errors;
#[path = "vars/eval_values.rs"]
mod eval_values;
#[path = "vars/globals.rs"]
mod globals;
#[path = "vars/limits.rs"]
mod limits;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{assert_untouched, build_fixtures, text, Fixture};

fn attach(pid: i32, script: &str) -> Output {
    let out = common::attach_with_stdin(pid, &[], script);
    assert!(out.status.success(), "goat attach: {out:?}");
    out
}

/// A running `vars` fixture with its `main.hold` goroutine and frame found.
struct Held {
    fx: Fixture,
    flavour: String,
    /// `gr N\nframe K\n`
    select: String,
    /// Lines the selection itself prints on stdout.
    select_lines: usize,
}

impl Held {
    fn start(flavour: &str) -> Held {
        Held::start_in(flavour, "main.hold")
    }

    /// Selects the frame of `func` in the goroutine parked in it.
    fn start_in(flavour: &str, func: &str) -> Held {
        build_fixtures();
        let fx = Fixture::start(flavour, "vars", &[]);
        let pid = fx.pid();
        // "ready" comes from main.hold; the main.wait goroutine parks on its
        // own, so wait for it to show up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let gid: u64 = loop {
            let grs = text(&attach(pid, &format!("grs -f {func}\n")).stdout);
            let found = grs.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("Goroutine ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            });
            match found {
                Some(g) => break g,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => panic!("{flavour}: no {func} goroutine in:\n{grs}"),
            }
        };
        let bt = text(&attach(pid, &format!("gr {gid}\nbt\n")).stdout);
        let frame: usize = bt
            .lines()
            .find(|l| l.contains(&format!(" in {func}")))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{flavour}: no {func} frame in:\n{bt}"));
        let select = format!("gr {gid}\nframe {frame}\n");
        let select_lines = text(&attach(pid, &select).stdout).lines().count();
        Held {
            fx,
            flavour: flavour.to_string(),
            select,
            select_lines,
        }
    }

    /// Runs `cmd` on the selected frame: (its stdout, stderr).
    fn run(&self, cmd: &str) -> (String, String) {
        let out = attach(self.fx.pid(), &format!("{}{cmd}\n", self.select));
        let stdout: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
        let rest = stdout
            .get(self.select_lines..)
            .unwrap_or_default()
            .join("\n");
        (rest, text(&out.stderr))
    }

    /// `print EXPR`'s one line of output, or its error.
    fn print(&self, expr: &str) -> Result<String, String> {
        let (out, err) = self.run(&format!("p {expr}"));
        let line = err.lines().find_map(|l| l.strip_prefix("error: "));
        match line {
            Some(e) => Err(e.to_string()),
            None => Ok(out.trim().to_string()),
        }
    }
}

/// `name = value` lines of `args` then `locals`.
fn variables(h: &Held) -> Vec<(String, String)> {
    let (a, _) = h.run("args");
    let (l, _) = h.run("locals");
    a.lines()
        .chain(l.lines())
        .filter_map(|l| {
            let (n, v) = l.split_once(" = ")?;
            Some((n.to_string(), v.to_string()))
        })
        .collect()
}

const NAME: &str = r#""gopher""#;
const PAYLOAD: &[u8] = b"PAYLOAD-\x00\x01\x02-bytes";
const PAYLOAD_LIST: &str = "[]uint8 len: 17, cap: 17, \
    [80,65,89,76,79,65,68,45,0,1,2,45,98,121,116,101,115]";
const IN: &str = r#"main.Inner {Name: "inner", Count: 5}"#;
const REQ: &str =
    r#"*main.Request {ID: 7, Path: "/api/v1", Inner: main.Inner {Name: "deep", Count: 3}}"#;
const ERR: &str = r#"error(*errors.errorString) *errors.errorString {s: "boom"}"#;
const SH: &str = r#"main.Shape(*main.Request) *main.Request {ID: 7, Path: "/api/v1", Inner: main.Inner {Name: "deep", Count: 3}}"#;
const CH: &str = "chan int {len: 1, cap: 2, closed: false, elems: [7], recvq: [], sendq: []}";
const MSGS: &str = r#"[]string len: 3, cap: 3, ["zero","one","two"]"#;

/// (variable, its value) as `args`/`locals` print them.
const EXPECTED: &[(&str, &str)] = &[
    ("name", NAME),
    ("payload", PAYLOAD_LIST),
    ("in", IN),
    ("req", REQ),
    ("err", ERR),
    ("sh", SH),
    ("msgs", MSGS),
    ("ch", CH),
    ("flag", "true"),
    ("ratio", "2.5"),
];

/// (print expression, its output).
const PRINTS: &[(&str, &str)] = &[
    ("name", NAME),
    ("in.Name", r#""inner""#),
    ("msgs[1]", r#""one""#),
    ("*req", REQ_DEREF),
    ("req.Inner.Name", r#""deep""#),
    ("err", ERR),
    ("counter", "42"),
    ("main.counter", "42"),
    ("name[1]", "111"),
];

const REQ_DEREF: &str =
    r#"main.Request {ID: 7, Path: "/api/v1", Inner: main.Inner {Name: "deep", Count: 3}}"#;

fn unavailable(v: &str) -> bool {
    v.contains("<optimized out>") || v.contains("<unavailable")
}

#[test]
fn unoptimized_build_shows_every_value_exactly() {
    for flavour in [
        "go1.27-noopt",
        "go1.24-noopt",
        "go1.21-noopt",
        "go1.19-noopt",
    ] {
        let h = Held::start(flavour);
        let vars = variables(&h);
        for (name, want) in EXPECTED {
            let got = vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            assert_eq!(got, Some(*want), "{flavour}: {name} in {vars:?}");
        }
        for (expr, want) in PRINTS {
            assert_eq!(h.print(expr).as_deref(), Ok(*want), "{flavour}: p {expr}");
        }
        // Bucketed maps (before Go 1.24) and swiss maps (a single group,
        // and a directory of tables past 8 entries) show every entry.
        let m = h.print("m").unwrap();
        assert!(m.starts_with("map[string]int len: 3, ["), "{flavour}: {m}");
        for kv in [r#""a": 1"#, r#""b": 2"#, r#""c": 3"#] {
            assert!(m.contains(kv), "{flavour}: {m}");
        }
        let big = h.print("big").unwrap();
        assert!(
            big.starts_with("map[int]string len: 20, ["),
            "{flavour}: {big}"
        );
        for i in 0..20 {
            assert!(big.contains(&format!("{i}: \"v{i}\"")), "{flavour}: {big}");
        }
        assert_eq!(big.matches(": \"v").count(), 20, "{flavour}: {big}");
        // A receiver waits on main.release: the goroutine parked in hold.
        let gid = h.select.split_whitespace().nth(1).unwrap();
        assert_eq!(
            h.print("main.release").as_deref(),
            Ok(&*format!(
                "chan int {{len: 0, cap: 0, closed: false, elems: [], \
                 recvq: [goroutine {gid}], sendq: []}}"
            )),
            "{flavour}"
        );
        assert!(
            !vars.iter().any(|(n, _)| n == "total"),
            "{flavour}: total is declared after the parked line: {vars:?}"
        );
        assert_eq!(
            h.print("msgs[5]"),
            Err("index 5 out of range [0:3]".to_string())
        );
        assert_eq!(
            h.print("nope"),
            Err(r#"no variable "nope" in main.hold"#.to_string())
        );
        assert_eq!(
            h.print("in.Nope"),
            Err(r#"no field "Nope" in main.Inner"#.to_string())
        );
        assert!(h.print("*name").is_err());
        assert!(h.print("msgs[").is_err());
        bytes::check_bytes(&h);
        bytes::check_examine_expressions(&h);
        eval::check_expressions(&h, true);
        limits::check_limits(&h);
        limits::check_filters(&h);
        assert_untouched(h.fx.pid());
    }
}

#[test]
fn optimized_builds_show_right_values_or_say_unavailable() {
    for flavour in [
        "go1.19-exe",
        "go1.19-pie",
        "go1.21-exe",
        "go1.21-pie",
        "go1.24-exe",
        "go1.24-pie",
        "go1.27-exe",
        "go1.27-pie",
    ] {
        let h = Held::start(flavour);
        let vars = variables(&h);
        assert!(!vars.is_empty(), "{flavour}: no variables at all");
        for (name, want) in EXPECTED {
            if let Some((_, got)) = vars.iter().find(|(n, _)| n == name) {
                assert!(
                    got == want || unavailable(got),
                    "{flavour}: {name} = {got}, want {want} or unavailable"
                );
            }
        }
        for (expr, want) in PRINTS {
            match h.print(expr) {
                Ok(got) => assert!(
                    got == *want || unavailable(&got),
                    "{flavour}: p {expr} = {got}, want {want}"
                ),
                Err(e) => assert!(
                    e.contains("optimized out")
                        || e.contains("unavailable")
                        || e.starts_with("no variable"),
                    "{flavour}: p {expr}: {e}"
                ),
            }
        }
        if let Some((_, m)) = vars.iter().find(|(n, _)| n == "m") {
            assert!(
                m.starts_with("map[string]int len: 3") || unavailable(m),
                "{flavour}: m = {m}"
            );
        }
        // Package variables never depend on the optimizer.
        assert_eq!(h.print("counter").as_deref(), Ok("42"), "{flavour}");
        eval::check_expressions(&h, false);
        assert_untouched(h.fx.pid());
    }
}

#[test]
fn runtime_frames_and_usage_errors() {
    let h = Held::start("go1.27-noopt");
    // Frame 0 is runtime.gopark: its variables come from the runtime's own
    // DWARF (built with -N -l too).
    let out = attach(h.fx.pid(), &format!("{}frame 0\nargs\nlocals\n", h.select));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("reason = "), "{stdout}");
    let (_, err) = h.run("print");
    assert!(err.contains("usage: print EXPR"), "{err}");
    let (_, err) = h.run("dump-bytes payload");
    assert!(err.contains("usage: dump-bytes EXPR FILE [-f]"), "{err}");
    let (_, err) = h.run("locals x y");
    assert!(err.contains("usage: locals [-v] [REGEX]"), "{err}");
}

/// `main.wait` is inlined into `main.outer` in optimized builds: its frame
/// shows the inlined call's own variables (`n`), its caller's show `k`.
#[test]
fn inlined_frames_show_the_inlined_calls_variables() {
    for flavour in ["go1.27-noopt", "go1.19-exe", "go1.24-exe", "go1.27-pie"] {
        let h = Held::start_in(flavour, "main.wait");
        let ok = |got: &str, want: &str| got == want || unavailable(got);
        let (args, err) = h.run("args");
        assert!(!err.contains("error:"), "{flavour}: {err}");
        for l in args.lines() {
            match l.split_once(" = ") {
                Some(("n", v)) => assert!(ok(v, "42"), "{flavour}: n = {v}"),
                Some(("tag", v)) => assert!(ok(v, r#""inlined-tag""#), "{flavour}: tag = {v}"),
                _ => {}
            }
        }
        // Unoptimized (not inlined) every value is there; Go 1.27's DWARF
        // keeps n of the inlined call.
        if flavour.ends_with("-noopt") {
            assert!(args.contains(r#"tag = "inlined-tag""#), "{flavour}: {args}");
        }
        if flavour.ends_with("-noopt") || flavour == "go1.27-pie" {
            assert!(args.contains("n = 42"), "{flavour}: {args}");
        }
        match h.print("n") {
            Ok(v) => assert!(ok(&v, "42"), "{flavour}: p n = {v}"),
            Err(e) => assert!(e.contains("no variable"), "{flavour}: {e}"),
        }
        let (out, _) = h.run("up\nargs");
        let k = out.lines().find_map(|l| l.strip_prefix("k = "));
        assert!(k.is_some_and(|k| ok(k, "21")), "{flavour}: {out}");
    }
}
