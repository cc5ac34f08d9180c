//! Time accounting for `--stats`, and the test hooks that hold a target
//! stopped.

use std::time::{Duration, Instant};

/// Wall-clock time per phase, for `--stats`: the library marks its phases
/// (load, prepare, stop, read, decode) and a caller may go on marking its
/// own (the CLI's "write") on the same clock.
#[derive(Clone, Debug)]
pub struct Phases {
    last: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Phases {
    /// A clock that starts now, with no phase yet.
    pub fn start() -> Phases {
        Phases {
            last: Instant::now(),
            marks: Vec::new(),
        }
    }

    /// A clock whose first phase, `phase`, already took `took` and ended
    /// now (the time an [`super::Inspector`] took to open).
    pub(super) fn after(phase: &'static str, took: Duration) -> Phases {
        Phases {
            last: Instant::now(),
            marks: vec![(phase, took)],
        }
    }

    /// Ends `phase`: the time since the previous mark (or the start).
    pub fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        self.marks
            .push((phase, now.saturating_duration_since(self.last)));
        self.last = now;
    }

    /// Each phase and how long it took, in order.
    pub fn marks(&self) -> &[(&'static str, Duration)] {
        &self.marks
    }

    /// All phases together.
    pub fn total(&self) -> Duration {
        self.marks.iter().map(|(_, d)| *d).sum()
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ms in all (", self.total().as_secs_f64() * 1e3)?;
        for (i, (phase, took)) in self.marks.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{phase} {:.1}", took.as_secs_f64() * 1e3)?;
        }
        write!(f, ")")
    }
}

/// Keeps the target stopped a while when `GOAT_TEST_HOLD_STOPPED_MS` is set,
/// so tests can kill goat at the worst moment and check the target survives.
pub(super) fn hold_for_tests() {
    if let Some(d) = hold_duration() {
        std::thread::sleep(d);
    }
}

/// Only in a build with the `test-hooks` feature: a user's goat never
/// holds a production process stopped because of its environment.
#[cfg(feature = "test-hooks")]
pub fn hold_duration() -> Option<Duration> {
    std::env::var("GOAT_TEST_HOLD_STOPPED_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

#[cfg(not(feature = "test-hooks"))]
pub fn hold_duration() -> Option<Duration> {
    None
}

/// Whether the test hook `var` is set; always false without the
/// `test-hooks` feature, so a user's environment cannot turn one on.
#[cfg(feature = "test-hooks")]
pub fn test_hook_set(var: &str) -> bool {
    std::env::var_os(var).is_some()
}

#[cfg(not(feature = "test-hooks"))]
pub fn test_hook_set(_: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_sums_the_phases() {
        let p = Phases {
            last: Instant::now(),
            marks: vec![
                ("load", Duration::from_micros(1500)),
                ("write", Duration::from_micros(300)),
            ],
        };
        assert_eq!(p.to_string(), "1.8 ms in all (load 1.5, write 0.3)");
    }
}
