//! What a hit of a user breakpoint shows (whether it is one, the engine
//! judges: `session/run.rs`): the note of a stop; a tracepoint's line,
//! the goroutine, the function and its arguments (and `-stack N` frames);
//! a traced function's return; the `on` commands run at every hit that
//! counts.

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::session::breakpoints::UNRECOVERED_PANIC;
use crate::session::Session;

/// ` [NAME] (hits goroutine(G):N total:T)`, the note of a stop.
pub(in crate::repl) fn stop_note(s: &Session, i: usize, goid: Option<u64>) -> String {
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
pub(in crate::repl) fn write_trace(
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
    let args = match s.scope().map_err(anyhow::Error::from).and_then(|sc| {
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
pub(in crate::repl) fn write_return(
    s: &Session,
    goid: Option<u64>,
    out: &mut dyn Write,
) -> Result<()> {
    let g = s.current_g()?;
    let func = g.frames.first().map_or("?", |f| &f.function);
    let values: Vec<String> = s.return_values().into_iter().map(|(_, v)| v).collect();
    let gid = goid.unwrap_or(g.id);
    writeln!(out, ">> goroutine({gid}): {func} => ({})", values.join(","))?;
    Ok(())
}

/// Runs breakpoint `i`'s `on` commands, each headed by its text; a failing
/// one is shown and the others still run.
pub(in crate::repl) fn run_on(s: &mut Session, i: usize, out: &mut dyn Write) -> Result<()> {
    let cmds = s.bps.list[i].on.clone();
    // What Delve shows at a stop at `unrecovered-panic`: the value.
    let panic = s.bps.list[i].name.as_deref() == Some(UNRECOVERED_PANIC);
    if panic {
        let (expr, v) = crate::repl::display::show_expr(s, "runtime.curg._panic.arg");
        let v = v.unwrap_or_else(|e| format!("(unreadable: {e:#})"));
        writeln!(out, "\t{expr}: {v}")?;
    }
    let frame = s.frame;
    for c in cmds {
        // `print EXPR` shows as Delve's: `\tEXPR: VALUE`.
        if let Some(text) = c.strip_prefix("print ").or_else(|| c.strip_prefix("p ")) {
            let (expr, v) = crate::repl::display::show_expr(s, text);
            let v = v.unwrap_or_else(|e| format!("(error: {e:#})"));
            writeln!(out, "\t{expr}: {v}")?;
            continue;
        }
        writeln!(out, "\t{c}:")?;
        if let Err(e) = crate::repl::table::execute(s, &c, out) {
            writeln!(out, "\terror: {e:#}")?;
        }
        // `frame N CMD` keeps the selection; plain `frame N` is refused.
        s.frame = frame;
    }
    Ok(())
}
