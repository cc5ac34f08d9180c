//! `goat stacks` on live fixtures, held against the Go runtime's own SIGQUIT
//! traceback of the same process, for every Go release and build mode built.

mod common;

use common::traceback::{self, assert_same_dump, Block};
use common::{assert_untouched, flavours, run_goat, Fixture};

fn compare_with_runtime(flavour: &str) {
    let fx = Fixture::start(flavour, "states", &["spin"]);
    let pid = fx.pid().to_string();
    let out = run_goat(&["stacks", &pid]);
    let goat_text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{flavour}: goat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(fx.pid());
    let runtime_text = fx.sigquit_dump();
    assert_same_dump(flavour, &goat_text, &runtime_text);
}

/// A target in a time namespace of its own, whose monotonic clock is 90 s
/// behind ours: goat must measure its wait minutes with its clock. (Without
/// that, every goroutine would show "1 minutes" more than the runtime's.)
#[test]
fn wait_minutes_in_a_time_namespace_match_the_runtime() {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    // The namespace's clock may not go below zero.
    let up =
        format!("the machine is up {uptime} s, too short to set a clock 90 s back: wait 2 minutes");
    if !common::require("uptime", uptime >= 120.0, &up) {
        return;
    }
    let path = common::fixture_path("go1.27-exe", "states");
    let mut unshare = std::process::Command::new("unshare")
        .args(["--time", "--monotonic", "-90", "--fork"])
        .arg(&path)
        .arg("spin")
        .env("GOTRACEBACK", "all")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run unshare (util-linux)");
    let mut line = String::new();
    let ready = std::io::BufRead::read_line(
        &mut std::io::BufReader::new(unshare.stdout.take().expect("stdout")),
        &mut line,
    );
    if ready.is_err() || line.trim() != "ready" {
        let _ = unshare.kill();
        let out = unshare.wait_with_output().expect("unshare");
        panic!(
            "the fixture did not start in a time namespace: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let pid: i32 = std::fs::read_to_string(&children)
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .expect("the fixture under unshare");
    let offsets = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    assert!(offsets.contains("-90"), "{offsets}");
    let out = run_goat(&["stacks", &pid.to_string()]);
    let goat_text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGQUIT)
        .expect("SIGQUIT");
    let out = unshare.wait_with_output().expect("unshare");
    let runtime_text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_same_dump("go1.27-exe in a time namespace", &goat_text, &runtime_text);
}

#[test]
fn stacks_match_the_runtime_traceback_for_every_go_release() {
    let all = flavours();
    // `noopt` holds only the `vars` fixture.
    for f in all.iter().filter(|f| !f.ends_with("-noopt")) {
        compare_with_runtime(f);
    }
    let releases = [
        "go1.19", "go1.21", "go1.22", "go1.23", "go1.24", "go1.25", "go1.26", "go1.27",
    ];
    for v in releases {
        for mode in ["exe", "pie", "nodwarf", "stripped"] {
            let f = format!("{v}-{mode}");
            assert!(all.contains(&f), "fixture flavour {f} was not built");
        }
    }
}

/// Go callbacks made on threads C created (pthread_create): the runtime's
/// traceback goes through runtime.cgocallback, which switches stacks, on to
/// runtime.goexit; goat must too, byte for byte, on every release.
#[test]
fn cgo_callback_goroutines_match_the_runtime() {
    common::build_fixtures();
    for release in ["go1.19", "go1.21", "go1.24", "go1.27"] {
        let flavour = format!("{release}-exe");
        let (goat_text, runtime_text) = goat_then_runtime(&flavour, "cgocb");
        let (ours, theirs) = (
            traceback::parse(&goat_text),
            traceback::parse(&runtime_text),
        );
        let in_callback = |b: &&Block| b.frames.iter().any(|f| f.0 == "main.inCallback");
        let callbacks: Vec<&Block> = theirs.values().filter(in_callback).collect();
        assert_eq!(
            callbacks.len(),
            2,
            "{flavour}: two callbacks in\n{runtime_text}"
        );
        for want in callbacks {
            let ctx = format!("{flavour}: goroutine {}\n--- goat:\n{goat_text}", want.id);
            let got = ours
                .get(&want.id)
                .unwrap_or_else(|| panic!("missing: {ctx}"));
            assert_eq!(
                want.frames.last().map(|f| f.0.as_str()),
                Some("runtime.goexit"),
                "{ctx}"
            );
            assert_eq!(got.bracket, want.bracket, "{ctx}");
            assert_eq!(got.frames, want.frames, "{ctx}");
        }
    }
}

#[test]
fn json_has_every_goroutine_with_frames() {
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let out = run_goat(&["stacks", "--json", &fx.pid().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let gs = v["goroutines"].as_array().expect("goroutines array");
    // One goroutine per line, between the head and the closing `]}`.
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), gs.len() + 2, "{text}");
    for (line, g) in lines[1..lines.len() - 1].iter().zip(gs) {
        let one: serde_json::Value =
            serde_json::from_str(line.trim_end_matches(',')).expect("a goroutine per line");
        assert_eq!(&one, g);
    }
    let recv = gs
        .iter()
        .find(|g| {
            g["frames"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["function"] == "main.chanReceive"))
        })
        .expect("the chanReceive goroutine");
    assert_eq!(recv["status"], "waiting");
    assert_eq!(recv["wait_reason"], "chan receive");
    assert_eq!(recv["created_by"]["function"], "main.main");
    assert_eq!(recv["created_by"]["goroutine"], 1);
    assert!(recv["frames"][0]["pc"]
        .as_str()
        .is_some_and(|pc| pc.starts_with("0x")));
    assert_untouched(fx.pid());
}

#[test]
fn group_collapses_identical_stacks() {
    let fx = Fixture::start("go1.21-exe", "states", &[]);
    let out = run_goat(&["stacks", "--group", &fx.pid().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("main.chanReceive"), "{text}");
    assert!(
        !text.contains("fp=0x"),
        "grouped view shows no frame addresses:\n{text}"
    );
    assert_untouched(fx.pid());
}

/// Arguments under inlined frames, with their `?` marks, as the runtime
/// prints them: Go 1.19 takes liveness at the inlined call site, so
/// `outer3`'s first argument is `0xffffffffffffffff?` there (goat printed
/// it without the mark, as for 1.21+, where the frame's pc decides).
#[test]
fn arguments_under_inlined_calls_are_marked_as_the_runtime_marks_them() {
    common::build_fixtures();
    for release in ["go1.19", "go1.21", "go1.24", "go1.27"] {
        let flavour = format!("{release}-exe");
        let (goat_text, runtime_text) = goat_then_runtime(&flavour, "argslive");
        // The call lines, arguments included, of the frames that matter.
        let calls = |text: &str| -> Vec<String> {
            let mut v: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("main.outer") || l.starts_with("main.helper"))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let (ours, theirs) = (calls(&goat_text), calls(&runtime_text));
        assert_eq!(theirs.len(), 8, "{flavour}:\n{runtime_text}");
        assert_eq!(ours, theirs, "{flavour}:\n--- goat:\n{goat_text}");
        if release == "go1.19" {
            assert!(
                theirs
                    .iter()
                    .any(|l| l.starts_with("main.outer3(0xffffffffffffffff?,")),
                "{flavour}: the fixture no longer shows the rule:\n{runtime_text}"
            );
        }
    }
}

/// `goat stacks` of fixture `name` built as `flavour`, then the runtime's
/// own dump of the same process.
fn goat_then_runtime(flavour: &str, name: &str) -> (String, String) {
    let fx = Fixture::start(flavour, name, &[]);
    let pid = fx.pid().to_string();
    let out = run_goat(&["stacks", &pid]);
    assert!(
        out.status.success(),
        "{flavour}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(fx.pid());
    let goat_text = String::from_utf8_lossy(&out.stdout).into_owned();
    (goat_text, fx.sigquit_dump())
}
