//! The cap on how much a false breakpoint condition may slow the program.
//!
//! goat decides a condition with every thread of the program stopped, so
//! each hit whose condition is false costs the program a stop it gains
//! nothing from (stop every thread, read the goroutines, evaluate, resume:
//! about a millisecond). On a function called thousands of times a second
//! that is most of the program's time: a tester saw a service answer 80%
//! fewer requests, its p99 latency going from 4.66 ms to 66.9 ms, under a
//! session nobody was watching. So a `continue` measures the share of wall
//! time the program spends stopped for false hits, and stops when it is
//! over [`CAP`] for a [`WINDOW`], naming the breakpoint so the user can
//! refine its condition.
//!
//! Why 50% over 2 s: past half its time stopped the program runs at less
//! than half speed, and every request that passes the breakpoint waits on
//! the debugger: a slowdown worth a decision from the user, not a cost to
//! leave running. Two seconds is long enough for a burst (a batch of
//! requests, a GC cycle calling the function) not to trip it and for the
//! rate shown to rest on thousands of hits, and short enough that an
//! unattended session does not hold a service at half speed for long.
//! `continue` again measures anew: one who wants to wait anyway can.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Most share of wall time the program may spend stopped for false hits.
pub const CAP: f64 = 0.5;
/// How long the share is measured over before it is judged.
pub const WINDOW: Duration = Duration::from_secs(2);

/// The false hits of one window.
pub(crate) struct Slowdown {
    start: Instant,
    stopped: Duration,
    /// Per breakpoint: false hits and the time stopped for them.
    per_bp: BTreeMap<i64, (u64, Duration)>,
}

/// A window over the cap: the breakpoint that cost the most, its false
/// hits, the window's length and the share of it spent stopped for false
/// hits (of every breakpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub id: i64,
    pub hits: u64,
    pub wall: Duration,
    pub share: f64,
}

impl Verdict {
    pub fn hits_per_second(&self) -> f64 {
        self.hits as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

impl Slowdown {
    pub fn new(now: Instant) -> Slowdown {
        Slowdown {
            start: now,
            stopped: Duration::ZERO,
            per_bp: BTreeMap::new(),
        }
    }

    /// A hit of breakpoint `id` whose condition was false, decided at
    /// `now`: `cycle` is the time since its run was asked for, of which the
    /// program `ran` (the rest it was stopped: the tracer's stop and
    /// resume, goat reading the stop and evaluating). Returns a verdict
    /// when a window over the cap ends; a window under it starts anew.
    pub fn false_hit(
        &mut self,
        id: i64,
        cycle: Duration,
        ran: Duration,
        now: Instant,
    ) -> Option<Verdict> {
        let stopped = cycle.saturating_sub(ran);
        self.stopped += stopped;
        let entry = self.per_bp.entry(id).or_default();
        entry.0 += 1;
        entry.1 += stopped;
        let wall = now.saturating_duration_since(self.start);
        if wall < WINDOW {
            return None;
        }
        let share = self.stopped.as_secs_f64() / wall.as_secs_f64();
        let worst = self
            .per_bp
            .iter()
            .max_by_key(|(_, (_, t))| *t)
            .map(|(&id, &(hits, _))| (id, hits));
        *self = Slowdown::new(now);
        let (id, hits) = worst?;
        (share > CAP).then_some(Verdict {
            id,
            hits,
            wall,
            share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` false hits of `id`, each a cycle of `cycle` of which `ran` ran.
    fn hits(
        s: &mut Slowdown,
        t: &mut Instant,
        id: i64,
        n: u32,
        cycle: Duration,
        ran: Duration,
    ) -> Option<Verdict> {
        let mut last = None;
        for _ in 0..n {
            *t += cycle;
            last = s.false_hit(id, cycle, ran, *t);
            if last.is_some() {
                break;
            }
        }
        last
    }

    #[test]
    fn mostly_stopped_for_a_window_is_over_the_cap() {
        let t0 = Instant::now();
        let (mut s, mut t) = (Slowdown::new(t0), t0);
        // 1 ms cycles, 0.2 ms of each running: 80% stopped.
        let v = hits(&mut s, &mut t, 3, 5000, MS, MS / 5).expect("over the cap");
        assert_eq!((v.id, v.hits), (3, 2000));
        assert_eq!(v.wall, WINDOW);
        assert!((v.share - 0.8).abs() < 1e-6, "{v:?}");
        assert!((v.hits_per_second() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn a_window_under_the_cap_starts_a_new_one() {
        let t0 = Instant::now();
        let (mut s, mut t) = (Slowdown::new(t0), t0);
        // 40% stopped for 2 s: no verdict, and the next window starts fresh.
        assert_eq!(hits(&mut s, &mut t, 1, 2000, MS, MS * 3 / 5), None);
        assert_eq!(s.per_bp.len(), 0);
        // A rare hit after a long run: the time running counts too.
        let long = Duration::from_secs(5);
        t += long;
        assert_eq!(s.false_hit(1, long, long - MS, t), None);
    }

    #[test]
    fn names_the_breakpoint_that_cost_the_most() {
        let t0 = Instant::now();
        let (mut s, mut t) = (Slowdown::new(t0), t0);
        assert_eq!(hits(&mut s, &mut t, 1, 500, MS, Duration::ZERO), None);
        let v = hits(&mut s, &mut t, 2, 5000, MS * 2, Duration::ZERO).expect("verdict");
        assert_eq!((v.id, v.hits), (2, 750));
        assert!(v.share > 0.99, "{v:?}");
    }

    #[test]
    fn more_run_than_cycle_is_no_time_stopped() {
        let t0 = Instant::now();
        let mut s = Slowdown::new(t0);
        let v = s.false_hit(1, MS, 2 * MS, t0 + 3 * WINDOW);
        assert_eq!(v, None);
    }
}
