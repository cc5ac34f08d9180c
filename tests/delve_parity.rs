//! goat against Delve on one live process: the same command script runs
//! through `dlv attach PID` (Debian's /usr/bin/dlv, on the go1.19
//! unoptimized build of the `vars` fixture) and `goat attach PID`, and
//! every `print`, `whatis`, `args` and `locals` must show the same values.
//! Only the format differences listed in delve_parity/normalize.rs are
//! undone; a value difference fails. Delve detaches without killing the
//! target, and the target is checked untouched after both.

mod common;
#[path = "delve_parity/normalize.rs"]
mod normalize;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_untouched, attach_with_stdin, build_fixtures, text, Fixture};

/// Expressions printed by both, in the held main.hold frame. Left out, and
/// why: interfaces holding types without DWARF (`gHidden*`: Delve 1.20
/// cannot read them, goat reads the runtime's type descriptors), maps whose
/// values the runtime keeps behind a pointer (`gBigVals`: Delve shows that
/// slot as `*{...}`), channels (goat summarizes them as len/cap/elements/
/// waiters, Delve prints the runtime's hchan; `locals` compares their
/// len/cap), and strings past 64 bytes' whole text (both cut at 64 here).
const PRINTS: &[&str] = &[
    "name",
    "payload",
    "in",
    "req",
    "*req",
    "m",
    "big",
    "err",
    "sh",
    "msgs",
    "flag",
    "ratio",
    "in.Name",
    "msgs[1]",
    "req.Inner",
    "len(name)",
    "counter",
    "main.counter",
    "gSmall",
    "gEmptyMap",
    "gNilMap",
    "gByPoint",
    "gPointKey",
    "gByArr",
    "gArrKey",
    "gByAny",
    "gByAnyPt",
    "gByBool",
    "gByFloat",
    "gByInt8",
    "gByPtr",
    "gInners",
    "gErr",
    "gWrapped",
    "gNilErr",
    "gAny",
    "gKeyAny",
    "gBox",
    "gBoxed",
    "gNilSlice",
    "gEmptySlice",
    "gLong",
    "gLongStr",
    "gArr",
    "gArrPtr",
    "gPoints",
    "gNilPtr",
    "gPtr",
    "*gPtr",
    "gU16",
    "gI8",
    "gU8s",
    "gMaxU64",
    "gNeg",
    "gF32",
    "gTemp",
    "gStr",
    "gBytes",
    "gYes",
    "counter + 1",
    "gU16 & 0xff",
    "gI8 - 1",
    "7 / 2.0",
    "len(gStr)",
    "gArr[1:]",
    "gStr[8:]",
    "uint8(gU16)",
    "float32(0.1)",
    "gTemp + 0.5",
    "gAny.(int)",
    "gByPoint[gPointKey]",
    "gByBool[true]",
    "gByFloat[1.5]",
    "gLarge[1000]",
    "runtime.curg.goid",
    "%x counter",
    "%x gU8s",
];

/// Expressions whose type both name. Delve 1.20's `whatis` prints
/// nothing for a type name, a builtin call or an untyped constant, so
/// none is here (goat names those too: tests/vars/eval_values.rs).
const WHATIS: &[&str] = &[
    "req",
    "sh",
    "err",
    "gTemp",
    "gArrPtr",
    "gByPoint",
    "runtime.curg",
    "in.Count",
    "counter + 1",
];

/// The script's commands, each run in the held frame.
fn commands(gid: u64, frame: usize) -> Vec<String> {
    let at = format!("goroutine {gid} frame {frame}");
    let mut cmds = vec![format!("{at} args"), format!("{at} locals")];
    cmds.extend(PRINTS.iter().map(|e| format!("{at} print {e}")));
    cmds.extend(WHATIS.iter().map(|e| format!("{at} whatis {e}")));
    cmds
}

/// `cmds` with a marker print before each, which splits the output.
fn script(cmds: &[String]) -> String {
    cmds.iter()
        .enumerate()
        .map(|(i, c)| format!("print \"@{i}\"\n{c}\n"))
        .collect()
}

/// Each command's output lines, found between the markers.
fn split(out: &str, n: usize) -> Vec<String> {
    let mut parts: Vec<Vec<&str>> = Vec::new();
    for line in out.lines() {
        // Delve prefixes a command's first line with its prompt, twice
        // when the one before printed nothing.
        let mut line = line;
        while let Some(rest) = line.strip_prefix("(dlv) ") {
            line = rest;
        }
        // The question `exit` asks ends the last command's output.
        if let Some(at) = line.find("Would you like to kill the process?") {
            line = &line[..at];
        }
        if line == format!("\"@{}\"", parts.len()) {
            parts.push(Vec::new());
        } else if let Some(p) = parts.last_mut() {
            p.push(line);
        }
    }
    assert_eq!(parts.len(), n, "{n} commands, output:\n{out}");
    parts
        .iter()
        .map(|p| p.join("\n").trim().to_string())
        .collect()
}

/// Delve's stdout for `script`, detaching (not killing) at the end.
fn delve(pid: i32, script: &str) -> String {
    let mut child = Command::new("dlv")
        .args([
            "attach",
            &pid.to_string(),
            "--allow-non-terminal-interactive=true",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dlv");
    // `exit`, then "n" to "Would you like to kill the process?".
    let input = format!("{script}exit\nn\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dlv did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dlv: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// goat's stdout for `script`, with Delve's `print` limits (64 string
/// bytes, 64 elements, one level of recursion: goat's depth 2 is Delve's
/// max-variable-recurse 1, see `config` in docs/COMMANDS.md).
fn goat(pid: i32, script: &str) -> String {
    let dir = common::scratch_dir("delve-parity");
    let path = dir.join("script");
    std::fs::write(&path, script).unwrap();
    let out = attach_with_stdin(
        pid,
        &[],
        &format!(
            "config max-string-len 64\nconfig max-array-values 64\n\
             config max-variable-recurse 2\nsource {}\n",
            path.display()
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "goat: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Where main.hold is parked: (goroutine id, frame number), from goat, and
/// checked against Delve's own stack of that goroutine.
fn held_frame(pid: i32) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let gid = loop {
        let out = text(&attach_with_stdin(pid, &[], "grs -f main.hold\n").stdout);
        let gid = out.lines().find_map(|l| {
            l.trim()
                .strip_prefix("Goroutine ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        });
        match gid {
            Some(g) => break g,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            None => panic!("no main.hold goroutine:\n{out}"),
        }
    };
    let bt = text(&attach_with_stdin(pid, &[], &format!("gr {gid}\nbt\n")).stdout);
    let frame = bt
        .lines()
        .find(|l| l.contains(" in main.hold"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no main.hold frame in:\n{bt}"));
    (gid, frame)
}

/// `name = value` lines.
fn variables(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Whether Delve's `locals`/`args` value is cut short (they load one level
/// less than `print`): it is then compared through `print NAME`.
fn elided(v: &str) -> bool {
    let address = v
        .rsplit(' ')
        .next()
        .is_some_and(|w| w.starts_with("0x") || w.starts_with("(0x"));
    v.contains("[...]") || v.contains("{...}") || v.contains(")(0x") || address
}

/// goat's channel summary as Delve's `locals` line shows a channel:
/// `chan T LEN/CAP`.
fn chan_short(goat: &str) -> Option<String> {
    let (ty, rest) = goat.split_once(" {len: ")?;
    let (len, rest) = rest.split_once(", cap: ")?;
    let (cap, _) = rest.split_once(',')?;
    Some(format!("{ty} {len}/{cap}"))
}

#[test]
fn goat_prints_what_delve_prints() {
    let dlv = common::require_tool("dlv", "apt-get install delve");
    if !dlv {
        return;
    }
    build_fixtures();
    let fx = Fixture::start("go1.19-noopt", "vars", &[]);
    let pid = fx.pid();
    let (gid, frame) = held_frame(pid);
    let cmds = commands(gid, frame);
    let script = script(&cmds);
    let d = split(&delve(pid, &script), cmds.len());
    assert_untouched(pid);
    let g = split(&goat(pid, &script), cmds.len());
    assert_untouched(pid);

    let mut wrong = Vec::new();
    // print NAME, for the locals Delve cuts short.
    let printed = |name: &str| -> Option<(String, String)> {
        let i = PRINTS.iter().position(|e| *e == name)? + 2;
        Some((normalize::delve(&d[i]), normalize::goat(&g[i])))
    };
    for (i, cmd) in cmds.iter().enumerate() {
        if cmd.ends_with(" args") || cmd.ends_with(" locals") {
            let (dv, gv) = (variables(&d[i]), variables(&g[i]));
            let names = |v: &[(String, String)]| -> Vec<String> {
                v.iter().map(|(n, _)| n.clone()).collect()
            };
            if names(&dv) != names(&gv) {
                wrong.push(format!("{cmd}: names\n  dlv:  {dv:?}\n  goat: {gv:?}"));
                continue;
            }
            for ((name, dval), (_, gval)) in dv.iter().zip(&gv) {
                let same = if dval.starts_with("chan ") {
                    chan_short(gval).as_deref() == Some(dval.as_str())
                } else if elided(dval) {
                    // goat's value is its print's; Delve's print is compared.
                    printed(name).is_some_and(|(dp, gp)| dp == gp && gp == normalize::goat(gval))
                } else {
                    normalize::delve(dval) == normalize::goat(gval)
                };
                if !same {
                    wrong.push(format!("{cmd}: {name}\n  dlv:  {dval}\n  goat: {gval}"));
                }
            }
            continue;
        }
        // whatis prints types, a line each: no value format to undo.
        let (dn, gn) = if cmd.contains(" whatis ") {
            (d[i].clone(), g[i].clone())
        } else {
            (normalize::delve(&d[i]), normalize::goat(&g[i]))
        };
        if dn.is_empty() || dn != gn {
            wrong.push(format!("{cmd}\n  dlv:  {dn}\n  goat: {gn}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} commands differ:\n{}",
        wrong.len(),
        cmds.len(),
        wrong.join("\n")
    );
}
