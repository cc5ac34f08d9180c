//! source (a script of commands), transcript (a copy of the output in a
//! file) and edit (the editor at the current line).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};

use crate::repl::{config, source, table};
use crate::session::Session;

/// Scripts may source scripts, but not without end (a script sourcing
/// itself).
const MAX_NESTING: usize = 16;
/// A script longer than this is not a command script.
const SCRIPT_MAX: u64 = 16 << 20;

static NESTING: AtomicUsize = AtomicUsize::new(0);

/// `source FILE` (`-` for stdin): each line a command; a failing command is
/// reported as `error: ...` and the script goes on, as typed commands do.
pub fn source_cmd(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [path] = args else {
        bail!("usage: source FILE   (- for stdin)");
    };
    if NESTING.load(Ordering::Relaxed) >= MAX_NESTING {
        bail!("source: scripts nested {MAX_NESTING} deep; stopping (a script sourcing itself?)");
    }
    let lines: Vec<String> = if *path == "-" {
        io::stdin().lock().lines().map_while(Result::ok).collect()
    } else {
        let text = read_script(path)?;
        text.lines().map(str::to_string).collect()
    };
    NESTING.fetch_add(1, Ordering::Relaxed);
    // Undone on the way out, a panic caught by the session included.
    let _guard = Nested;
    run_lines(s, &lines, out)
}

struct Nested;

impl Drop for Nested {
    fn drop(&mut self) {
        NESTING.fetch_sub(1, Ordering::Relaxed);
    }
}

fn run_lines(s: &mut Session, lines: &[String], out: &mut dyn Write) -> Result<()> {
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if s.is_done() {
            break;
        }
        if let Err(e) = table::execute(s, line, out) {
            writeln!(out, "error: {line}: {e:#}")?;
        }
    }
    Ok(())
}

/// A regular file of sane size, opened so that a FIFO cannot block.
fn read_script(path: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("source: cannot open {path}"))?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > SCRIPT_MAX {
        bail!("source: {path} is not a regular file of at most 16 MiB");
    }
    let mut bytes = Vec::new();
    f.take(SCRIPT_MAX).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Where `transcript` copies the output, and whether stdout is spared it.
struct Transcript {
    file: File,
    quiet: bool,
}

static TRANSCRIPT: Mutex<Option<Transcript>> = Mutex::new(None);

/// `transcript [-t] [-x] FILE` / `transcript -off`
pub fn transcript(_s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (mut truncate, mut quiet, mut off, mut file) = (false, false, false, None);
    for a in args {
        match *a {
            "-t" => truncate = true,
            "-x" => quiet = true,
            "-off" => off = true,
            f if !f.starts_with('-') && file.is_none() => file = Some(f),
            _ => bail!("usage: transcript [-t] [-x] FILE | transcript -off"),
        }
    }
    let mut slot = TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    match (off, file) {
        (true, None) => {
            *slot = None;
            return Ok(());
        }
        (false, Some(f)) => {
            // Appended to (or truncated with -t), never through a link to
            // somewhere else; created 0600 like goat's other outputs.
            use std::os::unix::fs::OpenOptionsExt;
            let file = OpenOptions::new()
                .create(true)
                .append(!truncate)
                .write(true)
                .truncate(truncate)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(f)
                .with_context(|| format!("transcript: cannot open {f}"))?;
            if !file.metadata()?.is_file() {
                bail!("transcript: {f} is not a regular file");
            }
            *slot = Some(Transcript { file, quiet });
        }
        _ => bail!("usage: transcript [-t] [-x] FILE | transcript -off"),
    }
    drop(slot);
    writeln!(out, "transcript to {}", file.unwrap_or_default())?;
    Ok(())
}

/// Writes a command's output to stdout and, while a transcript is on, to
/// its file (and only there with -x).
pub struct Tee<'a> {
    pub stdout: &'a mut dyn Write,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut slot = TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner());
        let quiet = match slot.as_mut() {
            Some(t) => {
                // A transcript that cannot be written is not worth
                // failing the command for.
                let _ = t.file.write_all(buf);
                t.quiet
            }
            None => false,
        };
        drop(slot);
        if !quiet {
            self.stdout.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// Copies a failed command's error line into the transcript.
pub fn note_error(line: &str) {
    let mut slot = TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = slot.as_mut() {
        let _ = writeln!(t.file, "{line}");
    }
}

/// `edit [LOCATION]`: $DELVE_EDITOR or $EDITOR at the line, when there is
/// a terminal to run it on.
pub fn edit(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let here = s.current_frame().ok().map(|f| (f.file.to_string(), f.line));
    let (file, line) = match args {
        [] => here.ok_or_else(|| anyhow!("edit: no frame selected; give a location"))?,
        [loc] => source::resolve(s, loc, here.as_ref().map(|h| (h.0.as_str(), h.1)))?,
        _ => bail!("usage: edit [LOCATION]"),
    };
    let file = config::substitute(&file).unwrap_or(file);
    let editor = ["DELVE_EDITOR", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .ok_or_else(|| anyhow!("edit: set $DELVE_EDITOR or $EDITOR"))?;
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        bail!(
            "edit: not on a terminal (stdin and stdout must be one); open {file}:{line} yourself"
        );
    }
    let mut words = editor.split_whitespace();
    let prog = words.next().unwrap_or("vi");
    let status = std::process::Command::new(prog)
        .args(words)
        .arg(format!("+{line}"))
        .arg(&file)
        .status()
        .with_context(|| format!("edit: cannot run {prog}"))?;
    if !status.success() {
        writeln!(out, "{prog} exited with {status}")?;
    }
    Ok(())
}
