//! Deferred calls and frame offsets: `stack -defer`, `stack -offsets` and
//! `deferred [N]`, in Delve's layout.
//!
//! The calls come from the goroutine's `_defer` list, so defers the
//! compiler open-coded (at most 8 in a function, none in a loop) are not
//! seen, as in Delve. A compiler wrapper (a deferwrap closure) is shown
//! as the function it calls, as Delve shows it. Since Go 1.18 a deferred call is a closure and its
//! arguments are inside it: `deferred N` shows the call and its closure,
//! and does not run commands in the call's context as Delve's form does for
//! Go releases before 1.18.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::goruntime::defers::{self, Deferred};
use crate::goruntime::{Frame, Goroutine};
use crate::session::Session;

/// A deferwrap closure is a few instructions: more is not one.
const MAX_WRAPPER_BYTES: u64 = 512;

/// Where one deferred call stands: what is called and who deferred it.
struct Described {
    pc: u64,
    function: String,
    at: String,
    deferred_by: String,
}

/// A goroutine's deferred calls.
struct Pending {
    calls: Vec<Deferred>,
    /// For each frame, indices into `calls`.
    by_frame: Vec<Vec<usize>>,
    /// Why the list ended early, if it did.
    unreadable: Option<String>,
}

fn pending(s: &Session, g: &Goroutine) -> Result<Pending> {
    let list = s.prog.defers(s.target()?, g.gp);
    Ok(Pending {
        by_frame: defers::by_frame(&g.frames, &list.calls),
        calls: list.calls,
        unreadable: list.unreadable,
    })
}

/// The function a deferred call runs: its closure's, or for a compiler
/// wrapper (`F.deferwrap1`, `·dwrap·`) the first non-runtime function
/// the wrapper calls, as Delve unwraps them.
fn describe(s: &Session, d: &Deferred) -> Described {
    let bias = s.bias;
    let tab = s.prog.binary().pclntab().ok();
    let func_at = |pc: u64| {
        let f = tab?.find_func(pc.wrapping_sub(bias))?;
        Some((f.entry().wrapping_add(bias), f.name().ok()?.to_string()))
    };
    let (mut pc, mut function) = func_at(d.fn_pc).unwrap_or((d.fn_pc, "??".into()));
    // Delve unwraps what DWARF marks a trampoline; pclntab marks the same
    // functions with the wrapper funcID (1.19-1.21 name them F.funcN).
    let wrapper_id = s.prog.version().wrapper_func_id();
    let is_wrapper = tab
        .and_then(|t| t.find_func(d.fn_pc.wrapping_sub(bias)))
        .is_some_and(|f| Some(f.func_id()) == wrapper_id);
    if is_wrapper || function.contains(".deferwrap") || function.contains("·dwrap·") {
        if let Some((callee_pc, callee)) = wrapped_call(s, d.fn_pc).and_then(func_at) {
            pc = callee_pc;
            function = callee;
        }
    }
    let at = tab
        .and_then(|t| t.find_func(pc.wrapping_sub(bias)))
        .and_then(|f| f.file_line(f.entry()).ok())
        .map_or("?".into(), |(file, line)| {
            format!("{}:{line}", source_path(file))
        });
    let deferred_by = tab
        .and_then(|t| t.find_func(d.pc.wrapping_sub(bias)))
        .and_then(|f| {
            let (file, line) = f.file_line(d.pc.wrapping_sub(bias)).ok()?;
            Some(format!(
                "{} at {}:{line}",
                f.name().ok()?,
                source_path(file)
            ))
        })
        .unwrap_or_else(|| format!("?? at {:#x}", d.pc));
    Described {
        pc,
        function,
        at,
        deferred_by,
    }
}

fn source_path(file: &str) -> String {
    crate::repl::config::substitute(file).unwrap_or_else(|| file.to_string())
}

/// The target of the first call in the wrapper at `entry` to a function
/// outside the runtime.
fn wrapped_call(s: &Session, entry: u64) -> Option<u64> {
    let bias = s.bias;
    let tab = s.prog.binary().pclntab().ok()?;
    let (lo, hi) = tab.func_bounds(entry.wrapping_sub(bias))?;
    let len = hi.checked_sub(lo)?.min(MAX_WRAPPER_BYTES);
    let mut code = vec![0u8; len as usize];
    s.target().ok()?.read(entry, &mut code).ok()?;
    // Decoded at run-time addresses, so the targets are run-time too.
    crate::session::branches(&code, entry)
        .into_iter()
        .filter(|b| b.call)
        .filter_map(|b| b.target)
        .find(|&t| {
            tab.find_func(t.wrapping_sub(bias))
                .and_then(|f| f.name().ok())
                .is_some_and(|n| !n.starts_with("runtime."))
        })
}

/// `    defer N: 0xPC in FUNC` / `at FILE:LINE` / `deferred by F at
/// FILE:LINE`, each line after `pad`.
fn write_defer(out: &mut dyn Write, pad: &str, n: usize, d: &Described) -> Result<()> {
    let head = format!("{pad}    defer {n}: ");
    let under = " ".repeat(head.chars().count());
    // Delve's %#016x: sixteen digits after the 0x.
    writeln!(out, "{head}0x{:016x} in {}", d.pc, d.function)?;
    writeln!(out, "{under}at {}", d.at)?;
    writeln!(out, "{under}deferred by {}", d.deferred_by)?;
    Ok(())
}

/// `-0x28`, as Go's `%+#x` prints a signed offset.
fn signed_hex(v: i128) -> String {
    let sign = if v < 0 { '-' } else { '+' };
    format!("{sign}{:#x}", v.unsigned_abs())
}

/// The frame pointer each frame runs with, when it can be told without
/// reading the stack: a function with a frame sets BP to its CFA - 16 in
/// its prologue; a frameless one keeps its caller's. The innermost frame of
/// a goroutine on a thread uses the thread's own BP (it may be mid-prologue).
fn frame_pointers(frames: &[Frame], top_bp: Option<u64>) -> Vec<Option<u64>> {
    let mut bp = vec![None; frames.len()];
    let mut outer = None;
    for i in (0..frames.len()).rev() {
        let f = &frames[i];
        if !f.inlined {
            // fp - sp is the frame size plus the return address.
            if f.fp.checked_sub(f.sp).is_some_and(|size| size > 8) {
                outer = f.fp.checked_sub(16);
            }
        }
        bp[i] = outer;
    }
    if let Some(top) = top_bp {
        let physical_top = frames.iter().position(|f| !f.inlined).unwrap_or(0);
        for b in bp.iter_mut().take(physical_top + 1) {
            *b = Some(top);
        }
    }
    bp
}

/// `stack [DEPTH] [-defer] [-offsets]`: the frames as `stack` prints them,
/// each with its offsets from the stack's top and/or the calls it
/// deferred, then a blank line (Delve's layout).
pub(in crate::repl) fn stack_with(
    s: &Session,
    depth: usize,
    show_defers: bool,
    offsets: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let g = s.current_g()?;
    let Pending {
        calls,
        by_frame,
        unreadable,
    } = match show_defers {
        true => pending(s, g)?,
        false => Pending {
            calls: Vec::new(),
            by_frame: Vec::new(),
            unreadable: None,
        },
    };
    let hi = match offsets {
        true => Some(s.prog.stack_hi(s.target()?, g.gp).ok_or_else(|| {
            anyhow!(
                "stack -offsets: cannot read goroutine {}'s stack bounds",
                g.id
            )
        })?),
        false => None,
    };
    let top_bp = s
        .thread_of(g)
        .filter(|t| g.frames.first().is_some_and(|f| f.pc == t.regs.rip))
        .map(|t| t.regs.rbp);
    let bps = frame_pointers(&g.frames, top_bp);
    let shown = g.frames.len().min(depth);
    let width = shown.saturating_sub(1).to_string().len();
    let pad = " ".repeat(width + 2);
    for (i, f) in g.frames.iter().take(shown).enumerate() {
        crate::repl::stack::write_frame_at(out, i, f, width, "")?;
        if let Some(hi) = hi {
            let off = |v: u64| signed_hex(i128::from(v) - i128::from(hi));
            let bp = bps[i].map_or("?".into(), off);
            writeln!(out, "{pad}frame: {} frame pointer {bp}", off(f.fp))?;
        }
        for (n, &d) in by_frame.get(i).into_iter().flatten().enumerate() {
            write_defer(out, &pad, n + 1, &describe(s, &calls[d]))?;
        }
        writeln!(out)?;
    }
    if shown < g.frames.len() {
        writeln!(out, "(... {} more frames)", g.frames.len() - shown)?;
    }
    if let Some(why) = unreadable {
        writeln!(out, "(the defer list is unreadable past here: {why})")?;
    }
    Ok(())
}

/// `deferred [N [COMMAND]]`: the selected frame's deferred calls, or the
/// N-th (from 1, innermost first, as `stack -defer` numbers them).
pub fn deferred(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let g = s.current_g()?;
    let Pending {
        calls,
        by_frame,
        unreadable,
    } = pending(s, g)?;
    let mine: Vec<&Deferred> = by_frame
        .get(s.frame)
        .into_iter()
        .flatten()
        .map(|&i| &calls[i])
        .collect();
    let Some((n, rest)) = args.split_first() else {
        if mine.is_empty() {
            writeln!(
                out,
                "(frame {} has no pending deferred calls with a record)",
                s.frame
            )?;
        }
        for (i, d) in mine.iter().enumerate() {
            write_defer(out, "", i + 1, &describe(s, d))?;
        }
        if let Some(why) = unreadable {
            writeln!(out, "(the defer list is unreadable past here: {why})")?;
        }
        return Ok(());
    };
    let n: usize = n
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| anyhow!("deferred: {n:?} is not a number greater than 0 (use 'stack -defer' to see the list of deferred calls)"))?;
    let Some(d) = mine.get(n - 1) else {
        bail!(
            "deferred: frame {} has {} deferred call(s), not {n} (see 'stack -defer')",
            s.frame,
            mine.len()
        );
    };
    if let Some(cmd) = rest.first() {
        bail!(
            "deferred {n} {cmd}: goat cannot run commands in a deferred call's context: \
             its arguments are inside its closure at {:#x} (x {:#x} 32 shows its first words)",
            d.closure,
            d.closure
        );
    }
    write_defer(out, "", n, &describe(s, d))?;
    writeln!(
        out,
        "{}closure at {:#x}, record at {:#x}",
        " ".repeat(13),
        d.closure,
        d.addr
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(sp: u64, fp: u64, inlined: bool) -> Frame {
        Frame {
            function: Arc::from("f"),
            file: Arc::from("f.go"),
            line: 1,
            pc: 0,
            offset: 0,
            inlined,
            fp,
            sp,
            args: String::new(),
        }
    }

    #[test]
    fn frame_pointers_follow_the_prologue_rule() {
        let frames = [
            frame(0x100, 0x108, false), // frameless: its caller's BP
            frame(0x108, 0x140, true),
            frame(0x108, 0x140, false),
            frame(0x140, 0x200, false),
        ];
        assert_eq!(
            frame_pointers(&frames, None),
            [Some(0x130), Some(0x130), Some(0x130), Some(0x1f0)]
        );
        assert_eq!(frame_pointers(&frames, Some(0x99))[0], Some(0x99));
        assert_eq!(signed_hex(-0x28), "-0x28");
        assert_eq!(signed_hex(0x10), "+0x10");
    }
}
