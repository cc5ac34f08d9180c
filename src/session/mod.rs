//! The session engine: one debugging session over one target (a live
//! process or a core), driven by a front end (`repl/`, the terminal;
//! `dap/`, an editor) through typed requests and results. Nothing here
//! formats text for a user or touches a terminal.
//!
//! - this file: the [`Session`] (what it is attached to, the goroutines of
//!   the current stop, frames decoded on demand, and the selected goroutine
//!   and frame);
//! - `backend.rs`: where the process state comes from ([`LiveBackend`],
//!   [`CoreBackend`]) and what only a live process can do ([`Control`]);
//! - `goroutines.rs`: the goroutines of one stop;
//! - `breakpoints.rs`: the breakpoints as the user knows them;
//!   `bpset.rs`: where they stand and the runtime's own set at attach;
//! - `locate.rs`: locations and the temporary breakpoints of a step
//!   (`stepinto.rs`: into calls);
//! - `run.rs`: running to a stop worth showing, and the [`Stop`] that
//!   ends a run (conditions: `cond.rs`; the cap on their cost:
//!   `slowdown.rs`);
//! - `code.rs`: machine code disassembled, memory read with what could
//!   not be, the binary's source files;
//! - `commands.rs`: [`TextCommands`], the terminal's commands lent to
//!   another front end;
//! - `error.rs`: [`SessionError`].
//!
//! Requests see the target only through [`Session::target`] (the read-only
//! [`Target`] a live process and a core file both give) and the goroutines
//! of the current stop. What only a live process can do sits behind
//! [`Backend::control`], which a core backend answers with `None`.

mod backend;
mod bpset;
pub mod breakpoints;
mod code;
mod commands;
mod cond;
mod error;
mod goroutines;
mod locate;
mod run;
mod slowdown;
mod stepinto;

use crate::binary::dwarf::DwarfError;
use crate::binary::dwarf_vars::VarIndex;
use crate::corefile::writer::CoreStats;
use crate::goruntime::{Frame, GoProgram, Goroutine};
use crate::values::limits::Limits;
use crate::values::Scope;
use std::path::Path;

use crate::process::{Target, Thread};
use crate::tracer::{RunPlan, StopReason};

pub use backend::{Backend, Control, CoreBackend, LiveBackend};
pub use code::{Instr, MAX_CODE, MAX_MEMORY};
pub use commands::TextCommands;
pub use cond::{parse as parse_condition, Cond};
pub use error::{Result, SessionError};
use goroutines::StopGoroutines;
pub use locate::StepKind;
pub use run::{AfterInterrupt, RunEvent, RunHooks, Stop};
pub use slowdown::{Verdict, CAP as SLOWDOWN_CAP, WINDOW as SLOWDOWN_WINDOW};
pub(crate) use stepinto::branches;

/// One interactive session over one target.
pub struct Session<'a> {
    pub(crate) prog: &'a GoProgram,
    backend: Box<dyn Backend + 'a>,
    /// Run-time minus link-time address of the executable.
    pub(crate) bias: u64,
    /// The goroutines of the current stop (headers read at each stop,
    /// frames decoded when asked for).
    pub(crate) gs: StopGoroutines,
    /// The selected goroutine id, when the dump has any goroutine.
    pub(crate) current: Option<u64>,
    /// The selected frame of the current goroutine (0 = innermost).
    pub(crate) frame: usize,
    /// Set by `quit`/`detach`.
    pub(crate) done: bool,
    /// Set when the process ended under the session (nothing to detach).
    pub(crate) ended: bool,
    /// The process was stopped by job control (SIGSTOP, Ctrl-Z) when goat
    /// attached. It cannot run until it gets SIGCONT, so commands that run
    /// it are refused rather than wait for ever, and the detach leaves it
    /// stopped as it was (the kernel puts it back in its group stop).
    pub job_stopped: bool,
    /// The DWARF variable index, built on first use (per binary).
    vars: std::cell::OnceCell<Result<VarIndex, DwarfError>>,
    /// DWARF's `prologue_end` and `is_stmt` addresses, read on first use.
    pub(crate) dwarf_lines: std::cell::OnceCell<crate::binary::lines::DwarfLines>,
    /// The breakpoints as the user knows them (the tracer has the int3s).
    pub(crate) bps: breakpoints::BpTable,
    /// `display -a` expressions, shown at every stop; `display -d N`
    /// empties slot N (the numbers of the others stay, as in Delve).
    pub(crate) displays: Vec<Option<String>>,
    /// How much of a value the front end shows (strings, elements, depth).
    pub limits: Limits,
    /// What went wrong without ending the session, for the front end to
    /// show (and clear).
    pub warnings: Vec<Warning>,
}

/// Something the session did without, told to the front end.
#[derive(Debug)]
pub enum Warning {
    /// The runtime's `unrecovered-panic` or `runtime-fatal-throw`
    /// breakpoint could not be set: a dying program will not stop.
    NoRuntimeBreakpoint {
        name: &'static str,
        error: SessionError,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::NoRuntimeBreakpoint { name, error } => {
                write!(f, "no {name} breakpoint: {error}")?;
                let mut cause = std::error::Error::source(error);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

impl<'a> Session<'a> {
    /// Takes the first capture of `backend`'s stopped target and selects a
    /// goroutine: the one on the thread a crash signalled, else the one on
    /// the main thread, else goroutine 1, else the first.
    pub fn new(
        prog: &'a GoProgram,
        backend: Box<dyn Backend + 'a>,
        bias: u64,
    ) -> Result<Session<'a>> {
        let mut s = Session {
            prog,
            backend,
            bias,
            gs: StopGoroutines::empty(),
            current: None,
            frame: 0,
            done: false,
            ended: false,
            job_stopped: false,
            vars: std::cell::OnceCell::new(),
            dwarf_lines: std::cell::OnceCell::new(),
            bps: Default::default(),
            displays: Vec::new(),
            limits: Limits::DEFAULT,
            warnings: Vec::new(),
        };
        s.load()?;
        s.set_runtime_breakpoints();
        Ok(s)
    }

    /// Runs the target under `plan` and loads the new stop. A target that
    /// exited ends the session. A call entered by a step is not loaded: the
    /// caller runs on at once (and must [`load`](Self::load) if it does not).
    pub(crate) fn run(&mut self, plan: RunPlan) -> Result<StopReason> {
        self.may_run()?;
        let reason = match self.control()?.run(plan) {
            Ok(r) => r,
            Err(e) => {
                if self.control()?.breakpoints().is_err() || self.backend.target().is_none() {
                    self.done = true;
                    self.ended = true;
                    return Err(SessionError::TargetGone(Box::new(e)));
                }
                self.load()?;
                return Err(e);
            }
        };
        match reason {
            StopReason::CallEntered { .. } => {}
            // Another program now: nothing of this one is to be shown.
            StopReason::Exec { .. } => {
                self.done = true;
                self.gs = StopGoroutines::empty();
                self.current = None;
            }
            _ => self.load()?,
        }
        Ok(reason)
    }

    /// Selects the goroutine running on thread `tid`, if one does.
    pub(crate) fn select_thread(&mut self, tid: i32) -> Option<u64> {
        let id = self
            .gs
            .headers()
            .iter()
            .find(|g| g.m.is_some_and(|m| m.tid == i64::from(tid)))
            .map(|g| g.id)?;
        self.current = Some(id);
        self.frame = 0;
        Some(id)
    }

    /// Reads the goroutines of the current stop (their headers: frames
    /// are decoded when a command asks), and picks a goroutine.
    pub(crate) fn load(&mut self) -> Result<()> {
        let t = self.target()?;
        let globals = self.prog.locate(t, self.bias)?;
        let now = self.backend.now();
        let cap = self
            .prog
            .capture_headers(t, &globals, now)
            .map_err(SessionError::ReadGoroutines)?;
        let heads = self.prog.decode_headers(t, &cap, self.bias)?;
        let main_tid = t.pid();
        let signalled = self.backend.signalled_thread();
        self.gs = StopGoroutines::new(heads, cap, Some(globals));
        let on_thread = |tid: Option<i32>| {
            let tid = i64::from(tid?);
            self.gs
                .headers()
                .iter()
                .find(|g| g.m.is_some_and(|m| m.tid == tid))
                .map(|g| g.id)
        };
        let keep = self.current.filter(|&id| self.gs.index_of(id).is_some());
        self.current = keep
            .or_else(|| on_thread(signalled))
            .or_else(|| on_thread(main_tid))
            .or_else(|| self.gs.index_of(1).map(|_| 1))
            .or_else(|| self.gs.headers().first().map(|g| g.id));
        self.frame = 0;
        Ok(())
    }

    /// The frozen target, or an error while it runs.
    pub fn target(&self) -> Result<&dyn Target> {
        self.backend.target().ok_or(SessionError::Running)
    }

    /// Execution control, or an error for a backend without it (a core).
    pub fn control(&mut self) -> Result<&mut dyn Control> {
        self.backend.control().ok_or(SessionError::CoreCannotRun)
    }

    /// Execution control for a command that lets the target run: refused
    /// for a core, and for a process stopped by job control.
    pub(crate) fn may_run(&mut self) -> Result<&mut dyn Control> {
        if self.job_stopped {
            let pid = self.pid().map_or("PID".to_string(), |p| p.to_string());
            return Err(SessionError::JobStopped { pid });
        }
        self.control()
    }

    /// Lets the target run and stops it again; the caches start afresh.
    pub fn resume_and_stop(&mut self) -> Result<()> {
        self.may_run()?.resume_and_stop()?;
        self.load()
    }

    pub fn pid(&self) -> Option<i32> {
        self.backend.pid()
    }

    /// Writes a core of the current stop (the target stays stopped).
    pub fn write_core(&self, dest: &Path, force: bool) -> Result<CoreStats> {
        self.backend.write_core(dest, force)
    }

    /// The core file of a post-mortem session.
    pub fn core_path(&self) -> Option<&Path> {
        self.backend.core_path()
    }

    /// How many goroutines the current stop has.
    pub fn goroutine_count(&self) -> usize {
        self.gs.len()
    }

    /// The target's Go version (`go1.24.11`).
    pub fn go_version(&self) -> &str {
        self.gs.go_version()
    }

    /// Every goroutine's header: frames *not* decoded (see
    /// [`StopGoroutines::headers`]); [`Self::goroutine`] has them.
    pub(crate) fn headers(&self) -> &[Goroutine] {
        self.gs.headers()
    }

    /// Goroutine `i` of [`Self::headers`], with its frames.
    pub(crate) fn goroutine_at(&self, i: usize) -> &Goroutine {
        self.gs.full(i, |head| self.decode_one(head))
    }

    /// Decodes every goroutine's frames at once (for the commands that
    /// look at every stack): one copy of every stack, decoded on every
    /// core, much faster than one goroutine at a time.
    pub(crate) fn decode_all(&self) -> Result<()> {
        if self.gs.all_decoded() {
            return Ok(());
        }
        let goroutines = self.stacks_decoder().decode(&self.copy_stacks()?)?;
        self.gs.fill(goroutines);
        Ok(())
    }

    /// Every goroutine's stack copied from the stopped target, to be
    /// decoded later, on any thread, while the target runs again: the
    /// pause of `goat stacks --mode stop`, for a front end that looks at
    /// a running program (DAP's `threads` during a run, see
    /// [`RunHooks::interrupted`]).
    pub fn copy_stacks(&self) -> Result<StacksCopy> {
        let t = self.target()?;
        let globals = self.gs.globals.ok_or(SessionError::NoGoroutinesRead)?;
        let prepared = self.prog.prepare_capture(t, &globals);
        let cap = self
            .prog
            .capture(t, &globals, self.gs.cap.now, prepared)
            .map_err(SessionError::ReadStacks)?;
        Ok(StacksCopy { cap })
    }

    /// What decodes this session's [`StacksCopy`]s, on any thread.
    pub fn stacks_decoder(&self) -> StacksDecoder<'a> {
        StacksDecoder {
            prog: self.prog,
            bias: self.bias,
        }
    }

    /// `head` with its frames, read from the stopped target; what could not
    /// be read is said in `unreadable`.
    fn decode_one(&self, head: &Goroutine) -> Goroutine {
        let failed = |why: String| Goroutine {
            unreadable: Some(why),
            ..head.clone()
        };
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        match self.prog.decode_one(&self.gs.cap, t, self.bias, head.gp) {
            Ok(Some(g)) => g,
            Ok(None) => failed(format!("runtime.g at {:#x} is dead now", head.gp)),
            Err(e) => failed(e.to_string()),
        }
    }

    /// The target's monotonic clock at this stop, when known.
    pub(crate) fn now(&self) -> Option<i64> {
        self.gs.cap.now
    }

    /// The selected goroutine id (for the prompt).
    pub fn current_goroutine(&self) -> Option<u64> {
        self.current
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Goroutine `id` with its frames (decoded on first use).
    pub(crate) fn goroutine(&self, id: u64) -> Option<&Goroutine> {
        self.gs.index_of(id).map(|i| self.goroutine_at(i))
    }

    /// The selected goroutine, or an error saying there is none.
    pub(crate) fn current_g(&self) -> Result<&Goroutine> {
        self.current
            .and_then(|id| self.goroutine(id))
            .ok_or(SessionError::NoGoroutineSelected)
    }

    /// The selected frame of the selected goroutine.
    pub(crate) fn current_frame(&self) -> Result<&Frame> {
        let g = self.current_g()?;
        g.frames.get(self.frame).ok_or(SessionError::NoFrame {
            g: g.id,
            frame: self.frame,
        })
    }

    /// The variables' scope of the selected frame: its pc, CFA and, for the
    /// innermost frame of a goroutine running on a thread, the registers.
    pub(crate) fn scope(&self) -> Result<Scope<'_>> {
        // Its errors in the order they always came: no DWARF first.
        self.var_index()?;
        let g = self.current_g()?;
        self.scope_at(g.id, self.frame)
    }

    /// The variables' scope of frame `frame` (0 = innermost) of goroutine
    /// `id`, the selection unchanged: what a front end that names frames
    /// itself asks for (DAP's `scopes`, `evaluate` with a `frameId`).
    pub fn scope_at(&self, id: u64, frame: usize) -> Result<Scope<'_>> {
        let index = self.var_index()?;
        let g = self.goroutine(id).ok_or(SessionError::NoGoroutine(id))?;
        let selected = g
            .frames
            .get(frame)
            .ok_or(SessionError::NoFrame { g: g.id, frame })?;
        // An inlined call shares the physical frame that follows it.
        let physical = (frame..g.frames.len())
            .find(|&i| !g.frames[i].inlined)
            .ok_or(SessionError::NoPhysicalFrame(frame))?;
        let f = &g.frames[physical];
        // Innermost physical frame: only inlined calls stand before it.
        let top = g.frames[..physical].iter().all(|x| x.inlined);
        let regs = self
            .thread_of(g)
            .filter(|t| top && t.regs.rip == f.pc)
            .map(|t| t.regs);
        let link = f.pc.wrapping_sub(self.bias);
        Ok(Scope {
            mem: self.target()?,
            index,
            bias: self.bias,
            // A caller's pc is a return address: look up the call itself.
            pc: if top { link } else { link.wrapping_sub(1) },
            cfa: f.fp,
            inline_depth: physical - frame,
            ret_pc: (!top).then_some(link),
            function: Some(selected.function.to_string()),
            line: Some(u64::from(selected.line)),
            types: self.prog.binary().pclntab().ok().and_then(|t| t.types()),
            regs,
            curg: Some(g.gp),
            limits: self.limits,
            budget: Default::default(),
        })
    }

    /// The DWARF variable index (built on first use), or why there is none.
    pub(crate) fn var_index(&self) -> Result<&VarIndex> {
        self.vars
            .get_or_init(|| VarIndex::load(self.prog.binary().debug_data()))
            .as_ref()
            .map_err(|e| SessionError::NoVariables(e.to_string()))
    }

    /// The thread the goroutine runs on, if it runs on one.
    pub(crate) fn thread_of(&self, g: &Goroutine) -> Option<&Thread> {
        let tid = g.m?.tid;
        self.backend
            .target()?
            .threads()
            .iter()
            .find(|t| i64::from(t.tid) == tid)
    }

    /// Selects frame `frame` (0 = innermost) of goroutine `id`: what a
    /// front end that names frames itself does before a command that
    /// reads the selected one.
    pub fn select_frame(&mut self, id: u64, frame: usize) -> Result<()> {
        let g = self.goroutine(id).ok_or(SessionError::NoGoroutine(id))?;
        if frame >= g.frames.len() {
            return Err(SessionError::NoFrame { g: id, frame });
        }
        self.current = Some(id);
        self.frame = frame;
        Ok(())
    }

    /// Selects goroutine `id` (and its innermost frame).
    pub(crate) fn select(&mut self, id: u64) -> Result<()> {
        if self.gs.index_of(id).is_none() {
            return Err(SessionError::NoGoroutine(id));
        }
        self.current = Some(id);
        self.frame = 0;
        Ok(())
    }

    /// `FUNC (FILE:LINE)` for a run-time pc in the executable, else the
    /// mapping it is in (`[vdso]`, a library), else `??`.
    pub(crate) fn symbolize(&self, pc: u64) -> String {
        let link = pc.wrapping_sub(self.bias);
        let tab = self.prog.binary().pclntab().ok();
        if let Some(f) = tab.and_then(|t| t.find_func(link)) {
            if let Some(sf) = f
                .source_frames(link)
                .ok()
                .and_then(|v| v.into_iter().next())
            {
                return format!("{} ({}:{})", sf.function, base_name(sf.file), sf.line);
            }
            if let Ok(name) = f.name() {
                return name.to_string();
            }
        }
        let mapping = self.backend.target().and_then(|t| {
            t.mappings()
                .iter()
                .find(|m| m.start <= pc && pc < m.end)
                .and_then(|m| m.path.clone())
        });
        match mapping {
            Some(path) => format!("?? (in {path})"),
            None => "??".to_string(),
        }
    }

    /// What a location can be, for completion: every function name and
    /// every source file's base name followed by `:`.
    pub fn location_names(&self) -> Vec<String> {
        let Ok(tab) = self.prog.binary().pclntab() else {
            return Vec::new();
        };
        let mut names = std::collections::BTreeSet::new();
        for f in tab.functions() {
            if let Ok(name) = f.name() {
                names.insert(name.to_string());
            }
            if let Ok((file, _)) = f.file_line(f.entry()) {
                names.insert(format!("{}:", base_name(file)));
            }
        }
        names.into_iter().collect()
    }

    /// Ids of every goroutine and thread, for completion.
    pub fn ids(&self) -> (Vec<u64>, Vec<i32>) {
        let gs = self.gs.headers().iter().map(|g| g.id).collect();
        let ts = self
            .backend
            .target()
            .map(|t| t.threads().iter().map(|t| t.tid).collect())
            .unwrap_or_default();
        (gs, ts)
    }
}

/// Every goroutine's stack as one stop left it ([`Session::copy_stacks`]):
/// plain data, decoded without the target by a [`StacksDecoder`].
pub struct StacksCopy {
    cap: crate::goruntime::Capture,
}

/// What decodes a [`StacksCopy`] on any thread: the program, and where
/// it is loaded ([`Session::stacks_decoder`]).
#[derive(Clone, Copy)]
pub struct StacksDecoder<'a> {
    prog: &'a GoProgram,
    bias: u64,
}

impl StacksDecoder<'_> {
    /// Every goroutine of `copy` with its frames, in `allgs` order.
    pub fn decode(&self, copy: &StacksCopy) -> Result<Vec<Goroutine>> {
        Ok(self.prog.decode(&copy.cap, self.bias)?.goroutines)
    }
}

/// The last path component of a source file (`/src/app/main.go` → `main.go`).
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
