//! Running the program: continue, next, step, stepout, step-instruction
//! (the breakpoint commands: `bpcmds.rs`; what a hit does: `bphit.rs`).

use std::io::Write;

use anyhow::{bail, Result};

use crate::repl::bphit;
use crate::repl::source;
use crate::session::{
    RunEvent, RunHooks, Session, StepKind, Stop, Verdict, SLOWDOWN_CAP, SLOWDOWN_WINDOW,
};
use crate::tracer::TempBreakpoint;

/// `FUNC() FILE:LINE` of a run-time pc (innermost inlined call first).
pub(in crate::repl) fn describe(s: &Session, pc: u64) -> String {
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
pub(in crate::repl) fn hits_text(
    hits: &std::collections::BTreeMap<u64, u64>,
    total: u64,
) -> String {
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
    crate::repl::stepout::stepout(s, out)
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
pub(in crate::repl) fn finish_stop(s: &mut Session, out: &mut dyn Write) -> Result<()> {
    if s.is_done() {
        return Ok(());
    }
    crate::repl::display::write_displays(s, out)
}

/// Runs until a stop and shows it, except a stop of the stepping
/// goroutine at one of the `silent` addresses, which is returned unshown
/// (`stepout` reads the results at a RET there).
pub(in crate::repl) fn run_to_stop(
    s: &mut Session,
    base: Vec<TempBreakpoint>,
    silent: &[u64],
    out: &mut dyn Write,
) -> Result<Option<u64>> {
    let stop = s.run_to_stop(base, silent, &mut Shown { out: &mut *out })?;
    match stop {
        Stop::Silent { pc } => return Ok(Some(pc)),
        Stop::Position => show_position(s, out, None)?,
        Stop::Interrupted => {
            writeln!(out, "received SIGINT, stopping the process")?;
            show_position(s, out, None)?;
        }
        Stop::Exec { path } => {
            let pid = s.pid().unwrap_or_default();
            writeln!(
                out,
                "pid {pid} exec'd {}: the program goat was debugging is gone, and the \
                 session ends (to debug the new one: goat attach {pid})",
                path.display()
            )?;
        }
        Stop::Watchpoint(hit) => crate::repl::watch::report_hit(s, hit, out)?,
        Stop::OverCap { bp, verdict } => {
            writeln!(out, "{}", over_the_cap(s, bp, &verdict))?;
            show_position(s, out, None)?;
        }
        Stop::Breakpoint { bp, goroutine } => {
            let note = bphit::stop_note(s, bp, goroutine);
            show_position(s, out, Some(note))?;
            bphit::run_on(s, bp, out)?;
        }
    }
    Ok(None)
}

/// The REPL's part in a run: its watchpoints, and what it prints as the
/// run goes on.
struct Shown<'o> {
    out: &'o mut dyn Write,
}

impl RunHooks for Shown<'_> {
    type Error = anyhow::Error;

    fn after_stop(&mut self, s: &mut Session) -> Result<Vec<u32>> {
        crate::repl::watch::after_stop(s, self.out)
    }

    fn scope_temps(&mut self, s: &mut Session) -> Result<Vec<TempBreakpoint>> {
        crate::repl::watch::scope_temps(s)
    }

    fn at_resize_sentinel(&self, s: &Session, tid: i32) -> bool {
        crate::repl::watch::at_resize_sentinel(s, tid)
    }

    fn event(&mut self, s: &mut Session, event: RunEvent) -> Result<()> {
        let out = &mut *self.out;
        match event {
            RunEvent::CondFailed { bp, error } => {
                let id = s.bps.list[bp].id;
                let e = anyhow::Error::from(error);
                writeln!(out, "error evaluating breakpoint {id}'s condition: {e:#}")?;
            }
            RunEvent::Returned { goroutine } => bphit::write_return(s, goroutine, out)?,
            RunEvent::Traced { bp, goroutine } => {
                bphit::write_trace(s, bp, goroutine, out)?;
                bphit::run_on(s, bp, out)?;
            }
            RunEvent::HitDuringStep { bp, goroutine } => {
                let note = bphit::stop_note(s, bp, goroutine);
                show_position(s, out, Some(note))?;
                bphit::run_on(s, bp, out)?;
                writeln!(out, "\tbreakpoint hit during a step, continuing...")?;
            }
        }
        // Each shows as it happens, not when the run ends.
        out.flush()?;
        Ok(())
    }
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
        cap = SLOWDOWN_CAP * 100.0,
        window = SLOWDOWN_WINDOW.as_secs(),
    )
}

/// `> [goroutine N] FUNC() FILE:LINE (NOTE)` and the source around it.
pub(in crate::repl) fn show_position(
    s: &Session,
    out: &mut dyn Write,
    note: Option<String>,
) -> Result<()> {
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
