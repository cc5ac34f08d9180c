//! Where a logical breakpoint stands and how its int3s come and go: a
//! function's out-of-line copy and every inlined copy (pclntab's inline
//! trees), the current line (bare `break`), `+N`/`-N` lines from it; and
//! the `unrecovered-panic` / `fatal-throw` breakpoints set at attach.

use super::breakpoints::{Logical, FATAL_THROW, UNRECOVERED_PANIC};
use super::error::{Result, SessionError};
use super::{Session, Warning};

/// Inlined copies of one function a breakpoint takes at most (a hostile
/// table could list millions).
const MAX_COPIES: usize = 4096;

/// What the runtime calls when a panic is not recovered: `fatalpanic`
/// (every supported release; `startpanic` before 1.11).
const PANIC_FUNCS: [&str; 2] = ["runtime.fatalpanic", "runtime.startpanic"];
/// Where a fatal error begins: `throw` (the runtime's own errors, every
/// release) and `fatal` (errors of the program, as concurrent map writes
/// or unlocking an unlocked mutex; go1.19 and later). Delve breaks at
/// both; its `winthrow` and `fatalsignal` are not in Linux builds.
const THROW_FUNCS: [&str; 2] = ["runtime.throw", "runtime.fatal"];

impl Session<'_> {
    /// The run-time addresses a location names: for a function, its body
    /// after the prologue and the first pc of every inlined copy; for a
    /// line, one pc; with no location, the selected frame's line; `+N` /
    /// `-N` lines from it.
    pub(crate) fn resolve_locations(&self, loc: Option<&str>) -> Result<Vec<u64>> {
        let frame_line = || -> Result<(String, u32)> {
            let f = self.current_frame()?;
            Ok((f.file.to_string(), f.line))
        };
        let Some(loc) = loc else {
            let (file, line) = frame_line()?;
            return Ok(vec![self.resolve_location(&format!("{file}:{line}"))?]);
        };
        if let Some(sign @ ('+' | '-')) = loc.chars().next() {
            let n: u32 = loc[1..]
                .parse()
                .map_err(|_| SessionError::NotALineOffset(loc.to_string()))?;
            let (file, line) = frame_line()?;
            let to = if sign == '+' {
                line.checked_add(n)
            } else {
                line.checked_sub(n).filter(|&l| l > 0)
            }
            .ok_or_else(|| SessionError::NoSuchLine(loc.to_string()))?;
            return Ok(vec![self.resolve_location(&format!("{file}:{to}"))?]);
        }
        if loc.starts_with('*') || loc.contains(':') || loc.parse::<u32>().is_ok() {
            return Ok(vec![self.resolve_location(loc)?]);
        }
        let tab = self.prog.binary().pclntab()?;
        let mut pcs = Vec::new();
        // As written, else in package main (`b tick` is `b main.tick`).
        for name in [loc.to_string(), format!("main.{loc}")] {
            if let Some(f) = tab.func_by_name(&name) {
                pcs.push(self.body_pc(&f)? + self.bias);
            }
            pcs.extend(
                self.inlined_copies(&name)
                    .into_iter()
                    .map(|pc| pc + self.bias),
            );
            if !pcs.is_empty() {
                break;
            }
        }
        if pcs.is_empty() {
            return Err(SessionError::NoLocation(loc.to_string()));
        }
        pcs.sort_unstable();
        pcs.dedup();
        Ok(pcs)
    }

    /// The out-of-line function a location names, if it names one by
    /// name (not a line, an address or an offset).
    pub(crate) fn function_named(&self, loc: &str) -> Option<crate::binary::Func<'_>> {
        if loc.starts_with(['*', '+', '-']) || loc.contains(':') || loc.parse::<u32>().is_ok() {
            return None;
        }
        let tab = self.prog.binary().pclntab().ok()?;
        tab.func_by_name(loc)
            .or_else(|| tab.func_by_name(&format!("main.{loc}")))
    }

    /// Link-time first pcs of every inlined copy of `name`.
    fn inlined_copies(&self, name: &str) -> Vec<u64> {
        let Ok(tab) = self.prog.binary().pclntab() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in tab.functions() {
            if let Ok(pcs) = f.inlined_entries(name) {
                out.extend(pcs);
            }
            if out.len() >= MAX_COPIES {
                out.truncate(MAX_COPIES);
                break;
            }
        }
        out
    }

    /// Puts an int3 at each of `b`'s addresses (none stays on failure).
    pub(crate) fn arm_logical(&mut self, b: &mut Logical) -> Result<()> {
        let mut phys = Vec::new();
        for &addr in b.addrs.iter().chain(&b.returns) {
            match self.control()?.add_breakpoint(addr) {
                Ok(p) => phys.push(p.id),
                Err(e) => {
                    for id in phys {
                        self.control()?.remove_breakpoint(id)?;
                    }
                    return Err(e);
                }
            }
        }
        b.phys = phys;
        b.enabled = true;
        Ok(())
    }

    /// Takes `b`'s int3s out of the tracer's table.
    pub(crate) fn disarm_logical(&mut self, b: &mut Logical) -> Result<()> {
        for id in std::mem::take(&mut b.phys) {
            self.control()?.remove_breakpoint(id)?;
        }
        b.enabled = false;
        Ok(())
    }

    /// `unrecovered-panic` (-1) and `runtime-fatal-throw` (-2), as Delve sets them
    /// at attach, so that a dying program stops while its goroutines are
    /// still there. A failure is a warning (in [`Session::warnings`]): the
    /// session goes on without.
    pub(crate) fn set_runtime_breakpoints(&mut self) {
        if self.control().is_err() {
            return;
        }
        for (id, name, funcs) in [
            (-1, UNRECOVERED_PANIC, &PANIC_FUNCS[..]),
            (-2, FATAL_THROW, &THROW_FUNCS[..]),
        ] {
            let Ok(tab) = self.prog.binary().pclntab() else {
                return;
            };
            // The entry itself: the runtime's own prologue may grow the
            // stack, but these run on a stack that has room, and the
            // arguments are still where the call put them.
            let addrs: Vec<u64> = funcs
                .iter()
                .filter_map(|n| tab.func_by_name(n))
                .map(|f| f.entry() + self.bias)
                .collect();
            if addrs.is_empty() {
                continue;
            }
            let mut b = Logical {
                id,
                name: Some(name.to_string()),
                addrs,
                ..Default::default()
            };
            match self.arm_logical(&mut b) {
                Ok(()) => self.bps.insert(b),
                Err(error) => self
                    .warnings
                    .push(Warning::NoRuntimeBreakpoint { name, error }),
            }
        }
    }
}

impl Session<'_> {
    /// A breakpoint at `loc` (a location as `break` takes it), stopping
    /// when `cond` holds and `hitcond` says so: its id. What a front end
    /// that sets breakpoints by source line asks for (DAP's
    /// `setBreakpoints`).
    pub fn set_breakpoint(
        &mut self,
        loc: &str,
        cond: Option<String>,
        hitcond: Option<super::breakpoints::HitCond>,
    ) -> Result<i64> {
        if let Some(c) = &cond {
            super::cond::parse(c)?;
        }
        let addrs = self.resolve_locations(Some(loc))?;
        let mut b = Logical {
            addrs,
            cond,
            hitcond,
            ..Default::default()
        };
        self.arm_logical(&mut b)?;
        b.id = self.bps.next_id();
        let id = b.id;
        self.bps.insert(b);
        Ok(id)
    }

    /// Arms (`on`) or disarms breakpoint `word` (an id or a name, as
    /// `toggle` takes it): its int3s in or out. Its label, for a front end
    /// to say what changed.
    pub fn set_enabled(&mut self, word: &str, on: bool) -> Result<String> {
        self.control()?;
        let i = self.bps.find(word)?;
        let mut b = self.bps.list.remove(i);
        let done = match (b.enabled, on) {
            (false, true) => self.arm_logical(&mut b),
            (true, false) => self.disarm_logical(&mut b),
            _ => Ok(()),
        };
        let label = b.name.clone().unwrap_or_else(|| b.id.to_string());
        self.bps.insert(b);
        done.map(|()| label)
    }

    /// Takes breakpoint `id` out (its int3s first: on failure it stays).
    pub fn clear_breakpoint(&mut self, id: i64) -> Result<()> {
        let i = self.bps.find(&id.to_string())?;
        let mut b = self.bps.list.remove(i);
        if let Err(e) = self.disarm_logical(&mut b) {
            self.bps.insert(b);
            return Err(e);
        }
        Ok(())
    }
}
