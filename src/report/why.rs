//! `goat why`'s text: a summary line, the findings, then each blocked
//! goroutine with what it waits on and who may release it. Written as it
//! is formatted: the entries of 100k goroutines are tens of megabytes.

use std::io::{self, Write};

use crate::why::{GoroutineWhy, WhyReport};

/// The whole report as text. `of`: "pid 1234" or "core FILE".
pub fn why_text(r: &WhyReport, of: &str) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_why_text(r, of, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`why_text`], written to `out`.
pub fn write_why_text(r: &WhyReport, of: &str, out: &mut dyn Write) -> io::Result<()> {
    let blocked = || r.goroutines.iter().filter(|g| g.waits_on.kind != "none");
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
    writeln!(
        out,
        "goat why: {of} ({}): {} goroutines, {} waiting, {never}, {cycles}",
        r.go_version,
        r.goroutines.len(),
        blocked().count(),
    )?;
    if let Some(why) = &r.never_wakes_unknown {
        writeln!(out, "never-wakes not decided: {why}")?;
    }
    if r.stack_scan.conservative_frames > 0 || r.stack_scan.incomplete > 0 {
        writeln!(
            out,
            "note: {} stack frames scanned word by word ({} stacks incomplete): this errs toward \"may wake\"",
            r.stack_scan.conservative_frames, r.stack_scan.incomplete
        )?;
    }
    out.write_all(b"\n")?;
    if r.findings.is_empty() {
        out.write_all(b"No goroutine is stuck on another.\n")?;
    } else {
        out.write_all(b"Findings:\n")?;
        for (i, f) in r.findings.iter().enumerate() {
            writeln!(out, "{:>3}. {}", i + 1, f.text)?;
        }
    }
    let mut first = true;
    for g in blocked() {
        if first {
            out.write_all(b"\nWaiting goroutines:\n")?;
            first = false;
        }
        goroutine(out, g)?;
    }
    Ok(())
}

/// One goroutine's entry, as the report lists it.
pub fn why_goroutine_text(g: &GoroutineWhy) -> String {
    let mut out = Vec::new();
    let _ = goroutine(&mut out, g);
    String::from_utf8_lossy(&out).into_owned()
}

fn goroutine(out: &mut dyn Write, g: &GoroutineWhy) -> io::Result<()> {
    write!(out, "goroutine {} [{}", g.id, g.status)?;
    if let Some(m) = g.wait_minutes.filter(|m| *m > 0) {
        write!(out, ", {m} minutes")?;
    }
    if g.never_wakes {
        out.write_all(b", never wakes")?;
    }
    out.write_all(b"]\n")?;
    if let Some(at) = &g.location {
        writeln!(out, "    at {at}")?;
    }
    let w = &g.waits_on;
    write!(out, "    waits on {}", w.kind)?;
    if let Some(a) = &w.addr {
        write!(out, " {a}")?;
    }
    if let Some(n) = &w.name {
        write!(out, " {n}")?;
    }
    if let Some(d) = &w.detail {
        write!(out, ": {d}")?;
    }
    out.write_all(b"\n")?;
    if let Some((first, rest)) = g.may_release.split_first() {
        write!(out, "    may be released by {first}")?;
        for id in rest {
            write!(out, ", {id}")?;
        }
        out.write_all(b"\n")?;
    }
    if let Some(c) = &g.created_by {
        writeln!(out, "    created by {c}")?;
    }
    Ok(())
}
