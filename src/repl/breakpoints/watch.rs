//! watch: hardware watchpoints (the tracer's `hwbreak.rs`) as the session
//! sets, reports and ends them.
//!
//! A stop shows the goroutine and the line of the instruction that made
//! the access: the thread stands after it, so the instruction that ends at
//! the stopped pc is found by decoding its function from the entry (Go
//! text holds no data), and the old and new values of the watched bytes.
//! A watchpoint on a stack variable ends, with a message, when its frame
//! returns (a stepping breakpoint at the return address, in that frame,
//! added to every run), as in Delve; when the runtime has moved the
//! goroutine's stack (a stepping breakpoint at each return of
//! `runtime.copystack`, as Delve has), the watchpoint moves with it to the
//! same offset from the stack's top.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use iced_x86::{Decoder, DecoderOptions};

use crate::process::{Memory, MemoryExt, ReadFault};
use crate::repl::exec::{describe, hits_text};
use crate::session::Session;
use crate::tracer::{
    watchable, FrameCond, StackScope, TempAction, TempBreakpoint, WatchHit, WatchKind, WatchSpec,
    WatchpointInfo,
};
use crate::values::eval::Val;
use crate::values::{Place, Value};

/// Longest function decoded to find the writing instruction.
const MAX_DECODE: u64 = 256 << 10;

/// `watch [-r|-w|-rw] EXPR`
pub fn watch(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (kind, rest) = match args.split_first() {
        Some((&"-w", rest)) => (WatchKind::Write, rest),
        Some((&("-r" | "-rw"), rest)) => (WatchKind::ReadWrite, rest),
        Some((flag, _)) if flag.starts_with('-') && flag.len() > 1 => {
            bail!("watch: unknown flag {flag}; usage: watch [-r|-w|-rw] EXPR")
        }
        _ => (WatchKind::Write, args),
    };
    if rest.is_empty() {
        bail!("usage: watch [-r|-w|-rw] EXPR");
    }
    let expr = rest.join(" ");
    let spec = spec_for(s, &expr, kind)?;
    let (addr, size) = (spec.addr, spec.size);
    let stack = spec.stack.as_ref().map(|st| st.goid);
    let id =
        u32::try_from(s.bps.next_id()).map_err(|_| anyhow!("watch: out of breakpoint numbers"))?;
    let spec = WatchSpec {
        id: Some(id),
        ..spec
    };
    let w = s.control()?.process().add_watchpoint(spec)?;
    let how = match kind {
        WatchKind::Write => "write",
        WatchKind::ReadWrite => "read or write (x86 cannot trap reads alone)",
    };
    write!(
        out,
        "Watchpoint {} set at {addr:#x} on {expr} ({how}, {size} byte(s)",
        w.id
    )?;
    match stack {
        Some(goid) => writeln!(
            out,
            "; on goroutine {goid}'s stack until its frame returns)"
        )?,
        None => writeln!(out, ")")?,
    }
    Ok(())
}

/// What to watch for `expr` in the selected frame: a variable in memory of
/// 1, 2, 4 or 8 bytes aligned to its size.
fn spec_for(s: &Session, expr: &str, kind: WatchKind) -> Result<WatchSpec> {
    let scope = s.scope()?;
    let v = scope.eval_text(expr).map_err(|e| anyhow!(e))?;
    let (ty, addr) = match v {
        Val::Typed(Value {
            ty,
            place: Place::Mem(addr),
        }) => (ty, addr),
        Val::Typed(Value {
            place: Place::Unavailable(why),
            ..
        }) => bail!("watch: {expr} cannot be watched: {why}"),
        _ => bail!("watch: {expr} is not a variable in memory: there is no address to watch"),
    };
    let size = scope.size(ty);
    if !watchable(addr, size) {
        bail!(
            "watch: {expr} is {size} byte(s) at {addr:#x}; a watchpoint covers 1, 2, 4 or 8 \
             bytes aligned to their size (watch a field or element of it)"
        );
    }
    let stack = stack_scope(s, addr)?;
    Ok(WatchSpec {
        addr,
        size: size as u8,
        kind,
        expr: expr.to_string(),
        ty: ty as u64,
        stack,
        id: None,
    })
}

/// `g.stack` is the first field of `runtime.g` in every release: lo, hi.
fn stack_bounds(mem: &dyn Memory, gp: u64) -> Option<(u64, u64)> {
    let lo = mem.read_u64(gp).ok()?;
    let hi = mem.read_u64(gp.checked_add(8)?).ok()?;
    (lo < hi).then_some((lo, hi))
}

/// The scope of a variable at `addr` on the selected goroutine's stack:
/// the selected physical frame, which ends at its return address.
fn stack_scope(s: &Session, addr: u64) -> Result<Option<StackScope>> {
    let g = s.current_g()?;
    let mem = s.target()?;
    let Some((lo, hi)) = stack_bounds(mem, g.gp) else {
        return Ok(None);
    };
    if !(lo..hi).contains(&addr) {
        return Ok(None);
    }
    let physical = (s.frame..g.frames.len())
        .find(|&i| !g.frames[i].inlined)
        .ok_or_else(|| anyhow!("watch: frame {} has no physical frame", s.frame))?;
    let caller = g.frames.get(physical + 1).ok_or_else(|| {
        anyhow!("watch: the variable's frame has no caller to return to; cannot tell when it ends")
    })?;
    let link = caller.pc.wrapping_sub(s.bias);
    let sp_delta = s
        .prog
        .binary()
        .pclntab()
        .ok()
        .and_then(|t| t.find_func(link).and_then(|f| f.sp_delta(link).ok()))
        .ok_or_else(|| anyhow!("watch: no frame information at the return address {link:#x}"))?;
    Ok(Some(StackScope {
        g: g.gp,
        goid: g.id,
        ret: caller.pc,
        frame: FrameCond {
            cfa: caller.fp,
            sp_delta: i64::from(sp_delta),
        },
        stack_hi: hi,
    }))
}

/// The watchpoints of a live session (none for a core).
fn all(s: &mut Session) -> Result<Vec<WatchpointInfo>> {
    Ok(s.control()?.process().watchpoints()?)
}

/// Stepping breakpoints that end stack watchpoints: one at each watched
/// frame's return address, for that goroutine and frame; and, while any is
/// set, one at each return of `runtime.copystack` (any goroutine: it runs
/// on g0), where the session moves them with their stack.
pub(in crate::repl) fn scope_temps(s: &mut Session) -> Result<Vec<TempBreakpoint>> {
    let ws = all(s)?;
    let mut temps: Vec<TempBreakpoint> = ws
        .iter()
        .filter_map(|w| w.spec.stack.as_ref())
        .map(|st| TempBreakpoint {
            addr: st.ret,
            g: st.g,
            frame: Some(st.frame),
            action: TempAction::Stop,
        })
        .collect();
    if !temps.is_empty() {
        temps.extend(copystack_returns(s).into_iter().map(|addr| TempBreakpoint {
            addr,
            g: 0,
            frame: None,
            action: TempAction::Stop,
        }));
    }
    Ok(temps)
}

/// Run-time addresses of the RET instructions of `runtime.copystack`,
/// decoded from its entry to the next function.
fn copystack_returns(s: &Session) -> Vec<u64> {
    let Ok(tab) = s.prog.binary().pclntab() else {
        return Vec::new();
    };
    let Some(f) = tab.func_by_name("runtime.copystack") else {
        return Vec::new();
    };
    let entry = f.entry();
    let Some(start) = entry.checked_add(s.bias) else {
        return Vec::new();
    };
    let Ok(target) = s.target() else {
        return Vec::new();
    };
    // Read what is mapped of the longest function decoded, in pages.
    let mut code = Vec::new();
    for page in 0..MAX_DECODE / 4096 {
        let mut buf = vec![0u8; 4096];
        let at = start.saturating_add(page * 4096);
        if target.read(at, &mut buf).is_err() {
            break;
        }
        code.extend_from_slice(&buf);
    }
    let mut d = Decoder::with_ip(64, &code, start, DecoderOptions::NONE);
    let mut rets = Vec::new();
    while d.can_decode() {
        let insn = d.decode();
        let link = insn.ip().wrapping_sub(s.bias);
        if insn.is_invalid() || tab.find_func(link).map(|g| g.entry()) != Some(entry) {
            break;
        }
        if insn.mnemonic() == iced_x86::Mnemonic::Ret {
            rets.push(insn.ip());
        }
    }
    rets
}

/// Whether thread `tid` stopped at a return of `runtime.copystack` (a stop
/// that only moves stack watchpoints).
pub(in crate::repl) fn at_resize_sentinel(s: &Session, tid: i32) -> bool {
    let Ok(t) = s.target() else { return false };
    let Some(pc) = t
        .threads()
        .iter()
        .find(|t| t.tid == tid)
        .map(|t| t.regs.rip)
    else {
        return false;
    };
    copystack_returns(s).contains(&pc)
}

/// After a stop: clears the stack watchpoints whose frame the stopped
/// goroutine has just returned from (saying so), and moves those whose
/// goroutine's stack the runtime copied. Returns the ids of those it
/// cleared or moved.
pub(in crate::repl) fn after_stop(s: &mut Session, out: &mut dyn Write) -> Result<Vec<u32>> {
    let mut changed = Vec::new();
    let here = s
        .current_g()
        .ok()
        .and_then(|g| Some((g.gp, g.frames.first()?.pc)));
    for w in all(s)? {
        let Some(st) = &w.spec.stack else { continue };
        if here == Some((st.g, st.ret)) {
            s.control()?.process().remove_watchpoint(w.id)?;
            writeln!(out, "Watchpoint {} went out of scope and was cleared", w.id)?;
            changed.push(w.id);
            continue;
        }
        let bounds = stack_bounds(s.target()?, st.g);
        let Some((_, hi)) = bounds.filter(|&(_, hi)| hi != st.stack_hi) else {
            continue;
        };
        changed.push(w.id);
        // The same offset from the top of the new stack (Delve's way).
        let moved = hi
            .checked_sub(st.stack_hi)
            .and_then(|up| w.spec.addr.checked_add(up))
            .or_else(|| {
                st.stack_hi
                    .checked_sub(hi)
                    .and_then(|down| w.spec.addr.checked_sub(down))
            });
        match moved {
            Some(addr) if s.control()?.process().move_watchpoint(w.id, addr, hi)? => {
                writeln!(
                    out,
                    "Watchpoint {} moved to {addr:#x} with goroutine {}'s stack",
                    w.id, st.goid
                )?;
            }
            _ => {
                s.control()?.process().remove_watchpoint(w.id)?;
                writeln!(
                    out,
                    "Watchpoint {} was cleared: goroutine {}'s stack moved",
                    w.id, st.goid
                )?;
            }
        }
    }
    Ok(changed)
}

/// Shows a watchpoint's stop: the access, its goroutine, old and new value.
pub(in crate::repl) fn report_hit(
    s: &mut Session,
    hit: WatchHit,
    out: &mut dyn Write,
) -> Result<()> {
    let goid = s.select_thread(hit.tid);
    let w = match goid {
        Some(g) => s.control()?.process().record_watch_hit(hit.id, g)?,
        None => all(s)?.into_iter().find(|w| w.id == hit.id),
    };
    let Some(w) = w else {
        bail!("watchpoint {} fired but is no longer set", hit.id);
    };
    let pc = s
        .target()?
        .threads()
        .iter()
        .find(|t| t.tid == hit.tid)
        .map(|t| t.regs.rip)
        .ok_or_else(|| anyhow!("thread {} is gone", hit.tid))?;
    let at = access_pc(s, pc).unwrap_or(pc);
    let who = goid.map_or_else(
        || format!("thread {}", hit.tid),
        |g| format!("goroutine {g}"),
    );
    writeln!(
        out,
        "> [watchpoint {} on {}] [{who}] {} ({}) (PC: {pc:#x})",
        w.id,
        w.spec.expr,
        describe(s, at),
        hits_text(&w.hits, w.total),
    )?;
    writeln!(out, "\told value: {}", value_text(s, &w, &hit.old))?;
    writeln!(out, "\tnew value: {}", value_text(s, &w, &hit.new))?;
    let link = at.wrapping_sub(s.bias);
    let frame = s
        .prog
        .binary()
        .pclntab()
        .ok()
        .and_then(|t| t.find_func(link))
        .and_then(|f| f.source_frames(link).ok())
        .and_then(|v| v.into_iter().next());
    if let Some(sf) = frame {
        let cx = crate::repl::source::context(s);
        if let Err(e) =
            crate::repl::source::write_listing(&cx, out, sf.file, sf.line, Some(sf.line))
        {
            writeln!(out, "   ({e})")?;
        }
    }
    Ok(())
}

/// The watched value formatted from `bytes` (the rest of memory as it is).
fn value_text(s: &Session, w: &WatchpointInfo, bytes: &[u8]) -> String {
    if bytes.len() != usize::from(w.spec.size) {
        return "(unreadable)".into();
    }
    let Ok(mut scope) = s.scope() else {
        return "(no scope)".into();
    };
    let overlay = Overlay {
        base: scope.mem,
        addr: w.spec.addr,
        bytes,
    };
    scope.mem = &overlay;
    let Ok(ty) = usize::try_from(w.spec.ty) else {
        return "(unreadable)".into();
    };
    let v = Val::Typed(Value {
        ty,
        place: Place::Mem(w.spec.addr),
    });
    scope
        .show(&v, None)
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// Memory with the watched bytes replaced by a copy (the old value).
struct Overlay<'a> {
    base: &'a dyn Memory,
    addr: u64,
    bytes: &'a [u8],
}

impl Memory for Overlay<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let end = addr.checked_add(buf.len() as u64).ok_or(ReadFault {
            addr,
            len: buf.len(),
        })?;
        let wend = self.addr.saturating_add(self.bytes.len() as u64);
        if addr >= self.addr && end <= wend {
            let from = (addr - self.addr) as usize;
            buf.copy_from_slice(&self.bytes[from..from + buf.len()]);
            return Ok(());
        }
        self.base.read(addr, buf)?;
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            if (self.addr..wend).contains(&a) {
                *b = self.bytes[(a - self.addr) as usize];
            }
        }
        Ok(())
    }
}

/// The pc of the instruction that ends at `pc` (the access a data
/// breakpoint trapped after), decoded from its function's entry.
fn access_pc(s: &Session, pc: u64) -> Option<u64> {
    let link = pc.checked_sub(s.bias)?;
    let tab = s.prog.binary().pclntab().ok()?;
    let entry = tab.find_func(link)?.entry().checked_add(s.bias)?;
    let len = pc
        .checked_sub(entry)
        .filter(|&n| n > 0 && n <= MAX_DECODE)?;
    let code = s.target().ok()?.read_vec(entry, len as usize).ok()?;
    let mut d = Decoder::with_ip(64, &code, entry, DecoderOptions::NONE);
    let mut last = None;
    while d.can_decode() {
        let insn = d.decode();
        if insn.is_invalid() {
            return None;
        }
        if insn.next_ip() == pc {
            last = Some(insn.ip());
        }
    }
    last
}

/// Lines for `breakpoints`.
pub(in crate::repl) fn list(s: &mut Session, out: &mut dyn Write) -> Result<usize> {
    let ws = all(s)?;
    for w in &ws {
        let how = match w.spec.kind {
            WatchKind::Write => "write",
            WatchKind::ReadWrite => "read or write",
        };
        writeln!(
            out,
            "Watchpoint {} at {:#x} on {} ({how}, {} byte(s)) ({})",
            w.id,
            w.spec.addr,
            w.spec.expr,
            w.spec.size,
            hits_text(&w.hits, w.total)
        )?;
        if let Some(st) = &w.spec.stack {
            writeln!(
                out,
                "\ton goroutine {}'s stack until its frame returns",
                st.goid
            )?;
        }
    }
    Ok(ws.len())
}

/// `clear N` for a watchpoint: Some when `id` was one.
pub(in crate::repl) fn clear(s: &mut Session, id: u32, out: &mut dyn Write) -> Result<bool> {
    let Some(w) = s.control()?.process().remove_watchpoint(id)? else {
        return Ok(false);
    };
    writeln!(
        out,
        "Watchpoint {} cleared at {:#x} on {}",
        w.id, w.spec.addr, w.spec.expr
    )?;
    Ok(true)
}

/// The watchpoints' ids, which breakpoints must not take.
pub(in crate::repl) fn ids(s: &mut Session) -> Result<Vec<i64>> {
    Ok(all(s)?.iter().map(|w| i64::from(w.id)).collect())
}

/// `clearall`: every watchpoint too.
pub(in crate::repl) fn clear_all(s: &mut Session) -> Result<()> {
    for w in all(s)? {
        s.control()?.process().remove_watchpoint(w.id)?;
    }
    Ok(())
}
