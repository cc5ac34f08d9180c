//! Running the program: break, breakpoints, clear, clearall, cond,
//! continue, next, step, stepout.

use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};

use super::locate::StepKind;
use super::slowdown::{Slowdown, Verdict, CAP, WINDOW};
use super::state::Session;
use super::{cond, source};
use crate::tracer::{BreakpointInfo, RunCommand, RunPlan, StopReason, TempBreakpoint};

/// Most consecutive hits whose condition was false before `continue` gives
/// up (Ctrl-C, or the cap on the slowdown they cause, stops it sooner).
const MAX_FALSE_HITS: usize = 100_000;

/// `FUNC() FILE:LINE` of a run-time pc (innermost inlined call first).
pub(super) fn describe(s: &Session, pc: u64) -> String {
    let link = pc.wrapping_sub(s.bias);
    let tab = s.prog.binary().pclntab().ok();
    let frame = tab
        .and_then(|t| t.find_func(link))
        .and_then(|f| f.source_frames(link).ok())
        .and_then(|v| v.into_iter().next());
    match frame {
        Some(sf) => format!("{}() {}:{}", sf.function, display_path(sf.file), sf.line),
        None => s.symbolize(pc),
    }
}

/// A source path as Delve shows it: `./main.go` under the working directory.
fn display_path(file: &str) -> String {
    let cwd = std::env::current_dir().ok();
    let rel = cwd
        .as_ref()
        .and_then(|d| file.strip_prefix(&format!("{}/", d.display())));
    match rel {
        Some(r) => format!("./{r}"),
        None => file.to_string(),
    }
}

fn bp_hits_text(b: &BreakpointInfo) -> String {
    hits_text(&b.hits, b.total)
}

/// `hits goroutine(G):N ... total:N`, as Delve counts them.
pub(super) fn hits_text(hits: &std::collections::BTreeMap<u64, u64>, total: u64) -> String {
    let mut text = String::from("hits");
    for (g, n) in hits {
        text.push_str(&format!(" goroutine({g}):{n}"));
    }
    text.push_str(&format!(" total:{total}"));
    text
}

fn parse_id(word: &str, cmd: &str) -> Result<u32> {
    word.parse()
        .map_err(|_| anyhow!("{cmd}: {word:?} is not a breakpoint number"))
}

/// `break LOC`
pub fn breakpoint(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [loc] = args else {
        bail!("usage: break FUNC | FILE:LINE | LINE | *ADDR");
    };
    let addr = s.resolve_location(loc)?;
    let b = s.control()?.add_breakpoint(addr)?;
    writeln!(
        out,
        "Breakpoint {} set at {:#x} for {}",
        b.id,
        b.addr,
        describe(s, b.addr)
    )?;
    Ok(())
}

/// `breakpoints`
pub fn breakpoints(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: breakpoints");
    }
    let list = s.control()?.breakpoints()?;
    let mut text = Vec::new();
    let watched = super::watch::list(s, &mut text)?;
    if list.is_empty() && watched == 0 {
        writeln!(out, "No breakpoints.")?;
    }
    for b in list {
        writeln!(
            out,
            "Breakpoint {} at {:#x} for {} ({})",
            b.id,
            b.addr,
            describe(s, b.addr),
            bp_hits_text(&b)
        )?;
        if let Some(c) = &b.cond {
            writeln!(out, "\tcond {c}")?;
        }
    }
    out.write_all(&text)?;
    Ok(())
}

/// `clear N`
pub fn clear(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [id] = args else {
        bail!("usage: clear N");
    };
    let id = parse_id(id, "clear")?;
    if super::watch::clear(s, id, out)? {
        return Ok(());
    }
    let b = s
        .control()?
        .remove_breakpoint(id)?
        .ok_or_else(|| anyhow!("clear: no breakpoint {id}"))?;
    writeln!(
        out,
        "Breakpoint {} cleared at {:#x} for {}",
        b.id,
        b.addr,
        describe(s, b.addr)
    )?;
    Ok(())
}

/// `clearall`
pub fn clearall(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: clearall");
    }
    let c = s.control()?;
    for b in c.breakpoints()? {
        c.remove_breakpoint(b.id)?;
    }
    super::watch::clear_all(s)?;
    writeln!(out, "All breakpoints cleared.")?;
    Ok(())
}

/// `cond N EXPR` (no EXPR: removes the condition)
pub fn condition(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let Some((id, rest)) = args.split_first() else {
        bail!("usage: cond N [VAR OP VALUE]");
    };
    let id = parse_id(id, "cond")?;
    let text = rest.join(" ");
    let c = if text.is_empty() {
        None
    } else {
        cond::parse(&text)?;
        Some(text)
    };
    let set = c.is_some();
    if !s.control()?.set_condition(id, c)? {
        bail!("cond: no breakpoint {id}");
    }
    if !set {
        writeln!(out, "Breakpoint {id} has no condition now.")?;
    }
    Ok(())
}

/// `continue [LOCATION]`
pub fn cont(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let loc = match args {
        [] => None,
        [loc] => Some(*loc),
        _ => bail!("usage: continue [LOCATION]"),
    };
    s.control()?;
    let Some(loc) = loc else {
        return run_and_report(s, Vec::new(), out);
    };
    // Delve's `continue LOCSPEC`: a breakpoint there for this run only
    // (any goroutine stops at it), unless the user already has one.
    let addr = s.resolve_location(loc)?;
    let had = s.control()?.breakpoints()?.iter().any(|b| b.addr == addr);
    let temp = if had {
        None
    } else {
        Some(s.control()?.add_breakpoint(addr)?.id)
    };
    let result = run_and_report(s, Vec::new(), out);
    if let (Some(id), false) = (temp, s.is_done()) {
        s.control()?.remove_breakpoint(id)?;
    }
    result
}

/// Most lines `next N` / `step N` take in one command.
const MAX_STEPS: usize = 10_000;

fn step_cmd(s: &mut Session, args: &[&str], out: &mut dyn Write, kind: StepKind) -> Result<()> {
    let name = match kind {
        StepKind::Over => "next",
        StepKind::Into => "step",
        StepKind::Out => "stepout",
    };
    let count = match (args, kind) {
        ([], _) => 1,
        ([n], StepKind::Over | StepKind::Into) => match n.parse::<usize>() {
            Ok(n @ 1..=MAX_STEPS) => n,
            _ => bail!("{name}: {n:?} is not a count from 1 to {MAX_STEPS}"),
        },
        _ => bail!("{name} takes no arguments"),
    };
    s.control()?;
    for i in 0..count {
        let temps = s.step_plan(kind)?;
        run_and_report(s, temps, out)?;
        // A user breakpoint (or the end) cuts `next N` short, as in Delve.
        if i + 1 < count && (s.is_done() || at_user_breakpoint(s)?) {
            break;
        }
    }
    Ok(())
}

/// Whether the current goroutine stands at a user breakpoint.
fn at_user_breakpoint(s: &mut Session) -> Result<bool> {
    let Some(pc) = s.current_g()?.frames.first().map(|f| f.pc) else {
        return Ok(false);
    };
    Ok(s.control()?.breakpoints()?.iter().any(|b| b.addr == pc))
}

/// `next [N]`
pub fn next(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    step_cmd(s, args, out, StepKind::Over)
}

/// `step [N]`
pub fn step(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    step_cmd(s, args, out, StepKind::Into)
}

/// `stepout`
pub fn stepout(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    step_cmd(s, args, out, StepKind::Out)
}

/// Runs until a stop worth showing, then shows it.
fn run_and_report(
    s: &mut Session,
    mut temps: Vec<TempBreakpoint>,
    out: &mut dyn Write,
) -> Result<()> {
    // Where watched stack variables go out of scope.
    let base = temps.clone();
    temps.extend(super::watch::scope_temps(s)?);
    // A Ctrl-C from here to the return is latched for this command, so one
    // that lands while a condition is evaluated is not lost (signals.rs).
    let command = RunCommand::begin();
    let mut plan = RunPlan {
        temps: temps.clone(),
        g_tls_offset: s.g_tls_offset(),
        command: command.id(),
    };
    let mut slowdown = Slowdown::new(Instant::now());
    for _ in 0..MAX_FALSE_HITS {
        // Every thread is stopped between two runs: stop here, cleanly.
        if command.interrupted() {
            return interrupted(s, out);
        }
        let asked = Instant::now();
        let (tid, user, temp, ran) = match s.run(plan.clone())? {
            StopReason::CallEntered { entry, g, .. } => {
                // `step` went through an indirect call: on with the step's
                // own breakpoints and those that stop in this callee.
                plan.temps = temps.clone();
                plan.temps.extend(s.callee_temps(entry, g));
                continue;
            }
            StopReason::Interrupted => {
                super::watch::after_stop(s, out)?;
                return interrupted(s, out);
            }
            StopReason::Aborted => bail!("goat is terminating"),
            StopReason::Watchpoint(hit) => {
                if super::watch::after_stop(s, out)?.contains(&hit.id) {
                    // An access to a moved stack's old place: on, with
                    // the out-of-scope breakpoints where the frames are now.
                    plan.temps = base.clone();
                    plan.temps.extend(super::watch::scope_temps(s)?);
                    continue;
                }
                return super::watch::report_hit(s, hit, out);
            }
            StopReason::Breakpoint {
                tid,
                user,
                temp,
                ran,
                ..
            } => (tid, user, temp, ran),
        };
        let goid = s.select_thread(tid);
        super::watch::after_stop(s, out)?;
        if user.is_none() && super::watch::at_resize_sentinel(s, tid) {
            // A stack moved: watchpoints follow (after_stop); on at once.
            plan.temps = base.clone();
            plan.temps.extend(super::watch::scope_temps(s)?);
            continue;
        }
        let Some(id) = user else {
            return show_position(s, out, None);
        };
        let info = s.control()?.breakpoints()?;
        let Some(b) = info.iter().find(|b| b.id == id).cloned() else {
            return show_position(s, out, None);
        };
        if let Some(text) = &b.cond {
            match cond::parse(text).and_then(|c| cond::holds(s, &c)) {
                Ok(true) => {}
                // A stepping stop here still counts as the step's end.
                Ok(false) if temp => return show_position(s, out, None),
                Ok(false) => {
                    let now = Instant::now();
                    let cycle = now.saturating_duration_since(asked);
                    let Some(v) = slowdown.false_hit(id, cycle, ran, now) else {
                        continue;
                    };
                    let worst = info.iter().find(|w| w.id == v.id).unwrap_or(&b);
                    writeln!(out, "{}", over_the_cap(s, worst, &v))?;
                    return show_position(s, out, None);
                }
                Err(e) => {
                    writeln!(out, "error evaluating breakpoint {id}'s condition: {e:#}")?;
                }
            }
        }
        let counted = match goid {
            Some(g) => s.control()?.record_hit(id, g)?,
            None => Some(b),
        };
        let note = counted.map(|b| format!(" ({})", bp_hits_text(&b)));
        return show_position(s, out, note);
    }
    // The last stop may have been a call entered, whose stop is not loaded.
    s.load()?;
    bail!("{MAX_FALSE_HITS} hits with a false condition in a row; stopped")
}

fn interrupted(s: &Session, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "received SIGINT, stopping the process")?;
    show_position(s, out, None)
}

/// Why a `continue` stopped on a false condition: the breakpoint, its hit
/// rate and what it cost the program.
fn over_the_cap(s: &Session, b: &BreakpointInfo, v: &Verdict) -> String {
    let cond = b.cond.as_deref().unwrap_or("");
    format!(
        "stopped: breakpoint {id} at {at} (cond {cond}) was hit {hits} times in {secs:.1}s \
         ({rate:.0}/s) with its condition false; the program spent {share:.0}% of that time \
         stopped for such hits, {factor:.1}x slower (the cap is {cap:.0}% over {window}s).\n\
         Refine the condition (cond {id} VAR OP VALUE), clear {id}, or continue to go on.",
        id = b.id,
        at = describe(s, b.addr),
        hits = v.hits,
        secs = v.wall.as_secs_f64(),
        rate = v.hits_per_second(),
        share = v.share * 100.0,
        factor = 1.0 / (1.0 - v.share).max(0.01),
        cap = CAP * 100.0,
        window = WINDOW.as_secs(),
    )
}

/// `> [goroutine N] FUNC() FILE:LINE (NOTE)` and the source around it.
pub(super) fn show_position(s: &Session, out: &mut dyn Write, note: Option<String>) -> Result<()> {
    let g = s.current_g()?;
    let Some(f) = g.frames.first() else {
        writeln!(out, "> [goroutine {}] (no frames)", g.id)?;
        return Ok(());
    };
    let note = note.unwrap_or_else(|| format!(" (PC: {:#x})", f.pc));
    writeln!(
        out,
        "> [goroutine {}] {}() {}:{}{note}",
        g.id,
        f.function,
        display_path(&f.file),
        f.line
    )?;
    if let Err(e) = source::write_listing(&source::context(s), out, &f.file, f.line, Some(f.line)) {
        writeln!(out, "   ({e})")?;
    }
    Ok(())
}
