//! `step-instruction` (`si`): one machine instruction of the selected
//! goroutine's thread.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::repl::exec::show_position;
use crate::session::Session;

/// `step-instruction`
pub fn step_instruction(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("step-instruction takes no arguments");
    }
    s.may_run()?;
    let g = s.current_g()?;
    let gid = g.id;
    let tid = s
        .thread_of(g)
        .map(|t| t.tid)
        .ok_or_else(|| anyhow!("goroutine {gid} is not running on a thread: nothing to step"))?;
    let stepped = s.control()?.step_instruction(tid);
    // The stop is new either way (an error may have left it running).
    s.load()?;
    stepped?;
    s.select_thread(tid);
    show_position(s, out, None)?;
    crate::repl::display::write_displays(s, out)
}
