//! `goat why`'s text: a summary line, the findings, then each blocked
//! goroutine with what it waits on and who may release it. Written as it
//! is formatted: the entries of 100k goroutines are tens of megabytes.

use std::collections::HashMap;
use std::io::{self, Write};

use crate::ascii::Put;
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
    let mut entry = Entry::default();
    for g in blocked() {
        if first {
            out.write_all(b"\nWaiting goroutines:\n")?;
            first = false;
        }
        entry.write(out, g)?;
    }
    Ok(())
}

/// One goroutine's entry, as the report lists it.
pub fn why_goroutine_text(g: &GoroutineWhy) -> String {
    let mut out = Vec::new();
    let _ = Entry::default().write(&mut out, g);
    String::from_utf8_lossy(&out).into_owned()
}

/// Releaser lines kept, at most: goroutines that wait on the same objects
/// share one list (`GoroutineWhy::may_release`), and at a million
/// goroutines formatting its 100 ids again for each was most of the
/// report's time.
const MAX_LINES_KEPT: usize = 4096;

/// Writes entries one after another, each formatted in one buffer and
/// written at once, each shared list of releasers formatted once.
#[derive(Default)]
struct Entry {
    buf: Vec<u8>,
    /// "    may be released by ...\n" by the list's address (the lists
    /// are alive as long as the report this writes).
    lines: HashMap<(usize, usize), Vec<u8>>,
}

impl Entry {
    fn write(&mut self, out: &mut dyn Write, g: &GoroutineWhy) -> io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        b.put("goroutine ");
        b.dec(g.id);
        b.put(" [");
        b.put(&g.status);
        if let Some(m) = g.wait_minutes.filter(|m| *m > 0) {
            b.put(", ");
            b.idec(m);
            b.put(" minutes");
        }
        if g.never_wakes {
            b.put(", never wakes");
        }
        b.put("]\n");
        if let Some(at) = &g.location {
            b.put("    at ");
            b.put(at);
            b.push(b'\n');
        }
        let w = &g.waits_on;
        b.put("    waits on ");
        b.put(w.kind);
        for (sep, part) in [(" ", &w.addr), (" ", &w.name), (": ", &w.detail)] {
            if let Some(p) = part {
                b.put(sep);
                b.put(p);
            }
        }
        b.push(b'\n');
        if !g.may_release.is_empty() {
            let key = (g.may_release.as_ptr() as usize, g.may_release.len());
            match self.lines.get(&key) {
                Some(line) => b.extend_from_slice(line),
                None => {
                    let line = releasers_line(&g.may_release);
                    b.extend_from_slice(&line);
                    if self.lines.len() < MAX_LINES_KEPT {
                        self.lines.insert(key, line);
                    }
                }
            }
        }
        if let Some(c) = &g.created_by {
            b.put("    created by ");
            b.put(c);
            b.push(b'\n');
        }
        out.write_all(b)
    }
}

fn releasers_line(ids: &[u64]) -> Vec<u8> {
    let mut line = Vec::new();
    line.put("    may be released by ");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            line.put(", ");
        }
        line.dec(*id);
    }
    line.push(b'\n');
    line
}
