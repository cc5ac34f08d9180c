//! list: source text around a frame or a location.
//!
//! The family: `list`, where source files are found (`srcpath.rs`, the Go
//! root's among them: `goroots.rs`), `disassemble` (`disasm.rs`).

pub(super) mod disasm;
pub(super) mod goroots;
pub(super) mod srcpath;

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::session::Session;
use srcpath::Context;

/// Source files bigger than this are not shown (a real one is far smaller).
const SOURCE_MAX: u64 = 64 << 20;

/// What [`read_lines`] needs of the session to find a file.
pub(in crate::repl) fn context<'a>(s: &'a Session) -> Context<'a> {
    Context {
        go_version: s.go_version(),
        pid: s.pid(),
    }
}

/// The lines of a source file, or why it cannot be shown. The path comes
/// from the binary's line table and is looked for as [`srcpath::find`]
/// says; the file is opened non-blocking and read only if it is a regular
/// file of sane size, so a FIFO or a device named there cannot hang (or
/// fill) the session while the target waits stopped.
pub(in crate::repl) fn read_lines(cx: &Context, file: &str) -> Result<Vec<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = srcpath::find(file, cx).map_err(|msg| anyhow!(msg))?;
    let file = path.display().to_string();
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path);
    let f = match opened {
        Ok(f) => f,
        Err(e) => bail!("cannot read source file {file}: {e}"),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > SOURCE_MAX {
        bail!("not showing {file}: it is not a regular file of at most 64 MiB");
    }
    let mut bytes = Vec::new();
    f.take(SOURCE_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read source file {file}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_string)
        .collect())
}

/// `list [LOCATION]`
pub fn list(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let here = s
        .current_frame()
        .ok()
        .map(|f| (f.file.to_string(), f.line, f.pc));
    let (file, line) = match args {
        [] => match &here {
            Some((file, line, _)) => (file.clone(), *line),
            None => bail!("list: no frame selected; give a location"),
        },
        [loc] => resolve(s, loc, here.as_ref().map(|h| (h.0.as_str(), h.1)))?,
        _ => bail!("usage: list [LOCATION]"),
    };
    let count = read_lines(&context(s), &file)?.len();
    if line == 0 || line as usize > count {
        bail!("{file} has {count} lines; there is no line {line}");
    }
    match &here {
        Some((f, l, pc)) if *f == file && *l == line => {
            writeln!(out, "Showing {file}:{line} (PC: {pc:#x})")?
        }
        _ => writeln!(out, "Showing {file}:{line}")?,
    }
    // The current frame's line is marked when it is in view.
    let mark = here.filter(|h| h.0 == file).map(|h| h.1);
    write_listing(&context(s), out, &file, line, mark)
}

/// The lines of `file` around `line`, `=>` before line `mark`.
pub(in crate::repl) fn write_listing(
    cx: &Context,
    out: &mut dyn Write,
    file: &str,
    line: u32,
    mark: Option<u32>,
) -> Result<()> {
    let lines = read_lines(cx, file)?;
    if line == 0 || line as usize > lines.len() {
        bail!("{file} has {} lines; there is no line {line}", lines.len());
    }
    // Lines either side: `config source-list-line-count` (5 by default).
    let context = crate::repl::config::get().source_list_line_count;
    let first = (line as usize).saturating_sub(context).max(1);
    let last = (line as usize).saturating_add(context).min(lines.len());
    for n in first..=last {
        let arrow = if Some(n as u32) == mark { "=>" } else { "  " };
        writeln!(out, "{arrow} {n:>5}:\t{}", lines[n - 1])?;
    }
    Ok(())
}

/// Most functions an ambiguous `/regex/` names in its error.
const AMBIGUOUS_SHOWN: usize = 5;

/// A location as Delve's `list` takes it, as (file, line): `LINE`, `+N`
/// and `-N` (lines after or before `current`, the selected frame's),
/// `FILE:LINE`, `FUNC:LINE`, `FUNC`, `*ADDR` (the line of that address)
/// and `/REGEX/` (the one function whose name matches).
pub(in crate::repl) fn resolve(
    s: &Session,
    loc: &str,
    current: Option<(&str, u32)>,
) -> Result<(String, u32)> {
    let no_frame = || anyhow!("list {loc}: no frame selected");
    if let Some(sign @ ('+' | '-')) = loc.chars().next() {
        let n: u32 = loc[1..]
            .parse()
            .map_err(|_| anyhow!("list: {loc:?} is not +N or -N lines"))?;
        let (file, line) = current.ok_or_else(no_frame)?;
        let to = if sign == '+' {
            line.checked_add(n)
        } else {
            line.checked_sub(n).filter(|&l| l > 0)
        };
        let to = to.ok_or_else(|| anyhow!("list {loc}: before the start of {file}"))?;
        return Ok((file.to_string(), to));
    }
    if let Ok(line) = loc.parse::<u32>() {
        let (file, _) = current.ok_or_else(no_frame)?;
        return Ok((file.to_string(), line));
    }
    let tab = s.prog.binary().pclntab()?;
    if let Some(addr) = loc.strip_prefix('*') {
        let digits = addr.trim_start_matches("0x");
        let pc = u64::from_str_radix(digits, 16)
            .map_err(|_| anyhow!("list: {addr:?} is not a hex address"))?;
        // Run-time addresses: the binary's are before relocation.
        let link = pc
            .checked_sub(s.bias)
            .ok_or_else(|| anyhow!("list: no function at {pc:#x}"))?;
        let f = tab
            .find_func(link)
            .ok_or_else(|| anyhow!("list: no function at {pc:#x}"))?;
        let (file, line) = f.file_line(link)?;
        return Ok((file.to_string(), line));
    }
    if let Some(re) = loc.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
        let pattern = crate::repl::pattern::Pattern::new(re)?;
        let mut found: Vec<_> = tab
            .functions()
            .filter(|f| f.name().is_ok_and(|n| pattern.matches(n)))
            .collect();
        return match found.len() {
            0 => bail!("list: no function matches /{re}/"),
            1 => {
                let f = found.remove(0);
                let (file, line) = f.file_line(f.entry())?;
                Ok((file.to_string(), line))
            }
            n => {
                let names: Vec<&str> = found
                    .iter()
                    .take(AMBIGUOUS_SHOWN)
                    .filter_map(|f| f.name().ok())
                    .collect();
                bail!(
                    "list: /{re}/ matches {n} functions ({}{}); make it match one",
                    names.join(", "),
                    if n > AMBIGUOUS_SHOWN { ", ..." } else { "" }
                )
            }
        };
    }
    if let Some((file, line)) = loc.rsplit_once(':') {
        let line: u32 = line
            .parse()
            .map_err(|_| anyhow!("list: {line:?} is not a line number"))?;
        // FUNC:LINE (Delve): line LINE of the file FUNC is in.
        let func = tab
            .func_by_name(file)
            .or_else(|| tab.func_by_name(&format!("main.{file}")));
        if let Some(f) = func.filter(|_| !file.ends_with(".go")) {
            let (path, start) = f.file_line(f.entry())?;
            // FUNC:0 is the function itself.
            return Ok((path.to_string(), if line == 0 { start } else { line }));
        }
        let found = find_file(s, file);
        // Not a function, and not a Go file anywhere: say that, rather
        // than that a "source file main.nosuch" is missing.
        if !file.ends_with(".go") && !Path::new(&found).exists() {
            bail!("list: no function or source file {file:?}");
        }
        return Ok((found, line));
    }
    let func = tab
        .func_by_name(loc)
        .or_else(|| tab.func_by_name(&format!("main.{loc}")))
        .ok_or_else(|| anyhow!("list: no function, file or line {loc:?}"))?;
    let (file, line) = func.file_line(func.entry())?;
    Ok((file.to_string(), line))
}

/// `file` as given when it exists, else the one file of the stacks (else
/// of the binary) whose path ends with it (`main.go` → `/src/app/main.go`).
fn find_file(s: &Session, file: &str) -> String {
    if Path::new(file).exists() {
        return file.to_string();
    }
    let suffix = format!("/{}", file.trim_start_matches("./"));
    // The stacks decoded so far (decoding all for a file name would cost a
    // service of 100k goroutines seconds; the binary's files follow).
    s.gs.decoded()
        .flat_map(|g| {
            g.frames
                .iter()
                .map(|f| &*f.file)
                .chain(g.created_by.iter().map(|c| &*c.file))
        })
        .find(|f| f.ends_with(&suffix))
        .map(str::to_string)
        .or_else(|| {
            // Not on any stack: any source file of the binary's functions.
            let tab = s.prog.binary().pclntab().ok()?;
            tab.functions()
                .filter_map(|f| f.file_line(f.entry()).ok())
                .map(|(path, _)| path)
                .find(|p| p.ends_with(&suffix))
                .map(str::to_string)
        })
        .unwrap_or_else(|| file.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_only_and_never_blocks() {
        let d = std::env::temp_dir().join(format!("goat-source-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let go = d.join("main.go");
        std::fs::write(&go, "package main\n\nfunc main() {}\n").unwrap();
        let cx = Context {
            go_version: "",
            pid: None,
        };
        assert_eq!(read_lines(&cx, go.to_str().unwrap()).unwrap().len(), 3);
        let fifo = d.join("fifo.go");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for odd in [fifo.to_str().unwrap(), "/dev/zero", d.to_str().unwrap()] {
            let e = read_lines(&cx, odd).unwrap_err().to_string();
            assert!(
                e.contains("not a regular file") || e.contains("cannot read"),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
