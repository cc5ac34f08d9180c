//! `goat attach` and `goat debug`: the interactive session over a live
//! process or a core.

use std::path::PathBuf;

use anyhow::{bail, Result};

use goat::corefile::is_core_file;

use goat::inspect::{Inspector, OpenOptions};
use goat::repl;

use super::warn;

pub fn attach(pid: i32, opts: &OpenOptions, commands: Vec<String>, batch: bool) -> Result<u8> {
    let inspector = Inspector::open_pid_with(pid, opts, &mut warn)?;
    let debuggee = inspector.debug(&mut warn)?;
    let opts = repl::Options { commands, batch };
    Ok(debuggee.run(|s| repl::run(s, &opts))?)
}

/// `files` is `[CORE]`, `[EXE, CORE]` (gdb's and `dlv core`'s order) or
/// `[CORE, EXE]`: the core is the one whose contents say so.
pub fn debug(
    files: &[PathBuf],
    exe: Option<PathBuf>,
    opts: &OpenOptions,
    commands: Vec<String>,
    batch: bool,
) -> Result<u8> {
    let (core, exe) = match (files, exe) {
        ([core], exe) => (core, exe),
        ([a, b], None) => match (is_core_file(a), is_core_file(b)) {
            // One that cannot be read says so, rather than "not a core".
            (false, _) | (_, false) if readable(a).and(readable(b)).is_err() => {
                return Err(readable(a).and(readable(b)).unwrap_err());
            }
            (false, true) => (b, Some(a.clone())),
            (true, false) => (a, Some(b.clone())),
            (true, true) => bail!(
                "both {} and {} are core files: give one core, and the executable",
                a.display(),
                b.display()
            ),
            (false, false) => bail!(
                "neither {} nor {} is a core file (an ELF core, or one compressed \
                 with zstd, lz4 or xz)",
                a.display(),
                b.display()
            ),
        },
        (_, Some(_)) => bail!("give the executable once: as EXE or as --exe, not both"),
        _ => bail!("usage: goat debug [EXE] CORE"),
    };
    let inspector = Inspector::open_core_with(core, exe.as_deref(), opts, &mut warn)?;
    let debuggee = inspector.debug(&mut warn)?;
    let opts = repl::Options { commands, batch };
    Ok(debuggee.run(|s| repl::run(s, &opts))?)
}

fn readable(path: &std::path::Path) -> Result<()> {
    // metadata, not open: opening a FIFO would block.
    std::fs::metadata(path)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}
