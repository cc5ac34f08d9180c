//! `goroutines -exec COMMAND`: a command run on each goroutine listed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Result};

use crate::repl::stack::restore;
use crate::repl::table;
use crate::session::Session;

/// `-exec COMMAND`: COMMAND on each goroutine in turn; one failing is
/// reported and the others still run. The selection stays as it was.
pub(in crate::repl) fn exec_each(
    s: &mut Session,
    ids: &[u64],
    cmd: &str,
    out: &mut dyn Write,
) -> Result<()> {
    // `grs -exec grs -exec ...` would multiply the work per level.
    if EXEC_ACTIVE.swap(true, Ordering::Relaxed) {
        bail!("goroutines -exec cannot run inside another goroutines -exec");
    }
    // Cleared on the way out, a panic caught by the session included.
    let _guard = ExecGuard;
    exec_each_inner(s, ids, cmd, out)
}

static EXEC_ACTIVE: AtomicBool = AtomicBool::new(false);

struct ExecGuard;

impl Drop for ExecGuard {
    fn drop(&mut self) {
        EXEC_ACTIVE.store(false, Ordering::Relaxed);
    }
}

fn exec_each_inner(s: &mut Session, ids: &[u64], cmd: &str, out: &mut dyn Write) -> Result<()> {
    let saved = (s.current, s.frame);
    for &id in ids {
        writeln!(out, "Goroutine {id}:")?;
        let result = s
            .select(id)
            .map_err(anyhow::Error::from)
            .and_then(|()| table::execute(s, cmd, out));
        if let Err(e) = result {
            writeln!(out, "error: {e:#}")?;
        }
        restore(s, saved);
        // A command that ran the target invalidates the list.
        if s.is_done() || s.headers().iter().all(|g| g.id != id) {
            return Err(anyhow!("goroutines -exec: the stop changed; stopping"));
        }
    }
    Ok(())
}
