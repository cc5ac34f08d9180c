//! Running the target until a stop worth showing, as Delve decides it: a
//! user breakpoint whose condition holds and whose hit-count condition
//! says stop, the end of a step, Ctrl-C (a front end's pause), a
//! watchpoint, an `exec`. On the way, what a front end shows as it
//! happens (a tracepoint's line, a traced function's return, a breakpoint
//! another goroutine hit during a step) is handed to its [`RunHooks`] as a
//! [`RunEvent`], and the run goes on.
//!
//! A hit is judged here (`judge`): its condition first (a false one is no
//! hit; one that fails to evaluate stops, as in Delve), then it is counted
//! per goroutine and in total and its hit-count condition checked. A
//! `continue` whose false hits slow the program past the cap stops
//! (`slowdown.rs`).

use std::path::PathBuf;
use std::time::Instant;

use super::cond;
use super::error::SessionError;
use super::slowdown::{Slowdown, Verdict};
use super::Session;
use crate::tracer::{RunCommand, RunPlan, StopReason, TempBreakpoint, WatchHit};

/// Most consecutive hits whose condition was false before `continue` gives
/// up (Ctrl-C, or the cap on the slowdown they cause, stops it sooner).
const MAX_FALSE_HITS: usize = 100_000;

/// How a run ended. The selected goroutine is the one that stopped, when
/// one did.
#[derive(Debug)]
pub enum Stop {
    /// A user breakpoint (its index in [`Session::bps`]) hit by `goroutine`.
    Breakpoint { bp: usize, goroutine: Option<u64> },
    /// A step's end, a temporary breakpoint, or a stop with no user
    /// breakpoint to name (the position is the selected goroutine's).
    Position,
    /// The stepping goroutine stopped at one of the `silent` addresses the
    /// run was given (`stepout` reads the results at a RET there).
    Silent { pc: u64 },
    /// Ctrl-C, or a front end's pause.
    Interrupted,
    /// A watchpoint fired.
    Watchpoint(WatchHit),
    /// The program exec'd another: the session is over.
    Exec { path: PathBuf },
    /// False conditions slowed the program past the cap (`slowdown.rs`):
    /// `bp` is the breakpoint that cost the most.
    OverCap { bp: usize, verdict: Verdict },
}

/// What a front end is told while a run goes on (it shows them as they
/// come: a trace can be long).
#[derive(Debug)]
pub enum RunEvent {
    /// Breakpoint `bp`'s condition could not be evaluated: the hit stops.
    CondFailed { bp: usize, error: SessionError },
    /// Tracepoint `bp` was hit by `goroutine`; the run goes on.
    Traced { bp: usize, goroutine: Option<u64> },
    /// A traced function returned on `goroutine`; the run goes on.
    Returned { goroutine: Option<u64> },
    /// During a step, another goroutine hit breakpoint `bp`; the step goes
    /// on, on its own goroutine.
    HitDuringStep { bp: usize, goroutine: Option<u64> },
}

/// What a run does once interrupted (see [`RunHooks::interrupted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterInterrupt {
    /// It ends in [`Stop::Interrupted`]: Ctrl-C, a front end's pause.
    Stop,
    /// It goes on as it was, with no stop reported: the interrupt was a
    /// front end's look at the program (DAP's `threads` while it runs).
    GoOn,
}

/// What a front end does within a run: the watchpoints it keeps, and the
/// events it shows. Its errors end the run.
pub trait RunHooks {
    /// The run was interrupted, every thread is stopped and the session
    /// holds the stop: the front end looks at what it asked for, and says
    /// whether the run ends. An interrupt that comes from here on is one
    /// for the run that goes on, not lost. Unless told, a run stops.
    fn interrupted(&mut self, _s: &mut Session) -> Result<AfterInterrupt, Self::Error> {
        Ok(AfterInterrupt::Stop)
    }
    type Error: From<SessionError>;
    /// After every stop, before it is judged (watchpoints follow moved
    /// stacks, go out of scope): the watchpoints whose hit is an access to
    /// a moved stack's old place, which the run goes on past.
    fn after_stop(&mut self, s: &mut Session) -> Result<Vec<u32>, Self::Error>;
    /// Temporary breakpoints the watchpoints need (where watched stack
    /// variables go out of scope, where stacks move).
    fn scope_temps(&mut self, s: &mut Session) -> Result<Vec<TempBreakpoint>, Self::Error>;
    /// Whether thread `tid` stands where a stack was just moved.
    fn at_resize_sentinel(&self, s: &Session, tid: i32) -> bool;
    fn event(&mut self, s: &mut Session, event: RunEvent) -> Result<(), Self::Error>;
}

/// What the session makes of a hit.
enum Judged {
    /// The condition is false: no hit.
    CondFalse,
    /// Counted, but the hit-count condition says go on.
    Skipped,
    /// Counted, and it stops (or traces).
    Hit,
}

impl Session<'_> {
    /// Runs until a stop (see [`Stop`]). A step is a run with temporary
    /// breakpoints (`base`, from [`Session::step_plan`]); during one,
    /// another goroutine's breakpoint is reported and the step goes on.
    pub fn run_to_stop<H: RunHooks>(
        &mut self,
        base: Vec<TempBreakpoint>,
        silent: &[u64],
        hooks: &mut H,
    ) -> Result<Stop, H::Error> {
        // A step is a run with breakpoints of its own; the watchpoints'
        // scope breakpoints added below do not make a `continue` one.
        let stepping = (!base.is_empty())
            .then(|| self.current_g().ok().map(|g| g.id))
            .flatten();
        let mut temps = base.clone();
        temps.extend(hooks.scope_temps(self)?);
        // A Ctrl-C from here to the return is latched for this request, so
        // one that lands while a condition is evaluated is not lost
        // (signals.rs).
        let mut command = RunCommand::begin();
        let mut plan = RunPlan {
            temps: temps.clone(),
            g_tls_offset: self.g_tls_offset(),
            command: command.id(),
        };
        let mut slowdown = Slowdown::new(Instant::now());
        let mut false_hits = 0usize;
        loop {
            // Every thread is stopped between two runs: stop here, cleanly.
            if command.interrupted() {
                if !self.interrupted(hooks, &mut command, &mut plan)? {
                    return Ok(Stop::Interrupted);
                }
                continue;
            }
            let asked = Instant::now();
            let (tid, user, temp, ran) = match self.run(plan.clone())? {
                StopReason::CallEntered { entry, g, .. } => {
                    // `step` went through an indirect call: on with the
                    // step's own breakpoints and those that stop in this
                    // callee.
                    plan.temps = temps.clone();
                    plan.temps.extend(self.callee_temps(entry, g));
                    continue;
                }
                StopReason::Interrupted => {
                    hooks.after_stop(self)?;
                    if !self.interrupted(hooks, &mut command, &mut plan)? {
                        return Ok(Stop::Interrupted);
                    }
                    continue;
                }
                StopReason::Aborted => return Err(SessionError::Terminating.into()),
                StopReason::Exec { path } => return Ok(Stop::Exec { path }),
                StopReason::Watchpoint(hit) => {
                    if hooks.after_stop(self)?.contains(&hit.id) {
                        // An access to a moved stack's old place: on, with
                        // the out-of-scope breakpoints where the frames are
                        // now.
                        plan.temps = base.clone();
                        plan.temps.extend(hooks.scope_temps(self)?);
                        continue;
                    }
                    return Ok(Stop::Watchpoint(hit));
                }
                StopReason::Breakpoint {
                    tid,
                    user,
                    temp,
                    ran,
                    ..
                } => (tid, user, temp, ran),
            };
            let goid = self.select_thread(tid);
            hooks.after_stop(self)?;
            if user.is_none() && hooks.at_resize_sentinel(self, tid) {
                // A stack moved: watchpoints follow (after_stop); on at once.
                plan.temps = base.clone();
                plan.temps.extend(hooks.scope_temps(self)?);
                continue;
            }
            let Some(i) = user.and_then(|p| self.bps.list.iter().position(|b| b.phys.contains(&p)))
            else {
                let pc = self.current_g()?.frames.first().map(|f| f.pc);
                if let Some(pc) = pc.filter(|pc| temp && silent.contains(pc)) {
                    return Ok(Stop::Silent { pc });
                }
                return Ok(Stop::Position);
            };
            let pc = self.current_g()?.frames.first().map(|f| f.pc);
            if pc.is_some_and(|pc| self.bps.list[i].returns.contains(&pc)) {
                hooks.event(self, RunEvent::Returned { goroutine: goid })?;
                if temp {
                    return Ok(Stop::Position);
                }
                continue;
            }
            match self.judge(i, goid, hooks)? {
                Judged::Hit => {}
                // A stepping stop here still counts as the step's end.
                Judged::CondFalse | Judged::Skipped if temp => return Ok(Stop::Position),
                Judged::Skipped => continue,
                Judged::CondFalse => {
                    false_hits += 1;
                    if false_hits >= MAX_FALSE_HITS {
                        return Err(SessionError::TooManyFalseHits(MAX_FALSE_HITS).into());
                    }
                    let now = Instant::now();
                    let cycle = now.saturating_duration_since(asked);
                    let id = self.bps.list[i].id;
                    let Some(verdict) = slowdown.false_hit(id, cycle, ran, now) else {
                        continue;
                    };
                    let worst = self.bps.list.iter().position(|w| w.id == verdict.id);
                    return Ok(Stop::OverCap {
                        bp: worst.unwrap_or(i),
                        verdict,
                    });
                }
            }
            false_hits = 0;
            if self.bps.list[i].trace {
                hooks.event(
                    self,
                    RunEvent::Traced {
                        bp: i,
                        goroutine: goid,
                    },
                )?;
                if temp {
                    return Ok(Stop::Position);
                }
                continue;
            }
            match stepping {
                Some(g) if !temp && goid != Some(g) && self.goroutine(g).is_some() => {
                    hooks.event(
                        self,
                        RunEvent::HitDuringStep {
                            bp: i,
                            goroutine: goid,
                        },
                    )?;
                    self.select(g)?;
                    continue;
                }
                _ => {}
            }
            return Ok(Stop::Breakpoint {
                bp: i,
                goroutine: goid,
            });
        }
    }

    /// An interrupted run, told to the front end: whether it goes on, then
    /// as the next run command (in `command` and `plan`). The next command
    /// begins before the front end looks, so that an interrupt meanwhile
    /// is latched for it.
    fn interrupted<H: RunHooks>(
        &mut self,
        hooks: &mut H,
        command: &mut RunCommand,
        plan: &mut RunPlan,
    ) -> Result<bool, H::Error> {
        let next = RunCommand::begin();
        match hooks.interrupted(self)? {
            AfterInterrupt::GoOn => {
                *command = next;
                plan.command = command.id();
                Ok(true)
            }
            AfterInterrupt::Stop => Ok(false),
        }
    }

    /// Judges a hit of breakpoint `i` by the selected goroutine `goid`:
    /// condition, count, hit-count condition. An error in the condition is
    /// told to the front end and the hit stops, as Delve does.
    fn judge<H: RunHooks>(
        &mut self,
        i: usize,
        goid: Option<u64>,
        hooks: &mut H,
    ) -> Result<Judged, H::Error> {
        if let Some(text) = self.bps.list[i].cond.clone() {
            match cond::parse(&text).and_then(|c| cond::holds(self, &c)) {
                Ok(true) => {}
                Ok(false) => return Ok(Judged::CondFalse),
                Err(error) => hooks.event(self, RunEvent::CondFailed { bp: i, error })?,
            }
        }
        let b = &mut self.bps.list[i];
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
}
