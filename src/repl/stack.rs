//! stack, frame, up, down.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use super::source;
use super::state::Session;
use crate::goruntime::{Frame, Goroutine};

/// `stack [DEPTH]`
pub fn stack(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let depth = match args {
        [] => usize::MAX,
        [n] => n
            .parse()
            .map_err(|_| anyhow!("stack: {n:?} is not a depth"))?,
        _ => bail!("usage: stack [DEPTH]"),
    };
    let g = s.current_g()?;
    write_frames(out, g, depth, "")
}

/// Frames `0..depth` of `g`, each as `N  0xPC in FUNC` / `   at FILE:LINE`,
/// every line prefixed by `indent`.
pub(super) fn write_frames(
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
        write_frame(out, i, f, width, indent)?;
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

fn write_frame(out: &mut dyn Write, i: usize, f: &Frame, width: usize, indent: &str) -> Result<()> {
    let inlined = if f.inlined { " (inlined)" } else { "" };
    writeln!(
        out,
        "{indent}{i:>width$}  {:#018x} in {}{inlined}",
        f.pc, f.function
    )?;
    writeln!(out, "{indent}{:width$}    at {}:{}", "", f.file, f.line)?;
    Ok(())
}

/// `frame [N]`
pub fn frame(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    match args {
        [] => {}
        [n] => {
            let n = n
                .parse()
                .map_err(|_| anyhow!("frame: {n:?} is not a frame number"))?;
            select(s, n)?;
        }
        _ => bail!("usage: frame [N]"),
    }
    show_selected(s, out)
}

/// `up [N]`: towards the caller.
pub fn up(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let n = count(args, "up")?;
    select(s, s.frame.saturating_add(n))?;
    show_selected(s, out)
}

/// `down [N]`: towards the callee.
pub fn down(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let n = count(args, "down")?;
    let Some(to) = s.frame.checked_sub(n) else {
        bail!("down: already at frame {} (0 is the innermost)", s.frame);
    };
    select(s, to)?;
    show_selected(s, out)
}

fn count(args: &[&str], cmd: &str) -> Result<usize> {
    match args {
        [] => Ok(1),
        [n] => n
            .parse()
            .map_err(|_| anyhow!("{cmd}: {n:?} is not a number of frames")),
        _ => bail!("usage: {cmd} [N]"),
    }
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
    match source::read_lines(&f.file) {
        Ok(lines) => match lines.get((f.line as usize).wrapping_sub(1)) {
            Some(text) => writeln!(out, "=> {:>5}:\t{text}", f.line)?,
            None => writeln!(out, "   (line {} is past the end of the file)", f.line)?,
        },
        Err(e) => writeln!(out, "   ({e})")?,
    }
    Ok(())
}
