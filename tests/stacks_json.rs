//! `goat stacks --json` on live fixtures, read back with serde_json and held
//! against goat's text dump of the same process (itself held against the
//! runtime's SIGQUIT dump by tests/stacks.rs): the shape docs/json.md
//! documents, and the same facts as the text.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::traceback::{self, Block};
use common::{assert_untouched, build_fixtures, goat, text, Fixture};

/// A "now" ten and a half minutes ahead of the real one, for goat's clock
/// (`GOAT_TEST_MONOTONIC_NS`): every wait a GC stamped then reads 10
/// minutes or more, so a stamped wait cannot pass for an unknown one.
fn future_now() -> String {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now = ts.tv_sec() * 1_000_000_000 + ts.tv_nsec();
    (now + 630 * 1_000_000_000).to_string()
}

/// `goat stacks ARGS` with `now` as goat's clock, when given; stdout.
fn stacks(args: &[&str], now: Option<&str>) -> String {
    let mut cmd = goat();
    cmd.arg("stacks").args(args);
    if let Some(now) = now {
        cmd.env(common::hook("GOAT_TEST_MONOTONIC_NS"), now);
    }
    let out = cmd.output().expect("run goat");
    assert!(
        out.status.success(),
        "goat stacks {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The JSON document's goroutines by id.
fn json_goroutines(doc: &str) -> BTreeMap<u64, Value> {
    let v: Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}:\n{doc}"));
    v["goroutines"]
        .as_array()
        .expect("a goroutines array")
        .iter()
        .map(|g| (g["id"].as_u64().expect("an id"), g.clone()))
        .collect()
}

/// The `, N minutes` of a text header, if any.
fn text_minutes(b: &Block) -> Option<i64> {
    b.bracket
        .split(", ")
        .find_map(|p| p.strip_suffix(" minutes")?.parse().ok())
}

/// The goroutines that were parked in both looks, unchanged (the program
/// runs between them: its runtime goroutines may move).
fn parked_in_both<'a>(
    text: &'a BTreeMap<u64, Block>,
    json: &'a BTreeMap<u64, Value>,
) -> impl Iterator<Item = (&'a Block, &'a Value)> {
    text.values().filter_map(|b| {
        let j = json.get(&b.id)?;
        let parked = !matches!(b.status(), "running" | "runnable" | "preempted");
        (parked && j["wait_reason"].as_str() == Some(b.status())).then_some((b, j))
    })
}

/// Item 8 of issue 33: an idle program's goroutines have no wait time the
/// runtime stamped (only a GC stamps `waitsince`), and JSON said 0 minutes
/// for them; it must say null there, and the minutes where the text has
/// them.
#[test]
fn wait_minutes_are_null_where_the_runtime_never_stamped_them() {
    build_fixtures();
    let now = future_now();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        // An idle service: no GC has run. `states` ran eight.
        for (name, args) in [("service", &["40"][..]), ("states", &[][..])] {
            let fx = Fixture::start(flavour, name, args);
            let pid = fx.pid().to_string();
            let json = json_goroutines(&stacks(&["--json", &pid], Some(&now)));
            let dump = stacks(&[&pid], Some(&now));
            assert_untouched(fx.pid());
            let blocks = traceback::parse(&dump);
            let (mut unknown, mut known) = (0, 0);
            for (b, j) in parked_in_both(&blocks, &json) {
                let label = format!("{flavour} {name} goroutine {}", b.id);
                match text_minutes(b) {
                    Some(m) => {
                        assert_eq!(j["wait_minutes"].as_i64(), Some(m), "{label}: {j}");
                        assert!(m >= 10, "{label}: a stamped wait is 10 minutes old");
                        known += 1;
                    }
                    None => {
                        assert!(j["wait_minutes"].is_null(), "{label}: {j}\n{}", b.text);
                        unknown += 1;
                    }
                }
            }
            match name {
                "service" => assert!(unknown >= 40, "{flavour}: idle workers: {dump}"),
                _ => assert!(known >= 10, "{flavour}: GC-stamped waits: {dump}"),
            }
            // At the real time, a stamped wait is known and under a
            // minute: 0, not null.
            let json = json_goroutines(&stacks(&["--json", &pid], None));
            if name == "states" {
                let zero = json.values().filter(|g| g["wait_minutes"] == 0).count();
                assert!(zero >= 10, "{flavour}: {json:?}");
            }
            for g in json.values() {
                let w = &g["wait_minutes"];
                assert!(w.is_null() || w == 0, "{flavour} {name}: {g}");
            }
        }
    }
}

/// `goat stacks`' text block rebuilt from a JSON goroutine, for the
/// lines JSON describes: each frame's `function(args)` and
/// `\tfile:line ... pc=0x..` (the offset, fp and sp are left out: JSON
/// has no field for them; the text shows an inlined frame's pc nowhere), the elision line, `created by`.
fn text_from_json(g: &Value) -> Vec<String> {
    let s = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("a string: {v}"))
            .to_string()
    };
    let frames = g["frames"].as_array().expect("frames");
    let mut lines = Vec::new();
    let elision = |lines: &mut Vec<String>| match g["elided"]["count"].as_u64() {
        Some(n) => lines.push(format!("...{n} frames elided...")),
        None => lines.push("...additional frames elided...".into()),
    };
    let elided_at = g["elided"]["at"].as_u64().map(|a| a as usize);
    for (i, f) in frames.iter().enumerate() {
        if elided_at == Some(i) {
            elision(&mut lines);
        }
        lines.push(format!("{}({})", s(&f["function"]), s(&f["args"])));
        let location = format!("\t{}:{}", s(&f["file"]), f["line"]);
        // An inlined frame's location line has no pc (nor offset).
        match f["inlined"] == true {
            true => lines.push(location),
            false => lines.push(format!("{location} pc={}", s(&f["pc"]))),
        }
    }
    if elided_at.is_some_and(|a| a >= frames.len()) {
        elision(&mut lines);
    }
    if let Some(c) = g["created_by"].as_object() {
        let parent = c["goroutine"]
            .as_u64()
            .map_or(String::new(), |p| format!(" in goroutine {p}"));
        lines.push(format!("created by {}{parent}", s(&c["function"])));
        lines.push(format!("\t{}:{}", s(&c["file"]), c["line"]));
    }
    lines
}

/// The same lines of goat's text block: location lines cut to
/// `\tfile:line` and their `pc=` (a frame's), `created by`'s as is.
fn text_lines(b: &Block) -> Vec<String> {
    let mut out = Vec::new();
    for l in b.text.lines().skip(1) {
        let Some(loc) = l.strip_prefix('\t') else {
            out.push(l.to_string());
            continue;
        };
        let file_line = loc.split(' ').next().unwrap_or("");
        match loc.split(' ').find(|w| w.starts_with("pc=")) {
            Some(pc) => out.push(format!("\t{file_line} {pc}")),
            None => out.push(format!("\t{file_line}")),
        }
    }
    out
}

/// Item 13 of issue 33: JSON frames carry their arguments, addresses are
/// hex as in the text, `status` is the runtime's status name with the
/// reason apart; everything held against goat's text dump of the same
/// process (tests/stacks.rs holds that one against the runtime's).
#[test]
fn json_says_what_the_text_says() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let fx = Fixture::start(flavour, "states", &[]);
        let pid = fx.pid().to_string();
        let doc = stacks(&["--json", &pid], None);
        let dump = stacks(&[&pid], None);
        assert_untouched(fx.pid());
        let json = json_goroutines(&doc);
        let blocks = traceback::parse(&dump);
        let mut compared = 0;
        for (b, j) in parked_in_both(&blocks, &json) {
            let label = format!("{flavour} goroutine {}", b.id);
            let status = j["status"].as_str().unwrap();
            assert_eq!(status, "waiting", "{label}: {j}");
            let mut bracket = j["wait_reason"].as_str().unwrap().to_string();
            if j["locked"] == true {
                bracket.push_str(", locked to thread");
            }
            assert_eq!(bracket, b.bracket, "{label}");
            if let Some(gp) = &b.gp {
                assert_eq!(j["gp"].as_str(), Some(gp.as_str()), "{label}");
            }
            assert!(j["gp"].as_str().unwrap().starts_with("0x"), "{label}: {j}");
            assert_eq!(
                text_from_json(j),
                text_lines(b),
                "{label}:\n{}\n{j}",
                b.text
            );
            compared += 1;
        }
        assert!(compared >= 15, "{flavour}: {compared} compared\n{dump}");
        // A running goroutine's status is its own, with no reason.
        let spin = Fixture::start(flavour, "states", &["spin"]);
        let json = json_goroutines(&stacks(&["--json", &spin.pid().to_string()], None));
        let running = json.values().find(|g| g["status"] == "running");
        let running = running.unwrap_or_else(|| panic!("{flavour}: none running: {json:?}"));
        assert!(running["wait_reason"].is_null(), "{running}");
    }
}

/// Item 13 of issue 33: `--json --group` was refused; it gives the groups
/// of `--group` as JSON, a group per line, held against the text groups.
#[test]
fn grouped_json_says_what_the_grouped_text_says() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        // Many goroutines in few stacks: groups of real size.
        let fx = Fixture::start(flavour, "service", &["300"]);
        let pid = fx.pid().to_string();
        let doc = stacks(&["--json", "--group", &pid], None);
        let grouped = stacks(&["--group", &pid], None);
        assert_untouched(fx.pid());
        let lines: Vec<&str> = doc.lines().collect();
        let v: Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}:\n{doc}"));
        let groups = v["groups"].as_array().expect("a groups array");
        assert!(groups.len() >= 3, "{flavour}: {doc}");
        assert_eq!(lines.len(), groups.len() + 2, "{flavour}: a group per line");
        let total: u64 = groups.iter().map(|g| g["count"].as_u64().unwrap()).sum();
        assert!(total >= 300, "{flavour}: {total} goroutines");
        // The text's groups, by their frames: `count [bracket]` per stack.
        let mut text_groups = BTreeMap::new();
        for block in grouped.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut it = block.lines();
            let header = it.next().unwrap();
            let frames: Vec<&str> = it.collect();
            let count: u64 = header.split(' ').next().unwrap().parse().unwrap();
            let bracket = &header[header.find('[').unwrap() + 1..header.find("]:").unwrap()];
            text_groups.insert(frames.join("\n"), (count, bracket.to_string()));
        }
        for g in groups {
            let mut frames = Vec::new();
            for f in g["frames"].as_array().unwrap() {
                frames.push(format!("{}(...)", f["function"].as_str().unwrap()));
                frames.push(format!("\t{}:{}", f["file"].as_str().unwrap(), f["line"]));
            }
            if let Some(c) = g["created_by"].as_object() {
                frames.push(format!("created by {}", c["function"].as_str().unwrap()));
                frames.push(format!("\t{}:{}", c["file"].as_str().unwrap(), c["line"]));
            }
            let key = frames.join("\n");
            // The program ran between the two looks: its own parked
            // workers' groups are compared (runtime goroutines may move).
            if !key.contains("main.worker") {
                continue;
            }
            let (count, bracket) = text_groups
                .get(&key)
                .unwrap_or_else(|| panic!("{flavour}: no text group for\n{key}\n{grouped}"));
            assert_eq!(g["count"].as_u64(), Some(*count), "{flavour}: {g}");
            assert_eq!(g["ids"].as_array().unwrap().len() as u64, *count, "{g}");
            assert_eq!(g["status"], "waiting", "{g}");
            assert_eq!(g["wait_reason"].as_str(), bracket.split(", ").next(), "{g}");
        }
    }
}
