//! The `watched` fixture (watchpoints and `set`): started with its stderr
//! collected, the lines its source marks, and the flavours it is built as.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{build_fixtures, fixture_path, require_fixture, root, Fixture};

/// Every release, optimized and `-N -l`.
pub const FLAVOURS: &[&str] = &super::SESSION_FLAVOURS;

/// A running `watched` and the lines it has written on stderr.
pub struct Watched {
    pub fx: Fixture,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watched {
    /// Starts the fixture built as `flavour`; None (after saying why) when
    /// it is not built and the user asked to skip missing fixtures.
    pub fn start(flavour: &str) -> Option<Watched> {
        build_fixtures();
        if !require_fixture(&fixture_path(flavour, "watched")) {
            return None;
        }
        let mut fx = Fixture::start(flavour, "watched", &[]);
        let stderr = fx.child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Some(Watched { fx, lines })
    }

    pub fn pid(&self) -> i32 {
        self.fx.pid()
    }

    /// The first stderr line (from line `from` on) that `f` accepts,
    /// waiting up to 5 s.
    pub fn wait_line(&self, from: usize, f: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .skip(from)
                .find(|l| f(l))
            {
                return Some(l.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().expect("lines").len()
    }

    /// The id of the only goroutine that writes `counter` and `heap.field`.
    pub fn writer(&self) -> u64 {
        let l = self
            .wait_line(0, |l| l.starts_with("writer="))
            .expect("the fixture names its writer goroutine");
        l["writer=".len()..].parse().expect("writer goroutine id")
    }

    /// Whether the program still runs (did not die of a SIGTRAP).
    pub fn alive(&mut self) -> bool {
        matches!(self.fx.child.try_wait(), Ok(None))
    }
}

/// The fixture's line carrying `// L:name`.
pub fn line_of(name: &str) -> u32 {
    let src = std::fs::read_to_string(root().join("tests/fixtures/watched/main.go"))
        .expect("watched source");
    let marker = format!("// L:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no {marker} in main.go"))
}
