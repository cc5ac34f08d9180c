//! Where execution control puts its breakpoints: locations the user names
//! (`FUNC`, `FILE:LINE`, `LINE`, `*ADDR`), the first pc after a function's
//! prologue, and the temporary breakpoints of `next`, `step` and `stepout` (`step`'s
//! into calls: `stepinto.rs`).

use super::error::{Result, SessionError};
use super::Session;
use crate::binary::lines::{self, LineRow};
use crate::binary::Func;
use crate::tracer::{FrameCond, TempAction, TempBreakpoint};

/// `FILE:LINE`'s file matches `path` (a base name or a path suffix).
fn file_matches(path: &str, file: &str) -> bool {
    let file = file.trim_start_matches("./");
    path == file || path.ends_with(&format!("/{file}"))
}

impl Session<'_> {
    /// The run-time address of a breakpoint location.
    pub(crate) fn resolve_location(&self, loc: &str) -> Result<u64> {
        if let Some(addr) = loc.strip_prefix('*') {
            let a = addr.trim_start_matches("0x");
            return u64::from_str_radix(a, 16)
                .map_err(|_| SessionError::NotAnAddress(addr.to_string()));
        }
        let tab = self.prog.binary().pclntab()?;
        let (file, line) = match loc.rsplit_once(':') {
            Some((file, line)) => (file.to_string(), line),
            None if loc.parse::<u32>().is_ok() => {
                let f = self.current_frame()?;
                (f.file.to_string(), loc)
            }
            None => {
                let f = tab
                    .func_by_name(loc)
                    .or_else(|| tab.func_by_name(&format!("main.{loc}")))
                    .ok_or_else(|| SessionError::NoLocation(loc.to_string()))?;
                return Ok(self.body_pc(&f)? + self.bias);
            }
        };
        let line: u32 = line
            .parse()
            .map_err(|_| SessionError::NotALine(line.to_string()))?;
        // The lowest pc of the line in a function of that file, preferring
        // code that is not an inlined copy, then code past the prologue,
        // then a statement start (DWARF's is_stmt): the optimizer attributes
        // stray instructions to a line, such as an argument's spill in the
        // prologue to the `return` line, which is not where it runs.
        let stmts = &self.dwarf_lines().stmts;
        let mut best: Option<((bool, bool, bool, u64), Func<'_>)> = None;
        for f in tab.functions() {
            if !f
                .file_line(f.entry())
                .is_ok_and(|(path, _)| file_matches(path, &file))
            {
                continue;
            }
            let Ok(rows) = f.line_rows() else { continue };
            let mut rows = rows
                .into_iter()
                .filter(|r| r.line == line && file_matches(&r.file, &file))
                .peekable();
            if rows.peek().is_none() {
                continue;
            }
            // Once per function, and only for one that has the line.
            let body = self.body_pc(&f).unwrap_or(f.entry());
            for r in rows {
                let inlined = f.source_frames(r.start).map_or(true, |v| v.len() > 1);
                let in_prologue = r.start > f.entry() && r.start < body;
                let not_stmt = !stmts.is_empty() && stmts.binary_search(&r.start).is_err();
                let key = (inlined, in_prologue, not_stmt, r.start);
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, f));
                }
            }
        }
        let ((_, _, _, pc), f) = best.ok_or_else(|| SessionError::NoCode {
            file: file.clone(),
            line,
        })?;
        // The declaration line starts at the entry: break after the prologue.
        let pc = if pc == f.entry() {
            self.body_pc(&f)?
        } else {
            pc
        };
        Ok(pc + self.bias)
    }

    /// Link-time pc of `f`'s first instruction after the stack-growth
    /// check: DWARF's `prologue_end` (Go marks it for Delve), else the
    /// first pc where the pcsp table shows a frame, else the entry.
    pub(crate) fn body_pc(&self, f: &Func<'_>) -> Result<u64> {
        let entry = f.entry();
        let end = f.end()?;
        let ends = &self.dwarf_lines().prologue_ends;
        let i = ends.partition_point(|&a| a < entry);
        if let Some(&pc) = ends.get(i).filter(|&&a| a < end) {
            return Ok(pc);
        }
        Ok(f.frame_setup_pc()?.unwrap_or(entry))
    }

    fn dwarf_lines(&self) -> &lines::DwarfLines {
        self.dwarf_lines
            .get_or_init(|| lines::dwarf_lines(self.prog.binary().debug_data()))
    }

    /// Where `next` may stop in `f`: the statement starts DWARF marks, or
    /// without DWARF every start of a pclntab line row.
    fn stop_pcs(&self, f: &Func<'_>) -> Result<Vec<u64>> {
        let (entry, end) = (f.entry(), f.end()?);
        let stmts = &self.dwarf_lines().stmts;
        let lo = stmts.partition_point(|&a| a < entry);
        let hi = stmts.partition_point(|&a| a < end);
        if lo < hi {
            return Ok(stmts[lo..hi].to_vec());
        }
        Ok(f.line_rows()?.iter().map(|r| r.start).collect())
    }

    /// Offset of a thread's `g` from its fs_base.
    pub(crate) fn g_tls_offset(&self) -> i64 {
        let b = self.prog.binary();
        lines::g_tls_offset(b.data(), b.symbol("runtime.tlsg"))
    }

    /// The temporary breakpoints of `stepout` (`next`: with every line of
    /// the function; `step`: and the calls of the line).
    pub(crate) fn step_plan(&self, kind: StepKind) -> Result<Vec<TempBreakpoint>> {
        let g = self.current_g()?;
        let gp = g.gp;
        let tab = self.prog.binary().pclntab()?;
        // The innermost physical frame: inlined calls share it.
        let k = g
            .frames
            .iter()
            .position(|f| !f.inlined)
            .ok_or(SessionError::NoFrames(g.id))?;
        let top = &g.frames[k];
        let mut temps = Vec::new();
        // The caller's resume point, in the caller's frame.
        if let Some(caller) = g.frames.get(k + 1) {
            let link = caller.pc.wrapping_sub(self.bias);
            if let Some(cf) = tab.find_func(link) {
                temps.push(TempBreakpoint {
                    addr: caller.pc,
                    g: gp,
                    frame: Some(FrameCond {
                        cfa: caller.fp,
                        sp_delta: i64::from(cf.sp_delta(link)?),
                    }),
                    action: TempAction::Stop,
                });
            }
        }
        if kind == StepKind::Out {
            if temps.is_empty() {
                return Err(SessionError::NoCaller(top.function.to_string()));
            }
            return Ok(temps);
        }
        let pc = g.frames[0].pc.wrapping_sub(self.bias);
        let f = tab
            .find_func(pc)
            .ok_or(SessionError::NotInGo(g.frames[0].pc))?;
        let depth = k + 1;
        let (cur_file, cur_line) = (&*g.frames[0].file, g.frames[0].line);
        for pc in self.stop_pcs(&f)? {
            let frames = f.source_frames(pc).unwrap_or_default();
            // Inlined calls deeper than where we stand are stepped over.
            let d = frames.len().max(1);
            if d > depth {
                continue;
            }
            let here = frames.first().map(|sf| (sf.file, sf.line));
            if d == depth && here == Some((cur_file, cur_line)) {
                continue;
            }
            temps.push(TempBreakpoint {
                addr: pc + self.bias,
                g: gp,
                frame: Some(FrameCond {
                    cfa: top.fp,
                    sp_delta: i64::from(f.sp_delta(pc)?),
                }),
                action: TempAction::Stop,
            });
        }
        if kind == StepKind::Into {
            let rows: Vec<LineRow> = f
                .line_rows()?
                .into_iter()
                .filter(|r| r.file == cur_file && r.line == cur_line)
                .collect();
            temps.extend(self.call_temps(&f, &rows, gp, top.fp));
        }
        // Breakpoints at one address with different conditions all stay
        // (a recursive call's entry and a line of this frame).
        temps.sort_by_key(|t| (t.addr, t.action != TempAction::Stop));
        temps.dedup();
        Ok(temps)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Over,
    Into,
    Out,
}
