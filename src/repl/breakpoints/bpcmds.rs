//! Breakpoint commands as Delve takes them: break and trace (with a name,
//! without a location), breakpoints, clear, clearall [LOCATION], condition
//! (an expression, -hitcount, -per-g-hitcount, -clear), toggle, on.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::repl::exec::describe;
use crate::session::breakpoints::{is_name, HitCond, HitOp, Logical};
use crate::session::Session;

/// Most frames `trace -stack N` prints at each hit.
const MAX_TRACE_STACK: usize = 100;

/// `[NAME] [LOCATION] [if COND]`, split as Delve does: one word is a
/// location, two are a name and a location.
fn name_loc_cond<'a>(args: &[&'a str]) -> (Option<&'a str>, Option<&'a str>, String) {
    let (head, cond) = match args.iter().position(|a| *a == "if") {
        Some(i) => (&args[..i], args[i + 1..].join(" ")),
        None => (args, String::new()),
    };
    match head {
        [] => (None, None, cond),
        [w] => (None, Some(*w), cond),
        [n, l, ..] => (Some(*n), Some(*l), cond),
    }
}

fn set(s: &mut Session, args: &[&str], out: &mut dyn Write, trace: bool) -> Result<()> {
    let cmd = if trace { "trace" } else { "break" };
    let mut stack = 0;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(&w) = it.next() {
        if trace && w == "-stack" {
            let n = it
                .next()
                .ok_or_else(|| anyhow!("trace: -stack takes a count"))?;
            stack = match n.parse::<usize>() {
                Ok(n @ 0..=MAX_TRACE_STACK) => n,
                _ => bail!("trace: -stack {n:?} is not a count from 0 to {MAX_TRACE_STACK}"),
            };
        } else {
            words.push(w);
        }
    }
    if words.len() > 2 && !words.contains(&"if") {
        bail!("usage: {cmd} [NAME] [LOCATION] [if COND]");
    }
    let (name, loc, cond_text) = name_loc_cond(&words);
    if let Some(n) = name {
        if !is_name(n) {
            bail!("{cmd}: {n:?} is not a breakpoint name (a letter, then letters, digits, _ or -)");
        }
        if s.bps.has_name(n) {
            bail!("{cmd}: a breakpoint is named {n:?} already");
        }
    }
    let c = if cond_text.is_empty() {
        None
    } else {
        crate::session::parse_condition(&cond_text)?;
        Some(cond_text)
    };
    let addrs = s.resolve_locations(loc)?;
    // `trace FUNC` shows the returns too, as Delve's does.
    let returns = match loc.and_then(|l| s.function_named(l)).filter(|_| trace) {
        Some(f) => s.ret_pcs(&f)?.into_iter().map(|pc| pc + s.bias).collect(),
        None => Vec::new(),
    };
    let mut b = Logical {
        id: 0,
        name: name.map(str::to_string),
        addrs,
        returns,
        cond: c,
        trace,
        stack,
        ..Default::default()
    };
    s.arm_logical(&mut b)?;
    b.id = fresh_id(s)?;
    let what = if trace { "Tracepoint" } else { "Breakpoint" };
    let label = match &b.name {
        Some(n) => format!("{what} {n} ({})", b.id),
        None => format!("{what} {}", b.id),
    };
    let at = b.addrs.first().copied().unwrap_or_default();
    writeln!(out, "{label} set at {at:#x} for {}", describe(s, at))?;
    for &a in b.addrs.iter().skip(1) {
        writeln!(out, "\tand at {a:#x} for {}", describe(s, a))?;
    }
    if b.id == 1 {
        writeln!(out, "{TRAP_WINDOW_NOTE}")?;
    }
    s.bps.insert(b);
    Ok(())
}

/// Said once a session, at its first breakpoint: what goat's tracer and
/// guardian cannot make safe (docs/ARCHITECTURE.md, "Windows the kernel
/// leaves open").
const TRAP_WINDOW_NOTE: &str = "Note: killing goat (or its tracer) is safe: goat-tracer, or \
goat-guardian, takes the breakpoints out. But were every goat process killed at once \
(pkill -9 goat, an OOM kill of goat's cgroup) while the program runs with breakpoints in it, or \
the tracer alone in the microseconds a thread's breakpoint trap is in flight, the kernel would \
hand the trap to the program, which would die.";

/// `break [NAME] [LOCATION] [if COND]`
pub fn breakpoint(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    set(s, args, out, false)
}

/// `trace [NAME] [LOCATION] [-stack N] [if COND]`
pub fn tracepoint(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    set(s, args, out, true)
}

/// `breakpoints`
/// The next breakpoint id, past the watchpoints' (which the tracer numbers
/// from the same counter as every int3 it holds, so never below an id
/// given here; the two share one numbering, as in Delve).
fn fresh_id(s: &mut Session) -> Result<i64> {
    let watched: Vec<i64> = crate::repl::watch::ids(s)?;
    loop {
        let id = s.bps.next_id();
        if !watched.contains(&id) {
            return Ok(id);
        }
    }
}

pub fn breakpoints(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: breakpoints");
    }
    s.control()?;
    let mut watches = Vec::new();
    let watched = crate::repl::watch::list(s, &mut watches)?;
    if s.bps.list.is_empty() && watched == 0 {
        writeln!(out, "No breakpoints.")?;
    }
    for b in &s.bps.list {
        let what = if b.trace { "Tracepoint" } else { "Breakpoint" };
        let name = b.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
        let off = if b.enabled { "" } else { " (disabled)" };
        let at = b.addrs.first().copied().unwrap_or_default();
        writeln!(
            out,
            "{what}{name} {} at {at:#x} for {}{off} ({})",
            b.id,
            describe(s, at),
            b.hits_text()
        )?;
        for &a in b.addrs.iter().skip(1) {
            writeln!(out, "\tand at {a:#x} for {}", describe(s, a))?;
        }
        if let Some(c) = &b.cond {
            writeln!(out, "\tcond {c}")?;
        }
        if let Some(h) = b.hitcond {
            writeln!(out, "\tcond -{}", h.text())?;
        }
        if !b.returns.is_empty() {
            writeln!(out, "\tand its {} returns", b.returns.len())?;
        }
        if b.stack > 0 {
            writeln!(out, "\tstack {}", b.stack)?;
        }
        for c in &b.on {
            writeln!(out, "\t{c}")?;
        }
    }
    out.write_all(&watches)?;
    Ok(())
}

fn remove(s: &mut Session, i: usize, out: &mut dyn Write) -> Result<()> {
    let mut b = s.bps.list.remove(i);
    if let Err(e) = s.disarm_logical(&mut b) {
        s.bps.insert(b);
        return Err(e.into());
    }
    let what = if b.trace { "Tracepoint" } else { "Breakpoint" };
    let name = b.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
    let at = b.addrs.first().copied().unwrap_or_default();
    writeln!(
        out,
        "{what}{name} {} cleared at {at:#x} for {}",
        b.id,
        describe(s, at)
    )?;
    Ok(())
}

/// `clear N|NAME`
pub fn clear(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [word] = args else {
        bail!("usage: clear N | NAME");
    };
    s.control()?;
    if let Ok(id) = word.parse::<u32>() {
        if crate::repl::watch::clear(s, id, out)? {
            return Ok(());
        }
    }
    let i = s.bps.find(word).map_err(|e| anyhow!("clear: {e}"))?;
    remove(s, i, out)
}

/// `clearall [LOCATION]`: every user breakpoint, or those at its addresses.
pub fn clearall(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    s.control()?;
    let only = match args {
        [] => None,
        [loc] => Some(s.resolve_locations(Some(loc))?),
        _ => bail!("usage: clearall [LOCATION]"),
    };
    let mut i = 0;
    while i < s.bps.list.len() {
        let b = &s.bps.list[i];
        // The runtime's own (-1, -2) go only by `clear`, as in Delve.
        let hit = b.id > 0
            && only
                .as_ref()
                .is_none_or(|pcs| b.addrs.iter().any(|a| pcs.contains(a)));
        if hit {
            remove(s, i, out)?;
        } else {
            i += 1;
        }
    }
    if only.is_none() {
        crate::repl::watch::clear_all(s)?;
        writeln!(out, "All user breakpoints cleared.")?;
    }
    Ok(())
}

/// `condition N EXPR | -hitcount N OP K | -per-g-hitcount N OP K | -clear N`
/// (a bare `condition N` removes the expression, as goat always did).
pub fn condition(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    s.control()?;
    match args {
        [flag @ ("-hitcount" | "-per-g-hitcount"), bp, op, k] => {
            let i = s.bps.find(bp).map_err(|e| anyhow!("cond: {e}"))?;
            let op = HitOp::parse(op)
                .ok_or_else(|| anyhow!("cond: {op:?} is not one of == != < <= > >= %"))?;
            let k = k
                .parse()
                .map_err(|_| anyhow!("cond: {k:?} is not a hit count"))?;
            s.bps.list[i].hitcond = Some(HitCond {
                op,
                k,
                per_g: *flag == "-per-g-hitcount",
            });
            Ok(())
        }
        ["-hitcount" | "-per-g-hitcount", ..] => {
            bail!("usage: cond -hitcount N OP K (OP one of == != < <= > >= %)")
        }
        ["-clear", bp] => {
            let i = s.bps.find(bp).map_err(|e| anyhow!("cond: {e}"))?;
            let b = &mut s.bps.list[i];
            b.cond = None;
            b.hitcond = None;
            writeln!(out, "Breakpoint {} has no condition now.", b.id)?;
            Ok(())
        }
        [bp, rest @ ..] => {
            let i = s.bps.find(bp).map_err(|e| anyhow!("cond: {e}"))?;
            let text = rest.join(" ");
            if text.is_empty() {
                let b = &mut s.bps.list[i];
                b.cond = None;
                writeln!(out, "Breakpoint {} has no condition now.", b.id)?;
                return Ok(());
            }
            crate::session::parse_condition(&text)?;
            s.bps.list[i].cond = Some(text);
            Ok(())
        }
        [] => bail!("usage: cond N EXPR | -hitcount N OP K | -per-g-hitcount N OP K | -clear N"),
    }
}

/// `toggle N|NAME`: takes its int3s out, or puts them back.
pub fn toggle(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [word] = args else {
        bail!("usage: toggle N | NAME");
    };
    s.control()?;
    let i = s.bps.find(word).map_err(|e| anyhow!("toggle: {e}"))?;
    let on = !s.bps.list[i].enabled;
    let label = s.set_enabled(word, on)?;
    let state = if on { "enabled" } else { "disabled" };
    writeln!(out, "Breakpoint {label} {state}")?;
    Ok(())
}

/// The commands `on` runs at a hit (Delve's: those that show, and cond).
const ON_COMMANDS: [&str; 12] = [
    "print",
    "p",
    "stack",
    "bt",
    "goroutine",
    "gr",
    "frame",
    "args",
    "locals",
    "display",
    "cond",
    "condition",
];

/// `on N|NAME COMMAND`: COMMAND runs at each hit; `on N trace` makes it a
/// tracepoint; `on N cond ...` is `cond N ...`.
pub fn on(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [bp, cmd, rest @ ..] = args else {
        bail!("usage: on N|NAME COMMAND");
    };
    s.control()?;
    let i = s.bps.find(bp).map_err(|e| anyhow!("on: {e}"))?;
    match *cmd {
        "trace" if rest.is_empty() => {
            s.bps.list[i].trace = true;
            return Ok(());
        }
        "cond" | "condition" => {
            let mut words = vec![*bp];
            words.extend_from_slice(rest);
            // `on N cond -hitcount OP K` names the breakpoint first.
            if let Some(&flag @ ("-hitcount" | "-per-g-hitcount" | "-clear")) = rest.first() {
                words = vec![flag, bp];
                words.extend_from_slice(&rest[1..]);
            }
            return condition(s, &words, out);
        }
        c if ON_COMMANDS.contains(&c) => {}
        c => bail!("on: {c:?} cannot run at a hit (one of print, stack, goroutine, frame N CMD, args, locals, display, trace, cond)"),
    }
    if *cmd == "frame" {
        // `frame N CMD`: the command must be one `on` takes.
        match rest {
            [n, c, ..] if n.parse::<usize>().is_ok() && ON_COMMANDS.contains(c) => {}
            _ => bail!("usage: on N frame FRAME COMMAND"),
        }
    }
    let mut line = vec![*cmd];
    line.extend_from_slice(rest);
    Ok(s.bps.list[i].add_on(line.join(" "))?)
}
