//! The commands behind `main.rs`'s argument parsing, one file each: they
//! call `goat::inspect`, print what it returns and leave exit codes to
//! `main.rs`.

pub mod core;
pub mod heap;
mod phases;
pub mod session;
pub mod stacks;
pub mod why;

/// Prints a library warning the way goat always has.
/// What `why` and `heap` read: a process, or a core and its executable.
pub enum Source<'a> {
    Pid(i32),
    Core {
        core: &'a std::path::Path,
        exe: Option<&'a std::path::Path>,
    },
}

impl<'a> Source<'a> {
    /// From the command line's PID and `--core`/`--exe` (a core wins).
    pub fn of(
        pid: Option<i32>,
        core: Option<&'a std::path::Path>,
        exe: Option<&'a std::path::Path>,
    ) -> anyhow::Result<Source<'a>> {
        match (pid, core) {
            (_, Some(core)) => Ok(Source::Core { core, exe }),
            (Some(pid), None) => Ok(Source::Pid(pid)),
            (None, None) => Err(anyhow::anyhow!("give a PID or --core FILE")),
        }
    }

    /// Opens it, and names it as the reports do: "pid N", "core FILE".
    pub fn open(
        &self,
        opts: &goat::inspect::OpenOptions,
    ) -> anyhow::Result<(goat::inspect::Inspector, String)> {
        use goat::inspect::Inspector;
        Ok(match self {
            Source::Pid(pid) => (
                Inspector::open_pid_with(*pid, opts, &mut warn)?,
                format!("pid {pid}"),
            ),
            Source::Core { core, exe } => (
                Inspector::open_core_with(core, *exe, opts, &mut warn)?,
                format!("core {}", goat::stdio::shown_path(core)),
            ),
        })
    }
}

/// Writes a command's report to stdout, whole, and flushes it.
pub fn print_report(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::Error::new(e).context("writing the report"))
}

pub fn warn(w: goat::inspect::Warning) {
    goat::eprintln_quiet!("goat: warning: {w}");
}

/// When each stop began, in Unix seconds to the microsecond (the clock a
/// service's logs and the target's own heartbeat keep), and how long it
/// lasted.
pub fn stop_times(stops: &[goat::tracer::StopWindow]) -> String {
    let each: Vec<String> = stops
        .iter()
        .map(|s| {
            let at = s
                .began
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!(
                "{}.{:06} ({:.2} ms)",
                at.as_secs(),
                at.subsec_micros(),
                s.lasted.as_secs_f64() * 1e3
            )
        })
        .collect();
    format!("stops began at {} (Unix seconds)", each.join(", "))
}
