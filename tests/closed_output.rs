//! Issue 33, item 6: `printf 'grs -n 2\nbt 3\n' | goat attach PID 2>&1 |
//! head -12` sometimes exited 101, a panic on EPIPE while saying
//! "detached". Output into a pipe whose reader is gone ends the session
//! quietly, detached, exit 0; the same for `goat stacks | head`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_untouched, build_fixtures, goat, Fixture};

/// Waits up to 30 s for `child` and returns its exit code (`None`: killed
/// by a signal, as a panic's abort or SIGPIPE would).
fn exit_code(mut child: Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().expect("wait for goat") {
            return st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("goat did not end after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `goat ARGS` with stdout and stderr into one pipe (`2>&1 |`), stdin
/// piped; returns the child and the pipe's reading end.
fn spawn_into_pipe(args: &[&str]) -> (Child, std::io::PipeReader) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let child = goat()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(writer.try_clone().expect("dup"))
        .stderr(writer)
        .spawn()
        .expect("run goat");
    (child, reader)
}

#[test]
fn a_session_whose_reader_is_gone_detaches_quietly() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let pid = fx.pid().to_string();
    // As `| head -12`: goat's first lines read, then the reader closes
    // while goat still has output to give. The commands after that are
    // sent only once it has closed, so that their output cannot all fit in
    // the pipe's buffer before: every later write meets EPIPE.
    for (first, lines) in [("", 1), ("grs -n 2\nbt 3\n", 12)] {
        let (mut child, reader) = spawn_into_pipe(&["attach", &pid]);
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(first.as_bytes()).expect("the script");
        let mut reader = BufReader::new(reader);
        let mut seen = String::new();
        for _ in 0..lines {
            let mut line = String::new();
            reader.read_line(&mut line).expect("goat's output");
            seen.push_str(&line);
        }
        drop(reader);
        // Fails only if goat is already gone, which the exit code tells.
        let _ = stdin.write_all("grs -n 2\nbt 3\n".repeat(20).as_bytes());
        drop(stdin);
        assert!(seen.starts_with("attached to "), "{seen}");
        assert_eq!(exit_code(child), Some(0), "after {lines} lines:\n{seen}");
        assert_untouched(fx.pid());
    }
}

#[test]
fn stacks_whose_reader_is_gone_ends_quietly() {
    build_fixtures();
    // 2,000 goroutines: far more text than a pipe's buffer holds.
    let fx = Fixture::start("go1.27-exe", "many", &["2000"]);
    let pid = fx.pid().to_string();
    let (child, reader) = spawn_into_pipe(&["stacks", &pid, "--mode", "stop"]);
    let mut first = [0u8; 1];
    BufReader::new(reader)
        .read_exact(&mut first)
        .expect("goat's output");
    assert_eq!(exit_code(child), Some(0));
    assert_untouched(fx.pid());
}
