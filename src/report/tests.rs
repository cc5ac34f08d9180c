//! Report tests: text against real SIGQUIT output (testdata/), JSON shape,
//! grouping.

use super::*;
use crate::goruntime::{CreatedBy, Elision, Frame, Goroutine, MachineRef};

const G127_PIE_BLOCKS: &str = include_str!("testdata/go1.27-pie.blocks.txt");
const G119_EXE_BLOCKS: &str = include_str!("testdata/go1.19-exe.blocks.txt");
const G127_PIE_ALL: &str = include_str!("testdata/go1.27-pie.txt");
const G119_EXE_ALL: &str = include_str!("testdata/go1.19-exe.txt");

const T27: &str = "/work/main/.toolchains/go1.27.pkg/go/src";
const T19: &str = "/usr/lib/go-1.19/src";
const MAIN: &str = "/work/main/tests/fixtures/states/main.go";

/// A physical frame (one argument per printed field, to read like the oracle).
#[allow(clippy::too_many_arguments)]
fn fr(
    function: &str,
    args: &str,
    file: &str,
    line: u32,
    offset: u64,
    fp: u64,
    sp: u64,
    pc: u64,
) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        pc,
        offset,
        inlined: false,
        fp,
        sp,
        args: args.into(),
    }
}

/// An inlined frame.
fn inl(function: &str, file: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        pc: 0,
        offset: 0,
        inlined: true,
        fp: 0,
        sp: 0,
        args: "...".into(),
    }
}

fn created(
    function: &str,
    file: &str,
    line: u32,
    offset: u64,
    parent: Option<u64>,
) -> Option<CreatedBy> {
    Some(CreatedBy {
        function: function.into(),
        file: file.into(),
        line,
        pc: 0,
        offset,
        goroutine: parent,
    })
}

fn goroutine(
    id: u64,
    status: &str,
    frames: Vec<Frame>,
    created_by: Option<CreatedBy>,
) -> Goroutine {
    Goroutine::waiting_for_tests(id, status, frames, created_by)
}

fn text(dump: &Dump) -> String {
    let mut out = Vec::new();
    write_text(&mut out, dump).unwrap();
    String::from_utf8(out).unwrap()
}

fn f27(rel: &str) -> String {
    format!("{T27}/{rel}")
}
fn f19(rel: &str) -> String {
    format!("{T19}/{rel}")
}

#[test]
#[rustfmt::skip] // one frame per line, like the oracle
fn text_matches_go127_oracle_blocks() {
    let goexit = |fp: u64| fr("runtime.goexit", "{}", &f27("runtime/asm_amd64.s"), 1264, 1, fp, fp - 8, 0x5595d9689241);
    let gopark = |args: &str, fp: u64| {
        fr("runtime.gopark", args, &f27("runtime/proc.go"), 474, 0xca, fp, fp - 0x20, 0x5595d9682f4a)
    };
    let mut g29 = goroutine(
        29,
        "syscall",
        vec![
            fr("syscall.Syscall", "0x0, 0x4, 0x246a7b555fb7, 0x1", &f27("syscall/syscall_linux.go"), 74, 0x25, 0x246a7b555f50, 0x246a7b555ef0, 0x5595d969de25),
            fr("syscall.read", "0x5595d9888580?, {0x246a7b555fb7?, 0x0?, 0x0?}", &f27("syscall/zsyscall_linux_amd64.go"), 736, 0x38, 0x246a7b555f90, 0x246a7b555f50, 0x5595d969c998),
            inl("syscall.Read", &f27("syscall/syscall_unix.go"), 183),
            fr("main.blockingRead", "0x4", MAIN, 66, 0x45, 0x246a7b555fc8, 0x246a7b555f90, 0x5595d96eab05),
            fr("main.main.gowrap4", "", MAIN, 126, 0x17, 0x246a7b555fe0, 0x246a7b555fc8, 0x5595d96eb357),
            goexit(0x246a7b555fe8),
        ],
        created("main.main", MAIN, 126, 0x22f, Some(1)),
    );
    g29.status_code = 3;
    g29.wait_reason = None;
    g29.gp = 0x246a7b507860;
    g29.m = Some(MachineRef { id: 0, mp: 0x5595d98694c0, tid: 4242 });

    let mut g1 = goroutine(
        1,
        "chan receive",
        vec![
            gopark("0x5595d9862540?, 0x8?, 0x0?, 0x0?, 0x246a7b4b3dd0?", 0x246a7b4b3d90),
            fr("runtime.chanrecv", "0x246a7b5000e0, 0x0, 0x1", &f27("runtime/chan.go"), 667, 0x4ae, 0x246a7b4b3e08, 0x246a7b4b3d90, 0x5595d9616bee),
            fr("runtime.chanrecv1", "0x5595d985a9e8?, 0x246a7b504028?", &f27("runtime/chan.go"), 509, 0x12, 0x246a7b4b3e30, 0x246a7b4b3e08, 0x5595d9616732),
            fr("main.main", "", MAIN, 141, 0x49f, 0x246a7b4b3eb8, 0x246a7b4b3e30, 0x5595d96eb19f),
            fr("runtime.main", "", &f27("runtime/proc.go"), 302, 0x427, 0x246a7b4b3fe0, 0x246a7b4b3eb8, 0x5595d964d747),
            goexit(0x246a7b4b3fe8),
        ],
        None,
    );
    g1.gp = 0x246a7b4681e0;

    let mut g30 = goroutine(
        30,
        "chan receive",
        vec![
            gopark("0x0?, 0x0?, 0x0?, 0x0?, 0x0?", 0x246a7b556708),
            fr("runtime.chanrecv", "0x246a7b5000e0, 0x0, 0x1", &f27("runtime/chan.go"), 667, 0x4ae, 0x246a7b556780, 0x246a7b556708, 0x5595d9616bee),
            fr("runtime.chanrecv1", "0x5595d9888580?, 0xffffffffffffffff?", &f27("runtime/chan.go"), 509, 0x12, 0x246a7b5567a8, 0x246a7b556780, 0x5595d9616732),
            fr("main.lockedToThread", "0x246a7b5000e0", MAIN, 72, 0x38, 0x246a7b5567c8, 0x246a7b5567a8, 0x5595d96eab58),
            fr("main.main.gowrap5", "", MAIN, 127, 0x17, 0x246a7b5567e0, 0x246a7b5567c8, 0x5595d96eb317),
            goexit(0x246a7b5567e8),
        ],
        created("main.main", MAIN, 127, 0x276, Some(1)),
    );
    g30.gp = 0x246a7b507a40;
    g30.locked = true;

    let mut g32 = goroutine(
        32,
        "chan receive",
        vec![
            gopark("0x0?, 0x0?, 0x0?, 0x0?, 0x0?", 0x246a7b5576e8),
            fr("runtime.chanrecv", "0x246a7b5000e0, 0x246a7b5577a0, 0x1", &f27("runtime/chan.go"), 667, 0x4ae, 0x246a7b557760, 0x246a7b5576e8, 0x5595d9616bee),
            fr("runtime.chanrecv1", "0x5595d9888580?, 0xffffffffffffffff?", &f27("runtime/chan.go"), 509, 0x12, 0x246a7b557788, 0x246a7b557760, 0x5595d9616732),
            inl("main.recvInlined", MAIN, 86),
            fr("main.inlinedCaller", "0x246a7b5000e0", MAIN, 90, 0x3f, 0x246a7b5577c8, 0x246a7b557788, 0x5595d96eac5f),
            fr("main.main.gowrap7", "", MAIN, 129, 0x17, 0x246a7b5577e0, 0x246a7b5577c8, 0x5595d96eb297),
            goexit(0x246a7b5577e8),
        ],
        created("main.main", MAIN, 129, 0x305, Some(1)),
    );
    g32.gp = 0x246a7b55a000;

    let dump = Dump {
        go_version: "go1.27.0".into(),
        header_shows_gp: true,
        goroutines: vec![g29, g1, g30, g32],
    };
    assert_eq!(text(&dump), G127_PIE_BLOCKS);
}

#[test]
#[rustfmt::skip] // one frame per line, like the oracle
fn text_matches_go119_oracle_blocks() {
    let goexit = |fp: u64| fr("runtime.goexit", "", &f19("runtime/asm_amd64.s"), 1594, 1, fp, fp - 8, 0x4634e1);
    let g15 = {
        let mut g = goroutine(
            15,
            "syscall",
            vec![
                fr("syscall.Syscall", "0x0?, 0x0?, 0x0?, 0x0?", &f19("syscall/syscall_linux.go"), 68, 0x27, 0xc000038f48, 0xc000038ed8, 0x482707),
                fr("syscall.read", "0x0?, {0xc000038faf?, 0x0?, 0x0?}", &f19("syscall/zsyscall_linux_amd64.go"), 696, 0x45, 0xc000038f88, 0xc000038f48, 0x481265),
                inl("syscall.Read", &f19("syscall/syscall_unix.go"), 183),
                fr("main.blockingRead", "0x0?", MAIN, 66, 0x49, 0xc000038fc8, 0xc000038f88, 0x4c92c9),
                fr("main.main.func4", "", MAIN, 126, 0x26, 0xc000038fe0, 0xc000038fc8, 0x4c9b86),
                goexit(0xc000038fe8),
            ],
            created("main.main", MAIN, 126, 0x21f, None),
        );
        g.status_code = 3;
        // 1.19 has no " m=" in headers even when the goroutine has an M.
        g.m = Some(MachineRef { id: 0, mp: 0x5b0000, tid: 1 });
        g
    };
    let g1 = goroutine(
        1,
        "chan receive",
        vec![
            fr("runtime.gopark", "0xc0000660c0?, 0xc00004de70?, 0x85?, 0xe5?, 0x5b0b60?", &f19("runtime/proc.go"), 363, 0xd6, 0xc00004de40, 0xc00004de20, 0x437b96),
            fr("runtime.chanrecv", "0xc0000720c0, 0x0, 0x1", &f19("runtime/chan.go"), 583, 0x49b, 0xc00004ded0, 0xc00004de40, 0x40731b),
            fr("runtime.chanrecv1", "0x51afa8?, 0xc000014018?", &f19("runtime/chan.go"), 442, 0x18, 0xc00004def8, 0xc00004ded0, 0x406e58),
            fr("main.main", "", MAIN, 141, 0x459, 0xc00004df80, 0xc00004def8, 0x4c9939),
            fr("runtime.main", "", &f19("runtime/proc.go"), 250, 0x212, 0xc00004dfe0, 0xc00004df80, 0x4377d2),
            goexit(0xc00004dfe8),
        ],
        None,
    );
    let g2 = goroutine(
        2,
        "force gc (idle)",
        vec![
            fr("runtime.gopark", "0x0?, 0x0?, 0x0?, 0x0?, 0x0?", &f19("runtime/proc.go"), 363, 0xd6, 0xc00003afb0, 0xc00003af90, 0x437b96),
            inl("runtime.goparkunlock", &f19("runtime/proc.go"), 369),
            fr("runtime.forcegchelper", "", &f19("runtime/proc.go"), 302, 0xad, 0xc00003afe0, 0xc00003afb0, 0x437a2d),
            goexit(0xc00003afe8),
        ],
        created("runtime.init.6", &f19("runtime/proc.go"), 290, 0x25, None),
    );
    let dump = Dump { go_version: "go1.19.8".into(), header_shows_gp: false, goroutines: vec![g15, g1, g2] };
    assert_eq!(text(&dump), G119_EXE_BLOCKS);
}

/// Reads the runtime's layout back into a `Dump` (test only), so that whole
/// oracle files can be compared after a round trip through `write_text`.
fn parse_oracle(s: &str, go_version: &str, header_shows_gp: bool) -> Dump {
    let mut goroutines = Vec::new();
    for block in s.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let header = lines.next().unwrap();
        let rest = header.strip_prefix("goroutine ").unwrap();
        let (before, bracket) = rest.split_once(" [").unwrap();
        let mut words = before.split(' ');
        let id: u64 = words.next().unwrap().parse().unwrap();
        let mut gp = 0;
        let mut m = None;
        for w in words {
            if let Some(v) = w.strip_prefix("gp=0x") {
                gp = u64::from_str_radix(v, 16).unwrap();
            } else if let Some(v) = w.strip_prefix("m=") {
                if v != "nil" {
                    m = Some(MachineRef {
                        id: v.parse().unwrap(),
                        mp: 0,
                        tid: 0,
                    });
                }
            } else if let Some(v) = w.strip_prefix("mp=0x") {
                m.as_mut().unwrap().mp = u64::from_str_radix(v, 16).unwrap();
            }
        }
        let inner = bracket.strip_suffix("]:").unwrap();
        let mut status = inner.to_string();
        let mut locked = false;
        if let Some(s) = inner.strip_suffix(", locked to thread") {
            status = s.to_string();
            locked = true;
        }
        let mut g = goroutine(id, &status, Vec::new(), None);
        // A status name is no wait reason (the runtime's own names).
        let names = ["idle", "runnable", "running", "syscall", "waiting"];
        if let Some(code) = names.iter().position(|n| *n == status) {
            g.status_code = code as u32;
            g.wait_reason = None;
        }
        g.gp = gp;
        g.m = m;
        g.locked = locked;
        let all: Vec<&str> = lines.collect();
        let mut i = 0;
        while i + 1 < all.len() {
            let (call, loc) = (all[i], all[i + 1].strip_prefix('\t').unwrap());
            i += 2;
            let (file, after) = loc.rsplit_once(':').unwrap();
            let mut parts = after.split(' ');
            let line: u32 = parts.next().unwrap().parse().unwrap();
            let mut offset = 0;
            let (mut fp, mut sp, mut pc) = (0, 0, 0);
            for p in parts {
                let hex = |v: &str| u64::from_str_radix(v, 16).unwrap();
                if let Some(v) = p.strip_prefix("+0x") {
                    offset = hex(v);
                } else if let Some(v) = p.strip_prefix("fp=0x") {
                    fp = hex(v);
                } else if let Some(v) = p.strip_prefix("sp=0x") {
                    sp = hex(v);
                } else if let Some(v) = p.strip_prefix("pc=0x") {
                    pc = hex(v);
                }
            }
            if let Some(cb) = call.strip_prefix("created by ") {
                let (function, parent) = match cb.split_once(" in goroutine ") {
                    Some((f, p)) => (f, Some(p.parse().unwrap())),
                    None => (cb, None),
                };
                g.created_by = created(function, file, line, offset, parent);
                continue;
            }
            let open = call.rfind('(').unwrap();
            let (function, args) = (&call[..open], &call[open + 1..call.len() - 1]);
            if fp == 0 {
                assert_eq!(args, "...");
                g.frames.push(inl(function, file, line));
            } else {
                g.frames
                    .push(fr(function, args, file, line, offset, fp, sp, pc));
            }
        }
        goroutines.push(g);
    }
    Dump {
        go_version: go_version.into(),
        header_shows_gp,
        goroutines,
    }
}

#[test]
fn text_round_trips_whole_oracles() {
    for (oracle, version, gp) in [
        (G127_PIE_ALL, "go1.27.0", true),
        (G119_EXE_ALL, "go1.19.8", false),
    ] {
        let dump = parse_oracle(oracle, version, gp);
        assert!(dump.goroutines.len() >= 15, "{version}");
        assert_eq!(text(&dump), oracle, "{version}");
    }
}

fn deep(n: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| {
            fr(
                &format!("main.f{i}"),
                "",
                MAIN,
                10 + i as u32,
                0x10,
                0x1000,
                0xff8,
                0x401000,
            )
        })
        .collect()
}

#[test]
fn elision_wording_per_release() {
    let mut g = goroutine(7, "select", deep(3), None);
    g.elided = Some(Elision {
        at: 2,
        count: Some(12),
    });
    let dump = Dump {
        go_version: "go1.21.13".into(),
        header_shows_gp: false,
        goroutines: vec![g.clone()],
    };
    let t = text(&dump);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[5], "...12 frames elided...");
    assert_eq!(lines[6], "main.f2()");

    g.elided = Some(Elision { at: 3, count: None });
    let dump = Dump {
        go_version: "go1.19.8".into(),
        header_shows_gp: false,
        goroutines: vec![g],
    };
    let t = text(&dump);
    assert!(
        t.ends_with("+0x10 fp=0x1000 sp=0xff8 pc=0x401000\n...additional frames elided...\n\n"),
        "{t}"
    );
}

#[test]
fn header_minutes_locked_scan_and_m() {
    let mut g = goroutine(42, "chan receive", deep(1), None);
    g.wait_minutes = Some(17);
    g.locked = true;
    let mut dump = Dump {
        go_version: "go1.21.0".into(),
        header_shows_gp: false,
        goroutines: vec![g],
    };
    assert!(text(&dump).starts_with("goroutine 42 [chan receive, 17 minutes, locked to thread]:\n"));

    let g = &mut dump.goroutines[0];
    g.scan = true;
    g.gp = 0xc000007860;
    g.m = Some(MachineRef {
        id: 3,
        mp: 0xc000100008,
        tid: 99,
    });
    dump.header_shows_gp = true;
    assert!(text(&dump)
        .starts_with("goroutine 42 gp=0xc000007860 m=3 mp=0xc000100008 [chan receive (scan), 17 minutes, locked to thread]:\n"));
}

#[test]
fn header_synctest_per_release() {
    let mut g = goroutine(9, "sleep", Vec::new(), None);
    g.synctest_group = Some(5);
    let mut dump = Dump {
        go_version: "go1.24.4".into(),
        header_shows_gp: false,
        goroutines: vec![g],
    };
    assert_eq!(text(&dump), "goroutine 9 [sleep, synctest group 5]:\n\n");
    dump.go_version = "go1.27.1".into();
    assert_eq!(
        text(&dump),
        "goroutine 9 [sleep (durable), synctest bubble 5]:\n\n"
    );
    dump.goroutines[0].status = "chan receive (durable)".into();
    dump.goroutines[0].wait_reason = Some("chan receive (durable)".into());
    assert_eq!(
        text(&dump),
        "goroutine 9 [chan receive (durable), synctest bubble 5]:\n\n"
    );
}

#[test]
fn unreadable_and_panic_name() {
    let mut g = goroutine(
        3,
        "running",
        vec![fr(
            "runtime.gopanic",
            "{0x1, 0x2}",
            "/x/panic.go",
            5,
            0,
            0x10,
            0x8,
            0x400000,
        )],
        created("main.main", MAIN, 3, 0, Some(1)),
    );
    g.status_code = 2;
    g.unreadable = Some("read fault at 0xc000100000 (8 bytes)".into());
    let dump = Dump {
        go_version: "go1.22.0".into(),
        header_shows_gp: false,
        goroutines: vec![g],
    };
    assert_eq!(
        text(&dump),
        "goroutine 3 [running]:\npanic({0x1, 0x2})\n\t/x/panic.go:5 fp=0x10 sp=0x8 pc=0x400000\n\
         \tgoroutine stack unreadable: read fault at 0xc000100000 (8 bytes)\n\
         created by main.main in goroutine 1\n\t/work/main/tests/fixtures/states/main.go:3\n\n"
    );
}

#[test]
fn json_parses_back_with_fields() {
    let dump = parse_oracle(G127_PIE_BLOCKS, "go1.27.0", true);
    let mut out = Vec::new();
    write_json(&mut out, &dump).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["go_version"], "go1.27.0");
    let gs = v["goroutines"].as_array().unwrap();
    assert_eq!(gs.len(), 4);
    let g29 = &gs[0];
    assert_eq!(g29["id"], 29);
    // Addresses as the text prints them.
    assert_eq!(g29["gp"], "0x246a7b507860");
    assert_eq!(g29["status"], "syscall");
    assert!(g29["wait_reason"].is_null());
    // A wait reason is not repeated as the status.
    assert_eq!(gs[1]["status"], "waiting");
    assert_eq!(gs[1]["wait_reason"], "chan receive");
    assert_eq!(g29["thread"], 0);
    assert_eq!(g29["locked"], false);
    // No ", N minutes" in the oracle: not known, so null, not 0.
    assert!(g29["wait_minutes"].is_null());
    assert!(g29.get("unreadable").is_none());
    let f0 = &g29["frames"][0];
    assert_eq!(f0["function"], "syscall.Syscall");
    assert_eq!(f0["line"], 74);
    assert_eq!(f0["pc"], "0x5595d969de25");
    // The argument words as the text shows them between the parentheses.
    let text_line = G127_PIE_BLOCKS.lines().nth(1).unwrap();
    let want = format!("syscall.Syscall({})", f0["args"].as_str().unwrap());
    assert_eq!(text_line, want);
    assert_eq!(f0["inlined"], false);
    assert_eq!(g29["frames"][2]["inlined"], true);
    assert_eq!(g29["created_by"]["function"], "main.main");
    assert_eq!(g29["created_by"]["goroutine"], 1);
    assert_eq!(g29["created_by"]["line"], 126);
    assert!(gs[1]["created_by"].is_null());
    assert!(gs[1]["thread"].is_null());
    assert_eq!(gs[2]["locked"], true);
    assert_eq!(gs[3]["frames"][3]["function"], "main.recvInlined");
}

#[test]
fn grouped_collapses_identical_stacks() {
    let stack = |id: u64, minutes: i64, pc: u64| {
        let mut g = goroutine(
            id,
            "chan receive",
            vec![
                fr(
                    "runtime.gopark",
                    &format!("{id:#x}?"),
                    "/go/proc.go",
                    363,
                    0xd6,
                    0x2000 + id,
                    0x1000,
                    pc,
                ),
                fr("main.worker", "", MAIN, 42, 0x20, 0x3000, 0x2000, pc + 1),
            ],
            created("main.main", MAIN, 100, 0x55, Some(1)),
        );
        g.wait_minutes = Some(minutes);
        g
    };
    let sleeper = |id| {
        let mut g = goroutine(
            id,
            "sleep",
            vec![fr(
                "time.Sleep",
                "0x3b9aca00",
                "/go/time.go",
                195,
                0x12,
                1,
                2,
                3,
            )],
            None,
        );
        g.wait_minutes = Some(0);
        g
    };
    let dump = Dump {
        go_version: "go1.21.0".into(),
        header_shows_gp: false,
        goroutines: vec![
            sleeper(2),
            stack(14, 2, 0x400),
            stack(12, 7, 0x500),
            sleeper(1),
            stack(15, 3, 0x600),
        ],
    };
    let mut out = Vec::new();
    write_grouped(&mut out, &dump).unwrap();
    let expected = "\
3 goroutines [chan receive, 2-7 minutes]: 12, 14, 15
runtime.gopark(...)
\t/go/proc.go:363
main.worker(...)
\t/work/main/tests/fixtures/states/main.go:42
created by main.main
\t/work/main/tests/fixtures/states/main.go:100

2 goroutines [sleep]: 1, 2
time.Sleep(...)
\t/go/time.go:195

";
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

/// `--json --group`: a group per line, biggest first, with its ids, the
/// runtime's status and reason apart, the known waits' range (null when
/// none is known) and the frames the members share.
#[test]
fn grouped_json_has_a_group_per_line() {
    let waiting = |id: u64, minutes: Option<i64>| {
        let mut g = goroutine(
            id,
            "chan receive",
            vec![fr("main.worker", "0x1", MAIN, 42, 0x20, 0x3000, 0x2000, id)],
            created("main.main", MAIN, 100, 0x55, Some(1)),
        );
        g.wait_minutes = minutes;
        g
    };
    let mut running = goroutine(7, "running", deep(2), None);
    running.status_code = 2;
    running.wait_reason = None;
    let dump = Dump {
        go_version: "go1.21.0".into(),
        header_shows_gp: false,
        goroutines: vec![
            waiting(5, None),
            running,
            waiting(3, Some(4)),
            waiting(9, Some(2)),
        ],
    };
    let mut out = Vec::new();
    write_grouped_json(&mut out, &dump).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], r#"{"go_version":"go1.21.0","groups":["#);
    assert_eq!(lines[3], "]}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let groups = v["groups"].as_array().unwrap();
    let first = &groups[0];
    assert_eq!(first["count"], 3);
    assert_eq!(first["ids"], serde_json::json!([3, 5, 9]));
    assert_eq!(first["status"], "waiting");
    assert_eq!(first["wait_reason"], "chan receive");
    assert_eq!(
        first["wait_minutes"],
        serde_json::json!({"min": 2, "max": 4})
    );
    assert_eq!(first["frames"][0]["function"], "main.worker");
    assert!(first["frames"][0].get("pc").is_none());
    assert!(first["created_by"].get("goroutine").is_none());
    assert_eq!(groups[1]["status"], "running");
    assert!(groups[1]["wait_reason"].is_null());
    assert!(groups[1]["wait_minutes"].is_null());
    // Each line between the brackets is a group of its own.
    let line: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(line["ids"], serde_json::json!([7]));
    let empty = Dump {
        goroutines: Vec::new(),
        ..dump
    };
    let mut out = Vec::new();
    write_grouped_json(&mut out, &empty).unwrap();
    assert_eq!(out, b"{\"go_version\":\"go1.21.0\",\"groups\":[]}\n");
}

#[test]
fn grouped_id_list_is_compact_and_capped() {
    assert_eq!(
        group::id_list_for_test(&[1, 2, 3, 5, 7, 8, 9, 10]),
        "1-3, 5, 7-10"
    );
    let many: Vec<u64> = (0..30).map(|i| i * 2).collect();
    let s = group::id_list_for_test(&many);
    assert!(s.ends_with(", 38, ... and 10 more"), "{s}");
}

#[test]
fn large_dumps_are_formatted_in_parallel_in_order() {
    // Repeat the oracle's goroutines past the parallel threshold, with
    // distinct ids so any reordering shows.
    let one = parse_oracle(G127_PIE_ALL, "go1.27.0", true);
    let mut dump = one.clone();
    dump.goroutines.clear();
    let mut expected = String::new();
    for round in 0..1500u64 {
        for g in &one.goroutines {
            let mut g = g.clone();
            g.id += round * 1000;
            let single = Dump {
                goroutines: vec![g.clone()],
                ..one.clone()
            };
            expected.push_str(&text(&single));
            dump.goroutines.push(g);
        }
    }
    assert!(dump.goroutines.len() > 20_000);
    assert_eq!(text(&dump), expected);
}

#[path = "stream_tests.rs"]
mod stream;
