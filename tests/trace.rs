//! Tracepoints on the `runctl` fixture, whose main goroutine calls
//! main.traced(i, "ab") for i = 0..4 in every round, then main.roundDone:
//! between two stops at roundDone, `trace main.traced` prints exactly five
//! calls with their arguments and five returns with their values, and the
//! session never stops for them; `-stack N` adds N frames. And goat killed
//! with SIGKILL while a tracepoint fires a thousand times a second leaves
//! the program running, untraced, with its code as the file has it.

mod common;

use common::runctl::{session, stops, FLAVOURS};
use common::{assert_untouched, build_fixtures, text_segment, Fixture};

/// The lines of `out` strictly between lines `from` and `to`.
fn between(out: &str, from: usize, to: usize) -> Vec<&str> {
    out.lines().skip(from + 1).take(to - from - 1).collect()
}

fn trace_prints_every_call_and_return(flavour: &str) {
    let fx = Fixture::start(flavour, "runctl", &[]);
    let before = text_segment(&fx);
    let (out, err, ctx) = session(
        flavour,
        fx.pid(),
        &[
            "b main.roundDone",
            "c",
            "trace main.traced",
            "c",
            "c",
            "clear 2",
            "trace st main.traced -stack 2",
            "c",
            "quit",
        ],
    );
    assert!(!err.contains("error"), "{ctx}");
    let s = stops(&out);
    // Only the roundDone breakpoint stopped the session.
    assert_eq!(s.len(), 4, "{ctx}");
    assert!(
        s.iter().all(|x| x.is(1, "main.roundDone", "round-done")),
        "{ctx}"
    );
    for round in 0..2 {
        let lines: Vec<&str> = between(&out, s[round].at, s[round + 1].at)
            .into_iter()
            .filter(|l| l.starts_with("> ") || l.starts_with(">> "))
            .collect();
        let want: Vec<String> = (0..5)
            .flat_map(|i| {
                [
                    format!("> goroutine(1): main.traced({i}, \"ab\")"),
                    format!(">> goroutine(1): main.traced => ({})", 2 * i + 2),
                ]
            })
            .collect();
        assert_eq!(lines, want, "round {round}: {ctx}");
    }
    // With a name and -stack 2: each call heads its two frames.
    let third = between(&out, s[2].at, s[3].at);
    let calls: Vec<usize> = third
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("> goroutine(1): [st] main.traced("))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(calls.len(), 5, "{ctx}");
    for k in calls {
        assert!(
            third[k + 1].starts_with("\t0  0x") && third[k + 1].ends_with(" in main.traced"),
            "{ctx}"
        );
        assert!(
            third[k + 3].starts_with("\t1  0x") && third[k + 3].ends_with(" in main.main"),
            "{ctx}"
        );
    }
    drop(out);
    assert_untouched(fx.pid());
    assert!(text_segment(&fx) == before, "the text changed: {ctx}");
}

#[test]
fn trace_prints_n_calls_of_a_function_called_n_times_without_stopping() {
    build_fixtures();
    for flavour in FLAVOURS {
        trace_prints_every_call_and_return(flavour);
    }
}

/// The bytes of `func` in the executable's file (non-PIE: run-time
/// addresses are the file's), and its address.
fn function_bytes(fx: &Fixture, func: &str) -> (u64, Vec<u8>) {
    let bin = goat::binary::Binary::open(&fx.path).expect("open the fixture");
    let tab = bin.pclntab().expect("pclntab");
    let f = tab.func_by_name(func).expect("function");
    let (entry, end) = (f.entry(), f.end().expect("end"));
    let len = usize::try_from(end - entry).unwrap();
    let bytes = bin.read_static(entry, len).expect("code in the file");
    (entry, bytes.to_vec())
}

fn read_mem(pid: i32, addr: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("/proc/PID/mem");
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr).expect("read the code");
    buf
}

/// goat SIGKILLed at 20 moments of a `trace` of main.bystander (called
/// every millisecond on its own goroutine): each time the program runs
/// on, untraced, with no int3 in the traced function.
#[test]
fn kill_9_of_goat_during_trace_leaves_the_program_running_without_int3() {
    use std::io::{BufRead, BufReader, Read, Write};
    build_fixtures();
    for trial in 0..20u64 {
        let flavour = ["go1.19-exe", "go1.27-exe"][(trial % 2) as usize];
        let mut fx = Fixture::start(flavour, "runctl", &[]);
        let before = text_segment(&fx);
        let (addr, file_code) = function_bytes(&fx, "main.bystander");
        let mut g = common::spawn_attach(fx.pid(), &[]);
        let mut stdin = g.stdin.take().expect("stdin");
        stdin
            .write_all(b"trace main.bystander\nc\n")
            .expect("script");
        let mut out = BufReader::new(g.stdout.take().expect("stdout"));
        let mut seen = 0;
        while seen < 3 {
            let mut line = String::new();
            if out.read_line(&mut line).expect("goat stdout") == 0 {
                panic!("trial {trial}: goat ended before tracing");
            }
            if line.starts_with("> goroutine(") {
                seen += 1;
            }
        }
        // Spread over a few cycles of stop, print and run.
        std::thread::sleep(std::time::Duration::from_millis(trial * 7 % 50));
        g.kill().expect("kill -9 goat");
        let _ = g.wait();
        drop(stdin);
        let mut err = String::new();
        let _ = g.stderr.take().expect("stderr").read_to_string(&mut err);
        let ctx = format!("{flavour}, trial {trial}: {err}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(Some(status)) = fx.child.try_wait() {
            let mut e = String::new();
            if let Some(mut s) = fx.child.stderr.take() {
                let _ = s.read_to_string(&mut e);
            }
            panic!("{ctx}: the program died ({status}): {e}");
        }
        assert_untouched(fx.pid());
        assert_eq!(
            read_mem(fx.pid(), addr, file_code.len()),
            file_code,
            "{ctx}: main.bystander differs from the file"
        );
        assert!(text_segment(&fx) == before, "{ctx}: the text changed");
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(fx.child.try_wait().expect("wait").is_none(), "{ctx}: died");
    }
}
