//! `--stats`' phase line: when each phase of an analysis began, in wall
//! and CPU time.

use std::time::{Duration, Instant};

/// The phases seen so far, each with when it began and goat's CPU time
/// then.
#[derive(Default)]
pub struct PhaseClock {
    phases: Vec<(&'static str, Instant, Duration)>,
}

impl PhaseClock {
    /// `name` begins now, unless it is the phase already under way.
    pub fn begin(&mut self, name: &'static str) {
        if self.phases.last().is_none_or(|(last, _, _)| *last != name) {
            self.phases.push((name, Instant::now(), cpu_time()));
        }
    }

    /// "phases (wall/CPU s): a 0.10/0.12; b 2.00/3.10", the last phase
    /// ending now. CPU time beside wall time: other work on the machine
    /// stretches the one, hardly the other.
    pub fn line(&self) -> String {
        let mut line = String::from("phases (wall/CPU s):");
        let now = (Instant::now(), cpu_time());
        for (i, (name, at, cpu)) in self.phases.iter().enumerate() {
            let (end, end_cpu) = self.phases.get(i + 1).map_or(now, |next| (next.1, next.2));
            line += &format!(
                " {name} {:.2}/{:.2};",
                end.saturating_duration_since(*at).as_secs_f64(),
                end_cpu.saturating_sub(*cpu).as_secs_f64()
            );
        }
        line.trim_end_matches(';').to_string()
    }
}

/// goat's CPU time so far, all threads.
fn cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map_or(Duration::ZERO, Duration::from)
}
