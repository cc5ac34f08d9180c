//! The findings: one line each, the one that affects the most goroutines
//! first. Deadlock cycles, goroutines that can never wake (by creation
//! site), then goroutines waiting on the same object with who may release
//! them.

use std::collections::{BTreeMap, BTreeSet};

use super::describe::{op_word, Names};
use super::{Finding, GoroutineWhy};
use crate::goruntime::waits::{ChanOp, SyncKind, Waits, WaitsOn};

pub fn findings(
    gs: &[GoroutineWhy],
    cycles: &[Vec<u64>],
    waits: &Waits,
    names: &Names<'_>,
    releasers: &super::release::Releasers,
    never_unknown: bool,
    releasers_partial: bool,
) -> Vec<Finding> {
    let by_id: BTreeMap<u64, &GoroutineWhy> = gs.iter().map(|g| (g.id, g)).collect();
    let mut out: Vec<(usize, Finding)> = Vec::new();
    let mut explained: BTreeSet<u64> = BTreeSet::new();
    for c in cycles {
        out.push((0, cycle_finding(c, &by_id, waits)));
        explained.extend(c.iter().copied());
    }
    if !never_unknown {
        let mut by_site: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        for g in gs
            .iter()
            .filter(|g| g.never_wakes && !explained.contains(&g.id))
        {
            let what = never_what(waits.by_goroutine.get(&g.id));
            let site = g.created_by.as_deref().unwrap_or("?").to_string();
            by_site.entry((what, site)).or_default().push(g.id);
        }
        for ((what, site), ids) in by_site {
            explained.extend(ids.iter().copied());
            let text = format!(
                "{} can never wake: {what} that no goroutine able to run can reach (created by {site})",
                count(ids.len())
            );
            out.push((
                1,
                Finding {
                    text,
                    goroutines: ids,
                },
            ));
        }
    }
    // Goroutines waiting on the same object.
    let mut waiters_on: BTreeMap<u64, usize> = BTreeMap::new();
    for os in releasers.objects_of.values() {
        for o in os {
            *waiters_on.entry(*o).or_default() += 1;
        }
    }
    let mut by_object: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for g in gs
        .iter()
        .filter(|g| !explained.contains(&g.id) && !runtime_own(g))
    {
        let Some(w) = waits.by_goroutine.get(&g.id) else {
            continue;
        };
        // A select is grouped by its most shared case (main.gate), not by
        // the timer channel each has of its own.
        let shared = super::release::objects(w).into_iter().max_by_key(|o| {
            (
                waiters_on.get(o).copied().unwrap_or(0),
                std::cmp::Reverse(*o),
            )
        });
        if let Some(o) = shared {
            by_object.entry(o).or_default().push(g.id);
        }
    }
    for (object, ids) in by_object {
        let first = ids.first().and_then(|id| by_id.get(id));
        let Some(first) = first else { continue };
        let what = waited_object(first, object, names);
        let empty = BTreeSet::new();
        let may = releasers.by_object.get(&object).unwrap_or(&empty);
        let w = waits.by_goroutine.get(&first.id);
        let who = match (may.is_empty(), releasers_partial) {
            (true, true) => {
                "who may release it is not known (the heap could not be read)".to_string()
            }
            _ => releasers_text(may, w, object, &by_id, names),
        };
        let text = format!("{} {what}; {who}", waiting(ids.len()));
        out.push((
            2,
            Finding {
                text,
                goroutines: ids,
            },
        ));
    }
    // Most goroutines first; among equals, cycles, then never-wakes.
    out.sort_by(|(ka, a), (kb, b)| b.goroutines.len().cmp(&a.goroutines.len()).then(ka.cmp(kb)));
    out.into_iter().map(|(_, f)| f).collect()
}

/// A goroutine the runtime started for itself (signal handling, the
/// finalizer, GC workers): what it waits on is no finding of the program's.
fn runtime_own(g: &GoroutineWhy) -> bool {
    g.created_by
        .as_deref()
        .is_some_and(|c| c.starts_with("runtime.") || c.starts_with("os/signal."))
        && g.location
            .as_deref()
            .is_none_or(|l| l.starts_with("runtime.") || l.starts_with("os/signal."))
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 goroutine".into()
    } else {
        format!("{n} goroutines")
    }
}

fn waiting(n: usize) -> String {
    if n == 1 {
        "1 goroutine waits".into()
    } else {
        format!("{n} goroutines wait")
    }
}

/// "chan receive on channels", "sync.WaitGroup Wait", "select {}".
fn never_what(w: Option<&WaitsOn>) -> String {
    match w {
        Some(WaitsOn::Chan { chan: 0, op }) => format!("{} on a nil channel", op_word(*op)),
        Some(WaitsOn::Chan { op, .. }) => format!("blocked in chan {} on a channel", op_word(*op)),
        Some(WaitsOn::Select { cases }) if cases.is_empty() => "in select {}".into(),
        Some(WaitsOn::Select { .. }) => "blocked in a select on channels".into(),
        Some(WaitsOn::Sync { kind, .. }) => {
            format!(
                "blocked in {} on an object",
                super::describe::sync_detail(*kind)
            )
        }
        _ => "blocked on something".into(),
    }
}

/// "on sync.Mutex Lock 0xc000012345 (main.state.mu)" or "to receive from chan …".
fn waited_object(g: &GoroutineWhy, object: u64, names: &Names<'_>) -> String {
    let d = &g.waits_on;
    let name = names
        .name(object)
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    match d.kind {
        "chan" | "select" => format!(
            "on chan {:#x}{name} ({})",
            object,
            d.detail.as_deref().unwrap_or("")
        ),
        _ => format!(
            "on {} at {:#x}{name}",
            d.detail.as_deref().unwrap_or(d.kind),
            object
        ),
    }
}

fn releasers_text(
    releasers: &BTreeSet<u64>,
    w: Option<&WaitsOn>,
    object: u64,
    by_id: &BTreeMap<u64, &GoroutineWhy>,
    names: &Names<'_>,
) -> String {
    let cond = matches!(
        w,
        Some(WaitsOn::Sync {
            kind: SyncKind::Cond,
            ..
        })
    );
    let group = matches!(
        w,
        Some(WaitsOn::Sync {
            kind: SyncKind::WaitGroup,
            ..
        })
    );
    let lock = matches!(w, Some(WaitsOn::Sync { .. })) && !cond && !group;
    if releasers.is_empty() {
        let held = names.name(object);
        return match (lock, cond, held) {
            (_, true, Some(n)) => format!(
                "no goroutine that could signal it was found, but {n} reaches it: it may wake"
            ),
            (_, true, None) => "no goroutine that could signal it was found".into(),
            (true, _, _) => "no goroutine that could hold it was found".into(),
            (false, _, Some(n)) => format!(
                "no goroutine references it, but {n} does: it may wake if new code sends on it"
            ),
            (false, _, None) => "no goroutine references it".into(),
        };
    }
    let shown: Vec<String> = releasers
        .iter()
        .take(5)
        .map(|id| match by_id.get(id) {
            Some(g) => format!("{id} ({})", state(g)),
            None => id.to_string(),
        })
        .collect();
    let more = releasers.len().saturating_sub(shown.len());
    let list = if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    };
    let one = releasers.len() == 1;
    let noun = if one { "goroutine" } else { "goroutines" };
    let verb = match (lock, cond, group) {
        (true, _, _) => "may hold it (Go records no owner)",
        (_, true, _) => "can reach it to signal it",
        (_, _, true) => "can reach it to call Done",
        _ => "can reach it",
    };
    format!("{noun} {list} {verb}")
}

/// A releaser's own state: "IO wait: reading fd 5 a → b, 5 minutes".
fn state(g: &GoroutineWhy) -> String {
    let mut s = g.status.to_string();
    if let Some(d) = &g.waits_on.detail {
        if g.waits_on.kind != "none" {
            s.push_str(": ");
            s.push_str(d);
        }
    }
    if let Some(m) = g.wait_minutes.filter(|m| *m > 0) {
        s.push_str(&format!(", {m} minutes"));
    }
    s
}

/// "deadlock: goroutine 24 waits to send on chan 0x… that only 25 can
/// receive; goroutine 25 waits on sync.Mutex main.state.mu that 24 may hold".
fn cycle_finding(c: &[u64], by_id: &BTreeMap<u64, &GoroutineWhy>, waits: &Waits) -> Finding {
    let parts: Vec<String> = c
        .iter()
        .map(|id| {
            let Some(g) = by_id.get(id) else {
                return format!("goroutine {id}");
            };
            let who = g
                .may_release
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let d = &g.waits_on;
            let target = match (&d.name, &d.addr) {
                (Some(n), Some(a)) => format!("{n} ({a})"),
                (Some(n), None) => n.clone(),
                (None, Some(a)) => a.clone(),
                (None, None) => String::new(),
            };
            match waits.by_goroutine.get(id) {
                Some(WaitsOn::Chan { op, .. }) => match op {
                    ChanOp::Send => format!(
                        "goroutine {id} waits to send on chan {target} that only {who} can receive from"
                    ),
                    ChanOp::Recv => format!(
                        "goroutine {id} waits to receive from chan {target} that only {who} can send on"
                    ),
                },
                Some(WaitsOn::Select { .. }) => format!(
                    "goroutine {id} waits in a select ({}) that only {who} can complete",
                    d.detail.as_deref().unwrap_or("")
                ),
                Some(WaitsOn::Sync { kind, .. }) => format!(
                    "goroutine {id} waits on {} {target} that {who} may hold",
                    super::describe::sync_detail(*kind)
                ),
                _ => format!("goroutine {id} waits on {who}"),
            }
        })
        .collect();
    Finding {
        text: format!("deadlock: {}", parts.join("; ")),
        goroutines: c.to_vec(),
    }
}
