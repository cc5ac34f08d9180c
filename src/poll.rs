//! The one way goat waits for something it cannot be told about (a
//! process to exit, a tracer to let go, a lock to free): ask, sleep, ask
//! again, until an answer or a deadline. Blocking waits (`waitpid` without
//! `WNOHANG`, channel receives) do not belong here.

use std::time::{Duration, Instant};

/// Asks `probe` until it answers `Some`, at most for `timeout`: first at
/// once, then every `interval`, and once more at the deadline. `None` if
/// it never answered.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    poll_with_backoff(timeout, interval, interval, probe)
}

/// [`poll_with_backoff`] until an instant rather than for a duration, for a
/// caller whose several waits share one deadline.
pub fn poll_until_deadline<T>(
    deadline: Instant,
    first: Duration,
    max: Duration,
    probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    poll_with_backoff(timeout, first, max, probe)
}

/// [`poll_until`] with an interval that starts at `first` and doubles up to
/// `max`: quick answers are seen quickly, slow ones cost few probes.
pub fn poll_with_backoff<T>(
    timeout: Duration,
    first: Duration,
    max: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    // At least a microsecond, so a zero interval cannot spin.
    let mut nap = first.max(Duration::from_micros(1));
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        let left = match deadline {
            Some(d) => d.saturating_duration_since(now),
            // A timeout past the clock's range: wait as long as asked anyway.
            None => timeout.saturating_sub(now.duration_since(start)),
        };
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(nap.min(left));
        nap = nap.saturating_mul(2).min(max.max(nap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_soon_as_the_probe_does() {
        let mut n = 0;
        let got = poll_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn gives_up_at_the_deadline_after_a_last_probe() {
        let t = Instant::now();
        let mut probes = 0;
        let got: Option<()> =
            poll_until(Duration::from_millis(30), Duration::from_millis(10), || {
                probes += 1;
                None
            });
        assert_eq!(got, None);
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!((2..=5).contains(&probes), "{probes} probes");
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut probes = 0;
        let _: Option<()> = poll_with_backoff(
            Duration::from_millis(40),
            Duration::from_micros(10),
            Duration::from_millis(20),
            || {
                probes += 1;
                None
            },
        );
        // 10µs doubling reaches 20ms in ~11 probes, then the deadline.
        assert!(probes < 20, "{probes} probes");
    }
}
