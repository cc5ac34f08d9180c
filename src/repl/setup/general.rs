//! help, detach, quit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::repl::table;
use crate::session::Session;

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

/// `core [-f] [FILE]`: a core of the current stop, default `core.PID`.
pub fn core(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (force, files) = crate::repl::force_flag(args);
    let dest = match files.as_slice() {
        [] => match s.pid() {
            Some(pid) => PathBuf::from(format!("core.{pid}")),
            None => bail!("usage: core [-f] FILE"),
        },
        [f] if !f.starts_with('-') => PathBuf::from(f),
        _ => bail!("usage: core [-f] [FILE]"),
    };
    // Before the core is gathered: a refusal costs nothing.
    crate::outfile::check_dest(&dest, force)?;
    let st = s.write_core(&dest, force)?;
    writeln!(
        out,
        "wrote {} ({} MiB, {} threads) in {:.0} ms",
        dest.display(),
        st.bytes_written >> 20,
        st.threads,
        st.total.as_secs_f64() * 1e3
    )?;
    Ok(())
}

/// `quit` / `detach`: ends the session; whoever owns the backend resumes and
/// detaches the target when the session is dropped.
pub fn quit(s: &mut Session, _args: &[&str], _out: &mut dyn Write) -> Result<()> {
    s.done = true;
    Ok(())
}
