//! `stack -full`: each frame with its arguments and locals, printed as
//! `args` and `locals` print them.

use std::io::Write;

use anyhow::Result;

use crate::repl::stack::{restore, write_frame_at};
use crate::session::Session;

/// Frames `0..depth` of the current goroutine, each followed by its
/// arguments and locals (indented); a frame whose variables cannot be read
/// says why in one line and the others still print.
pub(in crate::repl) fn stack_full(
    s: &mut Session,
    depth: usize,
    out: &mut dyn Write,
) -> Result<()> {
    // A copy: the loop selects each frame in turn, which needs `s` mutable.
    let g = s.current_g()?.clone();
    let shown = g.frames.len().min(depth);
    let width = shown.saturating_sub(1).to_string().len();
    let saved = (s.current, s.frame);
    let pad = " ".repeat(width + 4);
    for (i, f) in g.frames.iter().take(shown).enumerate() {
        write_frame_at(out, i, f, width, "")?;
        s.frame = i;
        let printed = write_vars(s, &pad, out);
        if let Err(e) = printed {
            writeln!(out, "{pad}(variables unavailable: {e:#})")?;
        }
    }
    restore(s, saved);
    if shown < g.frames.len() {
        writeln!(out, "(... {} more frames)", g.frames.len() - shown)?;
    }
    Ok(())
}

fn write_vars(s: &Session, pad: &str, out: &mut dyn Write) -> Result<()> {
    let scope = s.scope()?;
    for params in [true, false] {
        let vars = scope.variables(params).map_err(|e| anyhow::anyhow!(e))?;
        for (name, v) in vars {
            writeln!(out, "{pad}{name} = {}", scope.format(&v))?;
        }
    }
    Ok(())
}
