//! `goat why` on `tests/fixtures/hangs`, a program stuck in ten ways at
//! once. The oracles: the fixture's manifest (which goroutine is which
//! scenario, from its own source) and, on Go 1.27, the runtime's own
//! goroutine-leak profile, asked after goat: goat's never-wakes set must
//! be exactly the runtime's. The same analysis from a core gives the same
//! answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{assert_untouched, build_fixtures, run_goat, scratch_dir, text, Fixture};

/// Scenario → goroutine ids, as the fixture wrote them.
fn manifest(path: &Path) -> BTreeMap<String, Vec<u64>> {
    std::fs::read_to_string(path)
        .expect("the fixture's manifest")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let cat = f.next()?.to_string();
            Some((cat, f.filter_map(|id| id.parse().ok()).collect()))
        })
        .collect()
}

/// `goat why --json` of a core of `fx`, written into `dir` by `goat core`.
fn why_of_its_core(fx: &Fixture, dir: &Path) -> Value {
    let core = dir.join("core");
    common::write_core(fx.pid(), &core);
    why_json(&[
        "--core",
        core.to_str().unwrap(),
        "--exe",
        fx.path.to_str().unwrap(),
    ])
}

fn why_json(args: &[&str]) -> Value {
    let mut all = vec!["why", "--json"];
    all.extend_from_slice(args);
    let out = run_goat(&all);
    assert!(out.status.success(), "goat {all:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("goat why --json is JSON")
}

/// Goroutines of the report by id.
fn by_id(doc: &Value) -> BTreeMap<u64, Value> {
    doc["goroutines"]
        .as_array()
        .expect("goroutines")
        .iter()
        .map(|g| (g["id"].as_u64().expect("id"), g.clone()))
        .collect()
}

fn never_wakes(doc: &Value) -> BTreeSet<u64> {
    by_id(doc)
        .into_iter()
        .filter(|(_, g)| g["never_wakes"] == Value::Bool(true))
        .map(|(id, _)| id)
        .collect()
}

/// Checks each scenario's goroutines against what the fixture does.
fn check_scenarios(flavour: &str, doc: &Value, m: &BTreeMap<String, Vec<u64>>) {
    // A binary without symbols or DWARF names no package variable.
    let has_names = !flavour.contains("stripped");
    let gs = by_id(doc);
    let ids = |cat: &str| -> Vec<u64> {
        m.get(cat)
            .unwrap_or_else(|| panic!("{flavour}: no {cat} in the manifest"))
            .clone()
    };
    let g = |id: &u64| {
        gs.get(id)
            .unwrap_or_else(|| panic!("{flavour}: no goroutine {id}"))
    };
    let kind = |id: &u64| g(id)["waits_on"]["kind"].as_str().unwrap_or("").to_string();
    let name = |id: &u64| g(id)["waits_on"]["name"].as_str().unwrap_or("").to_string();
    let addr = |id: &u64| g(id)["waits_on"]["addr"].as_str().unwrap_or("").to_string();
    let never = |id: &u64| g(id)["never_wakes"] == Value::Bool(true);
    let releasers = |id: &u64| -> BTreeSet<u64> {
        g(id)["may_release"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    };
    let all_kind = |cat: &str, want: &str| {
        for id in ids(cat) {
            assert_eq!(
                kind(&id),
                want,
                "{flavour}: {cat} goroutine {id}: {}",
                g(&id)
            );
        }
    };
    let none_never = |cat: &str| {
        for id in ids(cat) {
            assert!(
                !never(&id),
                "{flavour}: {cat} goroutine {id} may wake: {}",
                g(&id)
            );
        }
    };
    let all_never = |cat: &str| {
        for id in ids(cat) {
            assert!(
                never(&id),
                "{flavour}: {cat} goroutine {id} never wakes: {}",
                g(&id)
            );
        }
    };

    // A mutex held across a network read, with waiters.
    let holder = ids("io_holder")[0];
    assert_eq!(kind(&holder), "io", "{flavour}: {}", g(&holder));
    let detail = g(&holder)["waits_on"]["detail"].as_str().unwrap_or("");
    // A core has no descriptors to name the socket's addresses from.
    let named = if flavour.ends_with("core") {
        "fd "
    } else {
        "127.0.0.1:"
    };
    assert!(detail.contains(named), "{flavour}: {detail}");
    all_kind("mutex_waiters", "mutex");
    let waiters = ids("mutex_waiters");
    let mu = addr(&waiters[0]);
    for w in &waiters {
        assert_eq!(addr(w), mu, "{flavour}: the waiters share one mutex");
        assert!(
            releasers(w).contains(&holder),
            "{flavour}: {holder} may hold it: {}",
            g(w)
        );
    }
    none_never("mutex_waiters");

    // A deadlock cycle through a channel and a mutex.
    let (a, b) = (ids("cycle_a")[0], ids("cycle_b")[0]);
    assert_eq!(kind(&a), "chan", "{flavour}: {}", g(&a));
    assert_eq!(kind(&b), "mutex", "{flavour}: {}", g(&b));
    if has_names {
        assert_eq!(name(&b), "main.state.mu", "{flavour}: {}", g(&b));
    }
    let mut pair = vec![a, b];
    pair.sort_unstable();
    let cycles: Vec<Vec<u64>> = serde_json::from_value(doc["cycles"].clone()).unwrap();
    if !has_names {
        // Who holds a package variable's lock is known from the code that
        // names the variable: without symbols the releasers are partial,
        // and the report says so rather than "no deadlock".
        assert!(doc["releasers_partial"].is_string(), "{flavour}: {doc:#}");
        assert!(doc["never_wakes_unknown"].is_null(), "{flavour}: {doc:#}");
        all_kind("orphans", "chan");
        all_never("orphans");
        none_never("workers");
        all_never("wg_waiter");
        all_never("wg_workers");
        all_never("select_forever");
        none_never("cond_waiters");
        none_never("sleeper_waiters");
        let sleeper = ids("sleeper")[0];
        for w in ids("sleeper_waiters") {
            assert!(releasers(&w).contains(&sleeper), "{flavour}: {}", g(&w));
        }
        return;
    }
    assert!(
        cycles.contains(&pair),
        "{flavour}: cycle {pair:?} in {cycles:?}"
    );
    let texts: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["text"].as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("deadlock:") && t.contains("main.state.mu")),
        "{flavour}: {texts:#?}"
    );

    // Orphaned channels: never wake.
    all_kind("orphans", "chan");
    all_never("orphans");

    // Idle workers on a package variable's channel: may wake.
    all_kind("workers", "chan");
    none_never("workers");
    for w in ids("workers") {
        assert_eq!(name(&w), "main.jobs", "{flavour}: {}", g(&w));
    }

    // A channel only a sleeping goroutine references: may wake, and the
    // sleeper is who may release them.
    let sleeper = ids("sleeper")[0];
    assert_eq!(kind(&sleeper), "sleep", "{flavour}: {}", g(&sleeper));
    all_kind("sleeper_waiters", "chan");
    none_never("sleeper_waiters");
    for w in ids("sleeper_waiters") {
        assert!(releasers(&w).contains(&sleeper), "{flavour}: {}", g(&w));
    }

    // A WaitGroup whose workers are stuck on an orphaned channel.
    all_kind("wg_waiter", "waitgroup");
    all_kind("wg_workers", "chan");
    all_never("wg_waiter");
    all_never("wg_workers");

    // An RWMutex held by sleeping readers, a writer and a late reader.
    all_kind("rw_writer", "rwmutex");
    all_kind("rw_late_reader", "rwmutex");
    let writer = ids("rw_writer")[0];
    assert!(
        name(&writer).starts_with("main.table"),
        "{flavour}: {}",
        g(&writer)
    );
    for r in ids("rw_readers") {
        assert_eq!(kind(&r), "sleep", "{flavour}: {}", g(&r));
        assert!(releasers(&writer).contains(&r), "{flavour}: {}", g(&writer));
    }
    none_never("rw_writer");
    none_never("rw_late_reader");

    // A Cond nobody signals, reachable from a package variable.
    all_kind("cond_waiters", "cond");
    none_never("cond_waiters");

    // select {}.
    all_kind("select_forever", "select");
    all_never("select_forever");
}

/// What Go 1.27's runtime calls leaked, asked after goat (it changes the
/// goroutines' status for good).
fn runtime_leaks(fx: &Fixture, leakfile: &Path) -> BTreeSet<u64> {
    let done = leakfile.with_extension("txt.done");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fx.pid()),
        nix::sys::signal::SIGUSR1,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "no goroutineleak profile written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let profile = std::fs::read_to_string(leakfile).unwrap();
    assert!(!profile.starts_with("unsupported"), "{profile}");
    profile
        .lines()
        .filter(|l| l.starts_with("goroutine ") && l.contains("(leaked)"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// What `go tool pprof ARGS FILE` prints (Go 1.27's), checked to succeed.
fn go_pprof(args: &[&str], path: &Path) -> String {
    let go = common::root().join(".toolchains/go1.27/bin/go");
    assert!(
        go.exists(),
        "{} is missing: run scripts/setup-go",
        go.display()
    );
    let out = std::process::Command::new(&go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(path)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).to_string()
}

/// How many goroutines `go tool pprof -tags` counts with the label
/// `never_wakes: true` in the profile at `path`.
fn pprof_never_wakes(path: &Path) -> u64 {
    let tags = go_pprof(&["-tags"], path);
    // -top reads it too.
    let top = go_pprof(&["-top"], path);
    assert!(top.contains("runtime.gopark"), "{top}");
    // " never_wakes: Total 39 of 39 (100%)", then "   10 (25.64%): true".
    let mut in_label = false;
    for line in tags.lines() {
        let t = line.trim();
        if t.contains(": Total ") {
            in_label = t.starts_with("never_wakes:");
        } else if in_label && t.ends_with(": true") {
            return t.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
    0
}

fn scenario(flavour: &str) {
    let dir = scratch_dir(&format!("why-{flavour}"));
    let (man, leak) = (dir.join("manifest.txt"), dir.join("leak.txt"));
    let fx = Fixture::start(
        flavour,
        "hangs",
        &[man.to_str().unwrap(), leak.to_str().unwrap()],
    );
    let m = manifest(&man);
    let pid = fx.pid().to_string();
    let profile = dir.join("why.pb.gz");
    let live = why_json(&["--pprof", profile.to_str().unwrap(), &pid]);
    assert_untouched(fx.pid());
    check_scenarios(flavour, &live, &m);
    assert_eq!(
        pprof_never_wakes(&profile),
        never_wakes(&live).len() as u64,
        "{flavour}: go tool pprof -tags reads the never_wakes label"
    );

    // The same answers from a core.
    let from_core = why_of_its_core(&fx, &dir);
    check_scenarios(&format!("{flavour} core"), &from_core, &m);
    assert_eq!(never_wakes(&live), never_wakes(&from_core), "{flavour}");

    if flavour.starts_with("go1.27") {
        let runtime = runtime_leaks(&fx, &leak);
        assert_eq!(
            never_wakes(&live),
            runtime,
            "{flavour}: goat's never-wakes set against the runtime's goroutineleak profile"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn why_names_every_hang_on_go1_19() {
    build_fixtures();
    scenario("go1.19-exe");
    scenario("go1.19-pie");
}

#[test]
fn why_names_every_hang_on_go1_21() {
    build_fixtures();
    scenario("go1.21-exe");
    scenario("go1.21-pie");
}

#[test]
fn why_names_every_hang_on_go1_24() {
    build_fixtures();
    scenario("go1.24-exe");
    scenario("go1.24-pie");
}

#[test]
fn why_matches_the_runtimes_leak_profile_on_go1_27() {
    build_fixtures();
    scenario("go1.27-exe");
    scenario("go1.27-pie");
}

/// `--growth`: the site that leaks a goroutine every 20 ms is found, and
/// the fixed scenarios are not.
#[test]
fn growth_finds_the_site_that_leaks() {
    build_fixtures();
    let dir = scratch_dir("why-growth");
    let (man, leak) = (dir.join("manifest.txt"), dir.join("leak.txt"));
    let fx = Fixture::start(
        "go1.27-exe",
        "hangs",
        &[man.to_str().unwrap(), leak.to_str().unwrap(), "grow"],
    );
    let pid = fx.pid().to_string();
    let doc = why_json(&["--growth", "2s", &pid]);
    assert_untouched(fx.pid());
    let sites = doc["sites"].as_array().expect("sites");
    let first = &sites[0];
    assert!(
        first["created_by"]
            .as_str()
            .unwrap()
            .starts_with("main.leaker "),
        "{doc:#}"
    );
    let (before, after) = (
        first["before"].as_u64().unwrap(),
        first["after"].as_u64().unwrap(),
    );
    // 2 s at one every 20 ms: about 100 more (a loaded machine sleeps longer).
    assert!(after >= before + 20, "{doc:#}");
    assert_eq!(first["waiting"][0][0], "chan receive", "{doc:#}");
    assert!(
        sites
            .iter()
            .all(|s| !s["created_by"].as_str().unwrap().contains("main.orphans")),
        "{doc:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel's own core (GOTRACEBACK=crash, then SIGQUIT) gives the same
/// answers as the live process: the waits of every scenario, and as
/// never-waking exactly the goroutines the fixture leaked (Go 1.27's
/// runtime agrees on those: `why_matches_the_runtimes_leak_profile_on_go1_27`).
#[test]
fn why_reads_the_kernels_core() {
    use common::kernel_core::{core_written, crashable, kernel_core_fix, TempDir};
    use std::io::BufRead;
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let dir = TempDir::new(&format!("why-{flavour}"));
        let (man, leak) = (dir.0.join("manifest.txt"), dir.0.join("leak.txt"));
        let exe = common::fixture_path(flavour, "hangs");
        let mut child = crashable(
            &exe,
            &[man.to_str().unwrap(), leak.to_str().unwrap()],
            &dir.0,
        )
        .spawn()
        .expect("start hangs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        let m = manifest(&man);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::SIGQUIT).expect("SIGQUIT");
        let _ = std::io::Read::read_to_end(&mut child.stderr.take().unwrap(), &mut Vec::new());
        let status = child.wait().unwrap();
        let core =
            core_written(&dir.0, status).unwrap_or_else(|why| panic!("{}", kernel_core_fix(&why)));
        let doc = why_json(&[
            "--core",
            core.to_str().unwrap(),
            "--exe",
            exe.to_str().unwrap(),
        ]);
        check_scenarios(&format!("{flavour} kernel core"), &doc, &m);
        // Each thread the crash caught in the scheduler is listed (as the
        // runtime's dump lists it), but its stack is no goroutine's: stale
        // words there (the channel its `park_m` just parked one on) once
        // made a thread "may release" a deadlocked channel, now and then.
        let all = doc["goroutines"].as_array().unwrap();
        assert!(
            all.iter().any(|g| g["id"] == 0),
            "{flavour}: no goroutine 0 in the crash core's report"
        );
        for g in all {
            assert!(
                !g["may_release"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(0)),
                "{flavour} kernel core: a system stack may release {g:#}"
            );
        }
        let leaked: BTreeSet<u64> = ["orphans", "wg_workers", "wg_waiter", "select_forever"]
            .iter()
            .flat_map(|c| m[*c].iter().copied())
            .collect();
        assert_eq!(never_wakes(&doc), leaked, "{flavour} kernel core");
    }
}

/// A stripped production binary (`-ldflags='-s -w'`: no DWARF, no
/// symbols): the heap is read through goat's per-release table and
/// `mheap_` found in the code, so every scenario is decided as with DWARF,
/// from the process and from a core; on Go 1.27 the never-wakes set is the
/// runtime's own. Only the package variables' names are missing.
#[test]
fn a_stripped_binary_gets_every_answer_but_names() {
    build_fixtures();
    scenario("go1.19-stripped");
    scenario("go1.27-stripped");
}

/// `why --pprof` keeps each goroutine's own pprof labels beside goat's:
/// `-tagfocus job=resize` selects the one goroutine `inspect` labelled
/// with `pprof.Do`, and its trace carries goat's `waits_on` too.
#[test]
fn why_pprof_keeps_the_goroutines_own_labels() {
    build_fixtures();
    let dir = scratch_dir("why-pprof-labels");
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let file = dir.join(format!("{flavour}.pb.gz"));
        let out = run_goat(&[
            "why",
            "--pprof",
            file.to_str().unwrap(),
            &fx.pid().to_string(),
        ]);
        assert!(out.status.success(), "{flavour}: {}", text(&out.stderr));
        assert_untouched(fx.pid());
        let traces = go_pprof(&["-traces", "-tagfocus", "job=resize"], &file);
        let with_labelled = traces.matches("main.labelled.func1").count();
        assert_eq!(with_labelled, 1, "{flavour}: {traces}");
        assert!(traces.contains("worker:  7"), "{flavour}: {traces}");
        assert!(traces.contains("waits_on:  chan"), "{flavour}: {traces}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report without what changes while a program waits (minutes).
fn steady(doc: &Value) -> Value {
    let mut doc = doc.clone();
    for g in doc["goroutines"].as_array_mut().expect("goroutines") {
        g.as_object_mut()
            .expect("a goroutine")
            .remove("wait_minutes");
    }
    doc
}

/// A live `goat why` of thousands of goroutines reads their stacks from
/// its copy on disk through windows fetched ahead of the decode
/// (`process/readahead.rs`), and the heap through a prefetch with no
/// read-around. Its answers must be the very ones a core of the same
/// program gives, read the usual way, goroutine by goroutine.
#[test]
fn a_live_copy_read_ahead_answers_as_its_core_does() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        // Well past the fewest stacks a read-ahead is planned for (4096).
        let fx = Fixture::start(flavour, "many", &["20000"]);
        let pid = fx.pid().to_string();
        let live = why_json(&[&pid]);
        assert_untouched(fx.pid());
        let dir = scratch_dir(&format!("why-ahead-{flavour}"));
        let from_core = why_of_its_core(&fx, &dir);
        let count = live["goroutines"].as_array().map_or(0, Vec::len);
        assert!(count > 20_000, "{flavour}: {count} goroutines");
        let (live, from_core) = (steady(&live), steady(&from_core));
        let core_gs = by_id(&from_core);
        for (id, g) in by_id(&live) {
            assert_eq!(
                Some(&g),
                core_gs.get(&id),
                "{flavour}: goroutine {id}, live against its core"
            );
        }
        assert_eq!(live, from_core, "{flavour}: the whole report");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
