//! `goat why`'s text: a summary line, the findings, then each blocked
//! goroutine with what it waits on and who may release it.

use std::fmt::Write as _;

use crate::why::{GoroutineWhy, WhyReport};

/// The whole report as text. `of`: "pid 1234" or "core FILE".
pub fn why_text(r: &WhyReport, of: &str) -> String {
    let mut out = String::new();
    let blocked: Vec<&GoroutineWhy> = r
        .goroutines
        .iter()
        .filter(|g| g.waits_on.kind != "none")
        .collect();
    let never = r.goroutines.iter().filter(|g| g.never_wakes).count();
    let never = match &r.never_wakes_unknown {
        Some(_) => "never-wakes not decided".to_string(),
        None => format!("{never} can never wake"),
    };
    let cycles = match (&r.releasers_partial, r.cycles.len()) {
        (Some(_), 0) => "deadlocks not decided".to_string(),
        (_, 1) => "1 deadlock".to_string(),
        (_, n) => format!("{n} deadlocks"),
    };
    let _ = writeln!(
        out,
        "goat why: {of} ({}): {} goroutines, {} waiting, {never}, {cycles}",
        r.go_version,
        r.goroutines.len(),
        blocked.len(),
    );
    if let Some(why) = &r.never_wakes_unknown {
        let _ = writeln!(out, "never-wakes not decided: {why}");
    }
    if r.stack_scan.conservative_frames > 0 || r.stack_scan.incomplete > 0 {
        let _ = writeln!(
            out,
            "note: {} stack frames scanned word by word ({} stacks incomplete): this errs toward \"may wake\"",
            r.stack_scan.conservative_frames, r.stack_scan.incomplete
        );
    }
    out.push('\n');
    if r.findings.is_empty() {
        out.push_str("No goroutine is stuck on another.\n");
    } else {
        out.push_str("Findings:\n");
        for (i, f) in r.findings.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {}", i + 1, f.text);
        }
    }
    if !blocked.is_empty() {
        out.push_str("\nWaiting goroutines:\n");
        for g in blocked {
            goroutine(&mut out, g);
        }
    }
    out
}

/// One goroutine's entry, as the report lists it.
pub fn why_goroutine_text(g: &GoroutineWhy) -> String {
    let mut out = String::new();
    goroutine(&mut out, g);
    out
}

fn goroutine(out: &mut String, g: &GoroutineWhy) {
    let minutes = g
        .wait_minutes
        .filter(|m| *m > 0)
        .map(|m| format!(", {m} minutes"))
        .unwrap_or_default();
    let never = if g.never_wakes { ", never wakes" } else { "" };
    let _ = writeln!(out, "goroutine {} [{}{minutes}{never}]", g.id, g.status);
    if let Some(at) = &g.location {
        let _ = writeln!(out, "    at {at}");
    }
    let w = &g.waits_on;
    let mut on = w.kind.to_string();
    if let Some(a) = &w.addr {
        let _ = write!(on, " {a}");
    }
    if let Some(n) = &w.name {
        let _ = write!(on, " {n}");
    }
    if let Some(d) = &w.detail {
        let _ = write!(on, ": {d}");
    }
    let _ = writeln!(out, "    waits on {on}");
    if !g.may_release.is_empty() {
        let ids: Vec<String> = g.may_release.iter().map(u64::to_string).collect();
        let _ = writeln!(out, "    may be released by {}", ids.join(", "));
    }
    if let Some(c) = &g.created_by {
        let _ = writeln!(out, "    created by {c}");
    }
}
