//! Time accounting for `--stats`, and the test hooks that hold a target
//! stopped.

use std::time::Instant;

/// Wall-clock time per phase, for `--stats`.
pub struct Phases {
    start: Instant,
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

impl Phases {
    pub fn start() -> Phases {
        let now = Instant::now();
        Phases {
            start: now,
            last: now,
            marks: Vec::new(),
        }
    }

    pub fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.marks
            .push((phase, (now - self.last).as_secs_f64() * 1e3));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} ms in all (",
            (self.last - self.start).as_secs_f64() * 1e3
        )?;
        for (i, (phase, ms)) in self.marks.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{phase} {ms:.1}")?;
        }
        write!(f, ")")
    }
}

/// Keeps the target stopped a while when `GOAT_TEST_HOLD_STOPPED_MS` is set,
/// so tests can kill goat at the worst moment and check the target survives.
pub fn hold_for_tests() {
    if let Some(d) = hold_duration() {
        std::thread::sleep(d);
    }
}

/// Only in a build with the `test-hooks` feature: a user's goat never
/// holds a production process stopped because of its environment.
#[cfg(feature = "test-hooks")]
pub fn hold_duration() -> Option<std::time::Duration> {
    std::env::var("GOAT_TEST_HOLD_STOPPED_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
}

#[cfg(not(feature = "test-hooks"))]
pub fn hold_duration() -> Option<std::time::Duration> {
    None
}
