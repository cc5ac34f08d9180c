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
