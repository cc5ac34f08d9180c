//! `goat stacks --pprof FILE`: the goroutine profile, read by a real pprof
//! reader (`go tool pprof` of .toolchains/go1.27) and held against the
//! runtime's own goroutine dump (SIGQUIT) of the same process: the
//! goroutines counted, the count per stack, every frame's function and
//! file:line (inlined ones included), and the labels a fixture set with
//! `pprof.Do` (selected with `-tagfocus`). Live pids and cores.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::traceback::{self, Block};
use common::{assert_untouched, run_goat, scratch_dir, text, Fixture};

/// A stack as both sides show it: (function, file, line), innermost first.
type Stack = Vec<(String, String, u32)>;

/// One sample of `go tool pprof -raw`: its count, labels and frames.
#[derive(Debug)]
struct Sample {
    count: u64,
    labels: Vec<String>,
    frames: Stack,
}

const FLAVOURS: [&str; 4] = ["go1.19-exe", "go1.19-pie", "go1.27-exe", "go1.27-pie"];

fn go() -> PathBuf {
    common::root().join(".toolchains/go1.27/bin/go")
}

/// `go tool pprof ARGS FILE`'s stdout, which must succeed.
fn pprof(args: &[&str], file: &Path) -> String {
    let go = go();
    assert!(
        go.is_file(),
        "{} is missing: run scripts/setup-go",
        go.display()
    );
    let out = Command::new(&go)
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", common::root().join(".toolchains/gocache"))
        // pprof must take the profile as it is, never look for binaries.
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `path:line:column` as (path, line).
fn file_line(t: &str) -> (String, u32) {
    let mut parts = t.rsplitn(3, ':');
    let _column = parts.next();
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (parts.next().unwrap_or("").to_string(), line)
}

/// The samples of `go tool pprof -raw`, each location's lines in order.
fn raw_samples(raw: &str) -> Vec<Sample> {
    let mut section = "";
    let mut samples: Vec<(u64, Vec<u64>, Vec<String>)> = Vec::new();
    let mut locations: BTreeMap<u64, Stack> = BTreeMap::new();
    let mut current = 0;
    for line in raw.lines() {
        if matches!(line, "Samples:" | "Locations" | "Mappings") {
            section = line;
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            continue;
        };
        let id = first.strip_suffix(':').and_then(|n| n.parse::<u64>().ok());
        match (section, id) {
            ("Samples:", Some(count)) => {
                let ids = tokens[1..].iter().map(|t| t.parse().unwrap()).collect();
                samples.push((count, ids, Vec::new()));
            }
            ("Samples:", None) if line.contains(":[") => {
                let last = samples.last_mut().expect("labels follow a sample");
                last.2 = tokens.iter().map(|t| t.to_string()).collect();
            }
            ("Locations", Some(id)) => {
                current = id;
                let rest: Vec<&str> = tokens[1..]
                    .iter()
                    .copied()
                    .skip_while(|t| t.starts_with("0x") || t.starts_with("M="))
                    .collect();
                let (file, n) = file_line(rest[1]);
                locations.insert(id, vec![(rest[0].to_string(), file, n)]);
            }
            ("Locations", None) => {
                let (file, n) = file_line(tokens[1]);
                let l = locations.get_mut(&current).expect("a location first");
                l.push((tokens[0].to_string(), file, n));
            }
            _ => {}
        }
    }
    samples
        .into_iter()
        .map(|(count, ids, labels)| Sample {
            count,
            labels,
            frames: ids
                .iter()
                .flat_map(|id| locations.get(id).cloned().expect("a known location"))
                .collect(),
        })
        .collect()
}

/// A runtime dump block's frames as the profile has them: without
/// `runtime.goexit` (Go's profiles leave it out) and elision notes.
fn stack_of(b: &Block) -> Stack {
    b.frames
        .iter()
        .filter(|(f, _, _)| f != "runtime.goexit" && !f.starts_with("..."))
        .cloned()
        .collect()
}

/// Statuses that cannot change between goat's look and the SIGQUIT.
fn parked(b: &Block) -> bool {
    !matches!(
        b.status(),
        "running" | "runnable" | "preempted" | "copystack" | "syscall"
    )
}

/// The profile against the runtime's dump: as many goroutines (the
/// runtime's `goroutine 0` system stacks aside), and each parked stack of
/// the dump in the profile as many times, frame by frame.
fn assert_matches_dump(what: &str, samples: &[Sample], runtime_text: &str) {
    let blocks = traceback::parse(runtime_text);
    let goroutines: Vec<&Block> = blocks.values().filter(|b| b.id != 0).collect();
    let total: u64 = samples.iter().map(|s| s.count).sum();
    assert_eq!(
        total,
        goroutines.len() as u64,
        "{what}: goroutines in the profile and in the runtime's dump"
    );
    let mut profiled: BTreeMap<Stack, u64> = BTreeMap::new();
    for s in samples {
        *profiled.entry(s.frames.clone()).or_default() += s.count;
    }
    let mut dumped: BTreeMap<Stack, u64> = BTreeMap::new();
    let mut moving = Vec::new();
    for b in &goroutines {
        match parked(b) {
            true => *dumped.entry(stack_of(b)).or_default() += 1,
            false => moving.push(stack_of(b)),
        }
    }
    assert!(dumped.len() >= 3, "{what}: too few stacks to compare");
    for (stack, n) in &dumped {
        // A goroutine that ran between the two looks may have joined
        // this stack in the profile; it cannot have left a parked one.
        let extra = moving.len() as u64;
        let got = profiled.get(stack).copied().unwrap_or(0);
        assert!(
            got >= *n && got <= n + extra,
            "{what}: {n} goroutines in the runtime's dump stand in\n{stack:#?}\nthe profile has {got}"
        );
    }
}

/// `goat stacks ARGS --pprof FILE`, then `go tool pprof -raw FILE`.
fn profile(args: &[&str], dir: &Path, name: &str) -> (PathBuf, Vec<Sample>) {
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    let mut all = vec!["stacks"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--pprof", file.to_str().expect("UTF-8")]);
    let out = run_goat(&all);
    assert!(out.status.success(), "goat {all:?}: {}", text(&out.stderr));
    let mode = std::fs::metadata(&file).expect("the profile").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600,
        "the profile is private"
    );
    let samples = raw_samples(&pprof(&["-raw"], &file));
    (file, samples)
}

#[test]
fn counts_per_stack_and_frames_match_the_runtimes_dump() {
    let dir = scratch_dir("stacks-pprof-many");
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "many", &["400"]);
        let pid = fx.pid().to_string();
        let (file, samples) = profile(&[&pid], &dir, &format!("{flavour}.pb.gz"));
        assert_untouched(fx.pid());
        // Few samples for many goroutines: identical stacks merged.
        assert!(samples.len() < 40, "{flavour}: {} samples", samples.len());
        // -top's total: every goroutine, counted once.
        let total: u64 = samples.iter().map(|s| s.count).sum();
        let top = pprof(&["-top"], &file);
        assert!(
            top.contains(&format!("of {total} total")) && total > 400,
            "{flavour}: {total} goroutines sampled; -top says\n{top}"
        );
        assert_matches_dump(flavour, &samples, &fx.sigquit_dump());
    }
}

/// The labels `inspect` sets with `pprof.Do` are the sample labels of its
/// goroutine, and `-tagfocus` selects it alone, with the runtime's frames.
#[test]
fn pprof_do_labels_are_sample_labels_that_tagfocus_selects() {
    let dir = scratch_dir("stacks-pprof-labels");
    for flavour in FLAVOURS {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let pid = fx.pid().to_string();
        let (file, samples) = profile(&[&pid], &dir, &format!("{flavour}.pb.gz"));
        assert_untouched(fx.pid());
        let focused = pprof(&["-traces", "-tagfocus", "job=resize"], &file);
        let other = pprof(&["-traces", "-tagfocus", "job=other"], &file);
        let runtime_text = fx.sigquit_dump();
        assert_matches_dump(flavour, &samples, &runtime_text);
        let labelled: Vec<&Sample> = samples.iter().filter(|s| !s.labels.is_empty()).collect();
        assert_eq!(labelled.len(), 1, "{flavour}: {samples:#?}");
        let mut labels = labelled[0].labels.clone();
        labels.sort();
        assert_eq!(labels, ["job:[resize]", "worker:[7]"], "{flavour}");
        assert_eq!(labelled[0].count, 1);
        let blocks = traceback::parse(&runtime_text);
        let theirs = blocks
            .values()
            .find(|b| b.frames.iter().any(|f| f.0 == "main.labelled.func1"))
            .expect("the labelled goroutine in the runtime's dump");
        assert_eq!(labelled[0].frames, stack_of(theirs), "{flavour}");

        // -traces with the tag focus: that goroutine alone.
        // Traces sit between `-----------+-----...` rules.
        let traces: Vec<&str> = focused
            .split("-----------+")
            .skip(1)
            .filter(|t| {
                !t.trim_matches(|c: char| c == '-' || c.is_whitespace())
                    .is_empty()
            })
            .collect();
        assert_eq!(traces.len(), 1, "{flavour}: {focused}");
        assert!(traces[0].contains("main.labelled.func1"), "{focused}");
        assert!(traces[0].contains("job:  resize"), "{focused}");
        assert!(!other.contains("main."), "{flavour}: {other}");
    }
}

/// Pre-copy mode reads the labels just after its final stop, from the
/// running target: the same profile.
#[test]
fn precopy_mode_profiles_goroutines_and_labels_alike() {
    let dir = scratch_dir("stacks-pprof-precopy");
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let pid = fx.pid().to_string();
        let args = [pid.as_str(), "--mode", "precopy"];
        let (_, samples) = profile(&args, &dir, &format!("{flavour}.pb.gz"));
        assert_untouched(fx.pid());
        assert_matches_dump(flavour, &samples, &fx.sigquit_dump());
        let labelled: Vec<&Sample> = samples.iter().filter(|s| !s.labels.is_empty()).collect();
        assert_eq!(labelled.len(), 1, "{flavour}: {samples:#?}");
        let mut labels = labelled[0].labels.clone();
        labels.sort();
        assert_eq!(labels, ["job:[resize]", "worker:[7]"], "{flavour}");
    }
}

/// A core written by `goat core`, profiled with `goat stacks --core
/// --pprof`: the same goroutines, stacks and labels as the runtime's dump
/// of the process it was taken of.
#[test]
fn a_cores_profile_matches_the_runtimes_dump() {
    let dir = scratch_dir("stacks-pprof-core");
    for flavour in ["go1.19-pie", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "inspect", &[]);
        let core = dir.join(format!("{flavour}.core"));
        common::write_core(fx.pid(), &core);
        let core_arg = core.to_str().expect("UTF-8");
        let (_, samples) = profile(&["--core", core_arg], &dir, &format!("{flavour}.pb.gz"));
        assert_matches_dump(flavour, &samples, &fx.sigquit_dump());
        let labelled: Vec<&Sample> = samples.iter().filter(|s| !s.labels.is_empty()).collect();
        assert_eq!(labelled.len(), 1, "{flavour}: {samples:#?}");
        assert!(labelled[0].labels.contains(&"job:[resize]".to_string()));
        let _ = std::fs::remove_file(&core);
    }
}

/// FILE is never written through a symbolic link, nor replaced without
/// --force; the target runs on either way.
#[test]
fn a_link_or_an_existing_file_is_refused() {
    let dir = scratch_dir("stacks-pprof-refused");
    let fx = Fixture::start("go1.27-exe", "inspect", &[]);
    let pid = fx.pid().to_string();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let link = dir.join("link.pb.gz");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for (dest, force) in [(&link, true), (&victim, false)] {
        let mut args = vec!["stacks", &pid, "--pprof", dest.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let out = run_goat(&args);
        assert!(!out.status.success(), "{args:?} wrote");
        assert!(
            text(&out.stderr).contains("not writing to"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }
    assert_untouched(fx.pid());
    // With --force, a regular file is replaced (by a new 0600 file).
    let out = run_goat(&["stacks", &pid, "--pprof", victim.to_str().unwrap(), "-f"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&victim).unwrap(), b"keep");
}
