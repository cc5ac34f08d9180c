//! Running the program: continue, next, step, stepout, step-instruction
//! (the breakpoint commands: `bpcmds.rs`; what a hit does: `bphit.rs`).

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Result};

use super::bphit::{self, Judged};
use super::locate::StepKind;
use super::slowdown::{Slowdown, Verdict, CAP, WINDOW};
use super::source;
use super::state::Session;
use crate::tracer::{RunCommand, RunPlan, StopReason, TempBreakpoint};

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

/// `hits goroutine(G):N ... total:N`, as Delve counts them.
pub(super) fn hits_text(hits: &std::collections::BTreeMap<u64, u64>, total: u64) -> String {
    let mut text = String::from("hits");
    for (g, n) in hits {
        text.push_str(&format!(" goroutine({g}):{n}"));
    }
    text.push_str(&format!(" total:{total}"));
    text
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
    if !args.is_empty() {
        bail!("stepout takes no arguments");
    }
    s.control()?;
    super::stepout::stepout(s, out)
}

/// Runs until a stop worth showing, then shows it. During a step
/// (`temps` not empty), another goroutine's breakpoint is reported and the
/// step goes on, on its own goroutine (Delve's `next` goes on the same way
/// when told to continue).
fn run_and_report(s: &mut Session, temps: Vec<TempBreakpoint>, out: &mut dyn Write) -> Result<()> {
    run_to_stop(s, temps, &[], out)?;
    finish_stop(s, out)
}

/// What every stop shows last: the `display` expressions.
pub(super) fn finish_stop(s: &mut Session, out: &mut dyn Write) -> Result<()> {
    if s.is_done() {
        return Ok(());
    }
    super::display::write_displays(s, out)
}

/// Runs until a stop and shows it, except a stop of the stepping
/// goroutine at one of the `silent` addresses, which is returned unshown
/// (`stepout` reads the results at a RET there).
pub(super) fn run_to_stop(
    s: &mut Session,
    base: Vec<TempBreakpoint>,
    silent: &[u64],
    out: &mut dyn Write,
) -> Result<Option<u64>> {
    // A step is a run with breakpoints of its own; the watchpoints' scope
    // breakpoints added below do not make a `continue` one.
    let stepping = (!base.is_empty())
        .then(|| s.current_g().ok().map(|g| g.id))
        .flatten();
    // Where watched stack variables go out of scope.
    let mut temps = base.clone();
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
    let mut false_hits = 0usize;
    loop {
        // Every thread is stopped between two runs: stop here, cleanly.
        if command.interrupted() {
            return interrupted(s, out).map(|()| None);
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
                return interrupted(s, out).map(|()| None);
            }
            StopReason::Aborted => bail!("goat is terminating"),
            StopReason::Exec { path } => {
                let pid = s.pid().unwrap_or_default();
                writeln!(
                    out,
                    "pid {pid} exec'd {}: the program goat was debugging is gone, and the \
                     session ends (to debug the new one: goat attach {pid})",
                    path.display()
                )?;
                return Ok(None);
            }
            StopReason::Watchpoint(hit) => {
                if super::watch::after_stop(s, out)?.contains(&hit.id) {
                    // An access to a moved stack's old place: on, with
                    // the out-of-scope breakpoints where the frames are now.
                    plan.temps = base.clone();
                    plan.temps.extend(super::watch::scope_temps(s)?);
                    continue;
                }
                return super::watch::report_hit(s, hit, out).map(|()| None);
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
        let Some(i) = user.and_then(|p| s.bps.list.iter().position(|b| b.phys.contains(&p))) else {
            let pc = s.current_g()?.frames.first().map(|f| f.pc);
            if let Some(pc) = pc.filter(|pc| temp && silent.contains(pc)) {
                return Ok(Some(pc));
            }
            return show_position(s, out, None).map(|()| None);
        };
        let pc = s.current_g()?.frames.first().map(|f| f.pc);
        if pc.is_some_and(|pc| s.bps.list[i].returns.contains(&pc)) {
            bphit::write_return(s, goid, out)?;
            out.flush()?;
            if temp {
                return show_position(s, out, None).map(|()| None);
            }
            continue;
        }
        match bphit::judge(s, i, goid, out)? {
            Judged::Hit => {}
            // A stepping stop here still counts as the step's end.
            Judged::CondFalse | Judged::Skipped if temp => {
                return show_position(s, out, None).map(|()| None)
            }
            Judged::Skipped => continue,
            Judged::CondFalse => {
                false_hits += 1;
                if false_hits >= MAX_FALSE_HITS {
                    bail!("{MAX_FALSE_HITS} hits with a false condition in a row; stopped");
                }
                let now = Instant::now();
                let cycle = now.saturating_duration_since(asked);
                let id = s.bps.list[i].id;
                let Some(v) = slowdown.false_hit(id, cycle, ran, now) else {
                    continue;
                };
                let worst = s.bps.list.iter().position(|w| w.id == v.id).unwrap_or(i);
                writeln!(out, "{}", over_the_cap(s, worst, &v))?;
                return show_position(s, out, None).map(|()| None);
            }
        }
        false_hits = 0;
        if s.bps.list[i].trace {
            bphit::write_trace(s, i, goid, out)?;
            bphit::run_on(s, i, out)?;
            // Each hit shows as it happens, not when the run ends.
            out.flush()?;
            if temp {
                return show_position(s, out, None).map(|()| None);
            }
            continue;
        }
        let note = bphit::stop_note(s, i, goid);
        match stepping {
            Some(g) if !temp && goid != Some(g) && s.goroutine(g).is_some() => {
                show_position(s, out, Some(note))?;
                bphit::run_on(s, i, out)?;
                writeln!(out, "\tbreakpoint hit during a step, continuing...")?;
                out.flush()?;
                s.select(g)?;
                continue;
            }
            _ => {}
        }
        show_position(s, out, Some(note))?;
        return bphit::run_on(s, i, out).map(|()| None);
    }
}

fn interrupted(s: &Session, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "received SIGINT, stopping the process")?;
    show_position(s, out, None)
}

/// Why a `continue` stopped on a false condition: the breakpoint, its hit
/// rate and what it cost the program.
fn over_the_cap(s: &Session, i: usize, v: &Verdict) -> String {
    let b = &s.bps.list[i];
    let cond = b.cond.as_deref().unwrap_or("");
    format!(
        "stopped: breakpoint {id} at {at} (cond {cond}) was hit {hits} times in {secs:.1}s \
         ({rate:.0}/s) with its condition false; the program spent {share:.0}% of that time \
         stopped for such hits, {factor:.1}x slower (the cap is {cap:.0}% over {window}s).\n\
         Refine the condition (cond {id} VAR OP VALUE), clear {id}, or continue to go on.",
        id = b.id,
        at = describe(s, b.addrs.first().copied().unwrap_or_default()),
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
