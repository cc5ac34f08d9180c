//! The guardian process on its own (the end-to-end kill -9 of a debugging
//! session is in tests/exec.rs): told an int3 is armed, it restores the
//! original byte when the pipe closes without a goodbye, and leaves the
//! target running untraced; after a goodbye it touches nothing. And goat
//! SIGKILLed at a breakpoint hit leaves the program running, intact.
//! (Killed while armed and waiting: tests/exec.rs. Killed while busy with
//! a hot conditional breakpoint: a trap in flight can still reach the
//! program, see README; measured by hand, not tested.)

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Stdio;

use common::{assert_untouched, goat, text_segment, Fixture};
use object::{Object, ObjectSegment, ObjectSymbol};

/// The run-time address of `runtime.fatalpanic`: a function a healthy program
/// never calls, so an int3 there is never executed.
fn never_called(fx: &Fixture) -> u64 {
    let data = std::fs::read(&fx.path).expect("read fixture");
    let file = object::File::parse(&*data).expect("parse fixture");
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok("runtime.fatalpanic"))
        .expect("runtime.fatalpanic")
        .address();
    // PIE: the first mapping is where the lowest segment was loaded.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", fx.pid())).expect("maps");
    let exe = fx.path.canonicalize().expect("canonical");
    let first = maps
        .lines()
        .find(|l| l.ends_with(exe.to_str().expect("utf-8 path")))
        .expect("executable mapping");
    let start = u64::from_str_radix(first.split('-').next().expect("start"), 16).expect("hex");
    let link_base = file
        .segments()
        .map(|s| s.address() & !0xfff)
        .min()
        .expect("segments");
    sym - link_base + start
}

fn mem(pid: i32) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .expect("open mem")
}

fn byte_at(pid: i32, addr: u64) -> u8 {
    let mut b = [0u8];
    mem(pid).read_exact_at(&mut b, addr).expect("read byte");
    b[0]
}

/// Arms an int3 at a never-called function, tells a guardian, then ends the
/// conversation with `last` (None: the pipe just closes, as when goat dies).
fn run_guardian(flavour: &str, last: Option<&str>) -> (Fixture, u64, u8, String) {
    let fx = Fixture::start(flavour, "states", &[]);
    let pid = fx.pid();
    let addr = never_called(&fx);
    let orig = byte_at(pid, addr);
    assert_ne!(orig, 0xcc);
    mem(pid).write_all_at(&[0xcc], addr).expect("write int3");
    let mut g = goat()
        .args(["guardian", &pid.to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn guardian");
    let mut pipe = g.stdin.take().expect("stdin");
    writeln!(pipe, "arm 1000:90 {addr:x}:{orig:02x}").expect("arm");
    if let Some(line) = last {
        writeln!(pipe, "{line}").expect("last line");
    }
    drop(pipe);
    let out = g.wait_with_output().expect("guardian exit");
    assert!(out.status.success(), "guardian failed: {out:?}");
    (
        fx,
        addr,
        orig,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn restores_the_bytes_when_goat_dies() {
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let (fx, addr, orig, stderr) = run_guardian(flavour, None);
        assert_eq!(
            byte_at(fx.pid(), addr),
            orig,
            "{flavour}: byte not restored"
        );
        assert!(
            stderr.contains("restored 1 byte(s)") && stderr.contains("runs on untraced"),
            "{flavour}: {stderr}"
        );
        assert_untouched(fx.pid());
    }
}

#[test]
fn touches_nothing_after_goodbye_or_disarm() {
    for last in ["bye", "disarm"] {
        let (fx, addr, orig, stderr) = run_guardian("go1.19-exe", Some(last));
        assert_eq!(byte_at(fx.pid(), addr), 0xcc, "after {last}: byte changed");
        assert_eq!(stderr, "", "after {last}");
        mem(fx.pid()).write_all_at(&[orig], addr).expect("restore");
        assert_untouched(fx.pid());
    }
}

/// `goat attach` of the ticker fixture with `script` typed in; `until` is
/// awaited on goat's stdout before goat is SIGKILLed. Returns goat's stderr
/// (where the guardian, which inherits it, reports).
fn kill_goat_during(fx: &Fixture, script: &str, until: &str, delay_ms: u64) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut g = goat()
        .args(["attach", &fx.pid().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("goat attach");
    let mut stdin = g.stdin.take().expect("stdin");
    stdin.write_all(script.as_bytes()).expect("script");
    let mut out = BufReader::new(g.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.contains(until) {
        let mut line = String::new();
        if out.read_line(&mut line).expect("goat stdout") == 0 {
            panic!("goat ended before {until:?}: {seen}");
        }
        seen.push_str(&line);
    }
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    g.kill().expect("kill -9 goat");
    let _ = g.wait();
    drop(stdin);
    // The guardian holds goat's stderr open until it is done.
    let mut err = String::new();
    let _ = g.stderr.take().expect("stderr").read_to_string(&mut err);
    err
}

/// The ticker checks its own arithmetic and exits 2 if disturbed; alive and
/// beating for a while after goat's death means it came through intact.
fn assert_lives_on(fx: &mut Fixture, text_before: &[u8], what: &str) {
    std::thread::sleep(std::time::Duration::from_millis(300));
    if let Ok(Some(status)) = fx.child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = fx.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("{what}: the target died ({status}): {err}");
    }
    assert_untouched(fx.pid());
    assert!(
        text_segment(fx) == text_before,
        "{what}: code differs from before the session"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        fx.child.try_wait().expect("wait").is_none(),
        "{what}: the target died"
    );
}

#[test]
fn kill_9_of_goat_with_breakpoints_leaves_the_target_running() {
    common::build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        // At the prompt after a hit: the int3s are already out of memory.
        let mut fx = Fixture::start(flavour, "ticker", &[]);
        let text = text_segment(&fx);
        kill_goat_during(&fx, "b main.hot\nc\n", "main.hot", 50);
        assert_lives_on(&mut fx, &text, &format!("{flavour}, at a hit"));
    }
}
