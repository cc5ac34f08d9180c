//! The guardian process on its own (the end-to-end kill -9 of a debugging
//! session is in tests/exec.rs): told an int3 is armed, it restores the
//! original byte when the pipe closes without a goodbye, and leaves the
//! target running untraced; after a goodbye it touches nothing.

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Stdio;

use common::{assert_untouched, goat, Fixture};
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
