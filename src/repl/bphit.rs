//! What a hit of a user breakpoint does, as Delve decides it: its
//! condition first (a false one is no hit), then the hit is counted (per
//! goroutine and in total) and its hit-count condition checked; a
//! tracepoint prints the goroutine, the function and its arguments (and
//! `-stack N` frames) and the program goes on; `on` commands run at every
//! hit that counts.

use std::io::Write;

use anyhow::{anyhow, Result};

use super::bptable::UNRECOVERED_PANIC;
use super::cond;
use super::state::Session;

/// What the session makes of a hit.
pub(super) enum Judged {
    /// The condition is false: no hit.
    CondFalse,
    /// Counted, but the hit-count condition says go on.
    Skipped,
    /// Counted, and it stops (or traces).
    Hit,
}

/// Judges a hit of breakpoint `i` by the selected goroutine `goid`:
/// condition, count, hit-count condition. An error in the condition is
/// shown and the hit stops, as Delve does.
pub(super) fn judge(
    s: &mut Session,
    i: usize,
    goid: Option<u64>,
    out: &mut dyn Write,
) -> Result<Judged> {
    if let Some(text) = s.bps.list[i].cond.clone() {
        match cond::parse(&text).and_then(|c| cond::holds(s, &c)) {
            Ok(true) => {}
            Ok(false) => return Ok(Judged::CondFalse),
            Err(e) => {
                let id = s.bps.list[i].id;
                writeln!(out, "error evaluating breakpoint {id}'s condition: {e:#}")?;
            }
        }
    }
    let b = &mut s.bps.list[i];
    b.total = b.total.saturating_add(1);
    let mine = goid.map(|g| {
        let n = b.hits.entry(g).or_default();
        *n = n.saturating_add(1);
        *n
    });
    // Per goroutine when the hitting goroutine is known, as Delve.
    let held = match (b.hitcond, mine) {
        (None, _) => true,
        (Some(h), Some(n)) if h.per_g => h.holds(n),
        (Some(h), _) => h.holds(b.total),
    };
    Ok(if held { Judged::Hit } else { Judged::Skipped })
}

/// ` [NAME] (hits goroutine(G):N total:T)`, the note of a stop.
pub(super) fn stop_note(s: &Session, i: usize, goid: Option<u64>) -> String {
    let b = &s.bps.list[i];
    let name = b
        .name
        .as_ref()
        .map(|n| format!(" [{n}]"))
        .unwrap_or_default();
    let hits = match goid.and_then(|g| b.hits.get(&g).map(|n| (g, n))) {
        Some((g, n)) => format!("hits goroutine({g}):{n} total:{}", b.total),
        None => format!("hits total:{}", b.total),
    };
    format!("{name} ({hits})")
}

/// Delve's tracepoint line: `> goroutine(G): [NAME] FUNC(ARG, ...)`, the
/// arguments' values as `print` shows them, then `-stack N` frames.
pub(super) fn write_trace(
    s: &Session,
    i: usize,
    goid: Option<u64>,
    out: &mut dyn Write,
) -> Result<()> {
    let b = &s.bps.list[i];
    let g = s.current_g()?;
    let Some(f) = g.frames.first() else {
        writeln!(out, "> goroutine({}): (no frames)", g.id)?;
        return Ok(());
    };
    let name = b
        .name
        .as_ref()
        .map(|n| format!("[{n}] "))
        .unwrap_or_default();
    let args = match s.scope().and_then(|sc| {
        let vars = sc.arguments().map_err(|e| anyhow!(e))?;
        Ok(vars
            .iter()
            .map(|(_, v)| sc.format(v))
            .collect::<Vec<_>>()
            .join(", "))
    }) {
        Ok(a) => a,
        Err(e) => format!("(arguments unreadable: {e:#})"),
    };
    let gid = goid.unwrap_or(g.id);
    writeln!(out, "> goroutine({gid}): {name}{}({args})", f.function)?;
    if b.stack > 0 {
        for (n, fr) in g.frames.iter().take(b.stack).enumerate() {
            writeln!(out, "\t{n}  {:#018x} in {}", fr.pc, fr.function)?;
            writeln!(out, "\t    at {}:{}", fr.file, fr.line)?;
        }
    }
    Ok(())
}

/// A traced function's return: `>> goroutine(G): FUNC => (VALUES)`.
pub(super) fn write_return(s: &Session, goid: Option<u64>, out: &mut dyn Write) -> Result<()> {
    let g = s.current_g()?;
    let func = g.frames.first().map_or("?", |f| &f.function);
    let values: Vec<String> = s.return_values().into_iter().map(|(_, v)| v).collect();
    let gid = goid.unwrap_or(g.id);
    writeln!(out, ">> goroutine({gid}): {func} => ({})", values.join(","))?;
    Ok(())
}

/// Runs breakpoint `i`'s `on` commands, each headed by its text; a failing
/// one is shown and the others still run.
pub(super) fn run_on(s: &mut Session, i: usize, out: &mut dyn Write) -> Result<()> {
    let cmds = s.bps.list[i].on.clone();
    // What Delve shows at a stop at `unrecovered-panic`: the value.
    let panic = s.bps.list[i].name.as_deref() == Some(UNRECOVERED_PANIC);
    if panic {
        let (expr, v) = super::display::show_expr(s, "runtime.curg._panic.arg");
        let v = v.unwrap_or_else(|e| format!("(unreadable: {e:#})"));
        writeln!(out, "\t{expr}: {v}")?;
    }
    let frame = s.frame;
    for c in cmds {
        // `print EXPR` shows as Delve's: `\tEXPR: VALUE`.
        if let Some(text) = c.strip_prefix("print ").or_else(|| c.strip_prefix("p ")) {
            let (expr, v) = super::display::show_expr(s, text);
            let v = v.unwrap_or_else(|e| format!("(error: {e:#})"));
            writeln!(out, "\t{expr}: {v}")?;
            continue;
        }
        writeln!(out, "\t{c}:")?;
        if let Err(e) = super::table::execute(s, &c, out) {
            writeln!(out, "\terror: {e:#}")?;
        }
        // `frame N CMD` keeps the selection; plain `frame N` is refused.
        s.frame = frame;
    }
    Ok(())
}
