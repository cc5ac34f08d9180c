//! help, detach, quit.

use std::io::Write;

use anyhow::{bail, Result};

use super::state::Session;
use super::table;

/// `help [COMMAND]`
pub fn help(_s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    match args {
        [] => table::write_overview(out)?,
        [name] => match table::find(name) {
            Some(c) => table::write_usage(out, c)?,
            None => bail!("help: no command {name:?}"),
        },
        _ => bail!("usage: help [COMMAND]"),
    }
    Ok(())
}

/// `quit` / `detach`: ends the session; whoever owns the backend resumes and
/// detaches the target when the session is dropped.
pub fn quit(s: &mut Session, _args: &[&str], _out: &mut dyn Write) -> Result<()> {
    s.done = true;
    Ok(())
}
