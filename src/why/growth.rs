//! `goat why --growth DURATION`: where goroutines pile up. Two reads of the
//! program some time apart (it runs in between); the creation sites (`go`
//! statements) whose goroutine count grew, with both counts and what the
//! later ones wait on. A leak shows as a site that only grows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::goruntime::Dump;

/// One creation site that grew.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SiteGrowth {
    /// "function file:line" of the `go` statement; "(none)" for goroutines
    /// the runtime started without one (main, the runtime's own).
    pub created_by: String,
    pub before: u64,
    pub after: u64,
    /// In the later read: wait reason (or status) and how many, most first.
    pub waiting: Vec<(String, u64)>,
}

/// Both reads' totals and the sites that grew, most growth first.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub interval_seconds: f64,
    pub before: u64,
    pub after: u64,
    pub sites: Vec<SiteGrowth>,
}

fn site(g: &crate::goruntime::Goroutine) -> String {
    g.created_by.as_ref().map_or_else(
        || "(none)".to_string(),
        |c| format!("{} {}:{}", c.function, c.file, c.line),
    )
}

/// The sites whose count grew from `before` to `after`.
pub fn growth(before: &Dump, after: &Dump, interval_seconds: f64) -> Growth {
    let mut counts: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for g in &before.goroutines {
        counts.entry(site(g)).or_default().0 += 1;
    }
    for g in &after.goroutines {
        let e = counts.entry(site(g)).or_default();
        e.1 += 1;
        *e.2.entry(g.status.clone()).or_default() += 1;
    }
    let mut sites: Vec<SiteGrowth> = counts
        .into_iter()
        .filter(|(_, (b, a, _))| a > b)
        .map(|(created_by, (before, after, reasons))| {
            let mut waiting: Vec<(String, u64)> = reasons.into_iter().collect();
            waiting.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            SiteGrowth {
                created_by,
                before,
                after,
                waiting,
            }
        })
        .collect();
    sites.sort_by(|x, y| {
        (y.after - y.before)
            .cmp(&(x.after - x.before))
            .then_with(|| x.created_by.cmp(&y.created_by))
    });
    Growth {
        interval_seconds,
        before: before.goroutines.len() as u64,
        after: after.goroutines.len() as u64,
        sites,
    }
}

/// The report as text.
pub fn growth_text(g: &Growth, of: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "goat why --growth: {of}, {:.0} s apart: {} → {} goroutines",
        g.interval_seconds, g.before, g.after
    );
    if g.sites.is_empty() {
        out.push_str("No creation site gained goroutines.\n");
        return out;
    }
    for s in &g.sites {
        let waiting: Vec<String> = s
            .waiting
            .iter()
            .take(4)
            .map(|(r, n)| format!("{r} ({n})"))
            .collect();
        let _ = writeln!(
            out,
            "+{:<6} {} → {}  created by {}\n        now: {}",
            s.after - s.before,
            s.before,
            s.after,
            s.created_by,
            waiting.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goruntime::{CreatedBy, Goroutine};
    use std::sync::Arc;

    fn g(id: u64, site: Option<(&str, u32)>, status: &str) -> Goroutine {
        let created_by = site.map(|(f, line)| CreatedBy {
            function: Arc::from(f),
            file: Arc::from("/x/main.go"),
            line,
            pc: 0,
            offset: 0,
            goroutine: None,
        });
        Goroutine::waiting_for_tests(id, status, Vec::new(), created_by)
    }

    fn dump(gs: Vec<Goroutine>) -> Dump {
        Dump {
            go_version: "go1.27.3".into(),
            header_shows_gp: true,
            goroutines: gs,
        }
    }

    #[test]
    fn sites_that_grew_most_first_with_what_they_wait_on() {
        let before = dump(vec![
            g(1, None, "chan receive"),
            g(2, Some(("main.leak", 10)), "chan receive"),
            g(3, Some(("main.steady", 20)), "IO wait"),
        ]);
        let after = dump(vec![
            g(1, None, "chan receive"),
            g(2, Some(("main.leak", 10)), "chan receive"),
            g(4, Some(("main.leak", 10)), "chan receive"),
            g(5, Some(("main.leak", 10)), "select"),
            g(6, Some(("main.small", 30)), "sleep"),
            g(3, Some(("main.steady", 20)), "IO wait"),
        ]);
        let r = growth(&before, &after, 30.0);
        assert_eq!((r.before, r.after), (3, 6));
        let names: Vec<&str> = r.sites.iter().map(|s| s.created_by.as_str()).collect();
        assert_eq!(
            names,
            ["main.leak /x/main.go:10", "main.small /x/main.go:30"]
        );
        assert_eq!(r.sites[0].before, 1);
        assert_eq!(r.sites[0].after, 3);
        assert_eq!(
            r.sites[0].waiting,
            vec![("chan receive".to_string(), 2), ("select".to_string(), 1)]
        );
        assert!(growth_text(&r, "pid 1").contains("+2"));
    }
}
