//! stack, frame, up, down.
//!
//! The family: `stack`/`bt` (`-full`: `stackfull.rs`), `frame`, `up`, `down`,
//! `deferred` (`deferred.rs`).

pub(super) mod deferred;
pub(super) mod stackfull;

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::goruntime::{Frame, Goroutine};
use crate::repl::{source, table};
use crate::session::Session;

/// `stack [DEPTH] [-full] [-defer] [-offsets]`
pub fn stack(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (mut depth, mut full, mut defers, mut offsets) = (None, false, false, false);
    for a in args {
        match *a {
            "-full" => full = true,
            "-defer" => defers = true,
            "-offsets" => offsets = true,
            n if depth.is_none() && !n.starts_with('-') => {
                depth = Some(
                    n.parse()
                        .map_err(|_| anyhow!("stack: {n:?} is not a depth"))?,
                )
            }
            _ => bail!("usage: stack [DEPTH] [-full] [-defer] [-offsets]"),
        }
    }
    let depth = depth.unwrap_or(usize::MAX);
    if full && (defers || offsets) {
        bail!("stack: -full cannot be combined with -defer or -offsets in goat yet");
    }
    if defers || offsets {
        return crate::repl::deferred::stack_with(s, depth, defers, offsets, out);
    }
    if full {
        return crate::repl::stackfull::stack_full(s, depth, out);
    }
    let g = s.current_g()?;
    write_frames(out, g, depth, "")
}

/// Frames `0..depth` of `g`, each as `N  0xPC in FUNC` / `   at FILE:LINE`,
/// every line prefixed by `indent`.
pub(in crate::repl) fn write_frames(
    out: &mut dyn Write,
    g: &Goroutine,
    depth: usize,
    indent: &str,
) -> Result<()> {
    let shown = g.frames.len().min(depth);
    let width = shown.saturating_sub(1).to_string().len();
    for (i, f) in g.frames.iter().take(shown).enumerate() {
        if let Some(e) = g.elided.filter(|e| e.at == i && i > 0) {
            let n = e.count.map_or(String::new(), |n| format!("{n} "));
            writeln!(out, "{indent}...{n}frames elided...")?;
        }
        write_frame_at(out, i, f, width, indent)?;
    }
    if shown < g.frames.len() {
        writeln!(out, "{indent}(... {} more frames)", g.frames.len() - shown)?;
    } else if g.elided.is_some_and(|e| e.at >= g.frames.len()) {
        writeln!(out, "{indent}...additional frames elided...")?;
    }
    if let Some(why) = &g.unreadable {
        writeln!(out, "{indent}(the rest of the stack is unreadable: {why})")?;
    }
    Ok(())
}

pub(in crate::repl) fn write_frame_at(
    out: &mut dyn Write,
    i: usize,
    f: &Frame,
    width: usize,
    indent: &str,
) -> Result<()> {
    let inlined = if f.inlined { " (inlined)" } else { "" };
    writeln!(
        out,
        "{indent}{i:>width$}  {:#018x} in {}{inlined}",
        f.pc, f.function
    )?;
    writeln!(out, "{indent}{:width$}    at {}:{}", "", f.file, f.line)?;
    Ok(())
}

/// `frame [N [COMMAND]]`: with a COMMAND, Delve's prefix form: COMMAND runs
/// in frame N and the selection stays as it was.
pub fn frame(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let Some((n, rest)) = args.split_first() else {
        return show_selected(s, out);
    };
    let n = n
        .parse()
        .map_err(|_| anyhow!("frame: {n:?} is not a frame number"))?;
    if !rest.is_empty() {
        return run_in_frame(s, n, rest, out);
    }
    select(s, n)?;
    show_selected(s, out)
}

/// `up [N] [COMMAND]`: towards the caller.
pub fn up(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (n, rest) = count(args)?;
    let to = s.frame.saturating_add(n);
    if !rest.is_empty() {
        return run_in_frame(s, to, rest, out);
    }
    select(s, to)?;
    show_selected(s, out)
}

/// `down [N] [COMMAND]`: towards the callee.
pub fn down(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (n, rest) = count(args)?;
    let Some(to) = s.frame.checked_sub(n) else {
        bail!("down: already at frame {} (0 is the innermost)", s.frame);
    };
    if !rest.is_empty() {
        return run_in_frame(s, to, rest, out);
    }
    select(s, to)?;
    show_selected(s, out)
}

/// The frame count of `up`/`down` (1 when the first word is not a number,
/// so `up locals` reads as Delve's `up 1 locals`) and the command after it.
fn count<'a, 'b>(args: &'a [&'b str]) -> Result<(usize, &'a [&'b str])> {
    match args.split_first() {
        None => Ok((1, args)),
        Some((n, rest)) => match n.parse() {
            Ok(n) => Ok((n, rest)),
            // A number too big for a frame count is still a number.
            Err(_) if n.bytes().all(|b| b.is_ascii_digit()) => {
                bail!("{n:?} is not a number of frames")
            }
            Err(_) => Ok((1, args)),
        },
    }
}

/// Runs `cmd` with frame `n` of the current goroutine selected, then puts
/// the selection back (whether `cmd` worked or not), as Delve's prefix
/// forms leave the user where they were.
fn run_in_frame(s: &mut Session, n: usize, cmd: &[&str], out: &mut dyn Write) -> Result<()> {
    let saved = (s.current, s.frame);
    select(s, n)?;
    let result = table::execute(s, &cmd.join(" "), out);
    restore(s, saved);
    result
}

/// Puts back a selection saved before a prefixed command, unless the
/// command ran the target and the goroutine or frame is gone since.
pub(in crate::repl) fn restore(s: &mut Session, (id, frame): (Option<u64>, usize)) {
    let Some(g) = id.and_then(|id| s.goroutine(id)) else {
        return;
    };
    let frame = if frame < g.frames.len() { frame } else { 0 };
    (s.current, s.frame) = (id, frame);
}

fn select(s: &mut Session, n: usize) -> Result<()> {
    let g = s.current_g()?;
    if n >= g.frames.len() {
        bail!(
            "goroutine {} has frames 0 to {}; there is no frame {n}",
            g.id,
            g.frames.len().saturating_sub(1)
        );
    }
    s.frame = n;
    Ok(())
}

/// `Frame N: FUNC at FILE:LINE (PC: 0x..)` and the source line.
fn show_selected(s: &Session, out: &mut dyn Write) -> Result<()> {
    let f = s.current_frame()?;
    let inlined = if f.inlined { " (inlined)" } else { "" };
    writeln!(
        out,
        "Frame {}: {}{inlined} at {}:{} (PC: {:#x})",
        s.frame, f.function, f.file, f.line, f.pc
    )?;
    match source::read_lines(&source::context(s), &f.file) {
        Ok(lines) => match lines.get((f.line as usize).wrapping_sub(1)) {
            Some(text) => writeln!(out, "=> {:>5}:\t{text}", f.line)?,
            None => writeln!(out, "   (line {} is past the end of the file)", f.line)?,
        },
        Err(e) => writeln!(out, "   ({e})")?,
    }
    Ok(())
}
