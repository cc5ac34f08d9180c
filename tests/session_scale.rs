//! A session on a service with many goroutines (the `service` fixture,
//! 20000 parked 10-40 frames deep): it reaches its prompt, and `goroutines`
//! lists one page (100 lines when stdout is not a terminal) then how many
//! more there are and how to see them, as do its filters and groups, with
//! counts that add up to the goroutines the banner counted. Timing is left
//! to scripts/bench; this checks the shape and the counts.

mod common;

use common::{assert_untouched, attach_with_stdin, build_fixtures, text, Fixture};

const PARKED: usize = 20000;
/// Lines listed when stdout is not a terminal (repl/grpage.rs).
const PAGE: usize = 100;

/// Goroutine ids of the `Goroutine N - ...` lines of `out` (a group's
/// lines start with a tab).
fn listed(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| {
            l.trim_start_matches('\t')
                .get(2..)?
                .strip_prefix("Goroutine ")
        })
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect()
}

/// The number in `[N goroutines]` (`[1 goroutine]`).
fn count_line(out: &str) -> usize {
    out.lines()
        .find_map(|l| {
            let n = l.strip_prefix('[')?;
            n.strip_suffix(" goroutines]")
                .or_else(|| n.strip_suffix(" goroutine]"))?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no [N goroutines] line in:\n{out}"))
}

/// The `(... N more WHAT: ...)` line's N, when there is one.
fn more(out: &str, what: &str) -> Option<usize> {
    out.lines().find_map(|l| {
        let rest = l.strip_prefix("(... ")?;
        let (n, tail) = rest.split_once(' ')?;
        tail.starts_with(&format!(
            "more {what}: goroutines -n N lists N, -all every one)"
        ))
        .then(|| n.parse().ok())?
    })
}

/// Runs one command in a session on `pid`; returns (stdout, the banner's
/// goroutine count).
fn run(pid: i32, cmd: &str) -> (String, usize) {
    let out = attach_with_stdin(pid, &[], &format!("{cmd}\n"));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{cmd}: {stdout}\n---\n{stderr}");
    assert!(!stderr.contains("error:"), "{cmd}: {stderr}");
    let total = stderr
        .split("): ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no goroutine count in the banner: {stderr}"));
    (stdout, total)
}

#[test]
fn goroutines_of_a_big_service_are_listed_a_page_at_a_time() {
    build_fixtures();
    let fx = Fixture::start("go1.24-exe", "service", &[&PARKED.to_string()]);
    let pid = fx.pid();

    // The plain list: one page, then the rest counted.
    let (out, total) = run(pid, "goroutines");
    assert!(total > PARKED, "{total} goroutines");
    let ids = listed(&out);
    assert_eq!(ids.len(), PAGE, "{out}");
    assert_eq!(more(&out, "goroutines"), Some(total - PAGE), "{out}");
    assert_eq!(count_line(&out), total, "{out}");
    // Each listed goroutine shows where it waits (its frames were decoded).
    assert!(
        out.lines()
            .filter(|l| l.contains(" - main.park (main.go:"))
            .count()
            > 20
    );

    // -n N and -all.
    let (out, _) = run(pid, "goroutines -n 7");
    assert_eq!(listed(&out).len(), 7, "{out}");
    assert_eq!(more(&out, "goroutines"), Some(total - 7), "{out}");
    let (out, _) = run(pid, "goroutines -all");
    let all = listed(&out);
    assert_eq!(all.len(), total, "-all");
    assert_eq!(more(&out, "goroutines"), None);
    assert_eq!(&all[..PAGE], &ids[..], "the page is the start of the list");

    // A filter on locations reads every stack; the page and count follow
    // what it kept: a fifth of the workers sleep in time.Sleep.
    let (out, _) = run(pid, "goroutines -with userloc time.Sleep");
    let kept = count_line(&out);
    assert!(
        (PARKED / 5..PARKED / 5 + 10).contains(&kept),
        "{kept}: {out}"
    );
    assert_eq!(listed(&out).len(), PAGE);
    assert_eq!(more(&out, "goroutines"), Some(kept - PAGE), "{out}");

    // -t: the stacks of the page only.
    let (out, _) = run(pid, "goroutines -t 2 -n 3");
    assert_eq!(listed(&out).len(), 3, "{out}");
    assert_eq!(out.matches("\t0  0x").count(), 3, "{out}");

    // -group userloc: a handful of groups whose totals add up.
    let (out, _) = run(pid, "goroutines -group userloc");
    let totals: Vec<usize> = out
        .lines()
        .filter_map(|l| l.strip_prefix("\tTotal: ")?.parse().ok())
        .collect();
    assert!(totals.len() >= 5 && totals.len() < PAGE, "{out}");
    assert_eq!(totals.iter().sum::<usize>(), total, "{out}");
    assert!(listed(&out).len() <= 5 * totals.len(), "{out}");

    // Bare -group (identical stacks): 5 waits x 31 depths and more, so
    // one page of groups, then the rest counted.
    let (out, _) = run(pid, "goroutines -group");
    let groups = out
        .lines()
        .filter(|l| l.contains(" goroutines [") || l.contains(" goroutine ["))
        .count();
    assert_eq!(groups, PAGE, "{out}");
    assert!(more(&out, "groups").is_some_and(|n| n > 0), "{out}");
    assert_untouched(pid);
}
