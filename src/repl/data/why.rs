//! `why [N]`: `goat why`'s analysis of the stopped program, from the
//! session's own stop (nothing more is stopped or copied): every finding,
//! or what goroutine N waits on, who may release it, and the findings
//! about it.

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::goruntime::{Briefs, GoroutineBrief};
use crate::session::Session;
use crate::why::{self, Snapshot, WhyReport};

/// `why [N]`
pub fn why(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let id = match args {
        [] => None,
        [n] => Some(
            n.parse::<u64>()
                .map_err(|_| anyhow!("why: {n:?} is not a goroutine id"))?,
        ),
        _ => return Err(anyhow!("usage: why [GOROUTINE]")),
    };
    s.decode_all()?;
    let briefs = Briefs::default();
    let goroutines: Vec<GoroutineBrief> = (0..s.goroutine_count())
        .map(|i| briefs.of_goroutine(s.goroutine_at(i)))
        .collect();
    let t = s.target()?;
    let report = why::analyze(&Snapshot {
        prog: s.prog,
        mem: t,
        shared: None,
        bias: s.bias,
        go_version: s.go_version(),
        goroutines: &goroutines,
        threads: t.threads(),
        fds: None,
        now_ns: s.now(),
    });
    match id {
        None => {
            let of = match s.pid() {
                Some(p) => format!("pid {p}"),
                None => "the core".to_string(),
            };
            write!(out, "{}", crate::report::why_text(&report, &of))?;
        }
        Some(id) => one(&report, id, out)?,
    }
    Ok(())
}

/// Goroutine `id`'s part of the report.
fn one(r: &WhyReport, id: u64, out: &mut dyn Write) -> Result<()> {
    let g = r
        .goroutines
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(|| anyhow!("why: no goroutine {id}"))?;
    write!(out, "{}", crate::report::why_goroutine_text(g))?;
    for f in r.findings.iter().filter(|f| f.goroutines.contains(&id)) {
        writeln!(out, "  finding: {}", f.text)?;
    }
    if g.waits_on.kind == "none" {
        writeln!(out, "  not waiting on another goroutine")?;
    }
    Ok(())
}
