//! Text to goat's own stdout and stderr that never panics. `println!` and
//! `eprintln!` panic when the reading end of a pipe is gone (EPIPE: `goat
//! attach PID | head`), and goat's tracer, guardian and session share the
//! same stderr: a panic there would end a process in the middle of putting
//! the target back. A message nobody can read any more is dropped instead.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` to stderr, ignoring a closed or failing stream.
pub fn to_stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Writes `args` to stdout and flushes it, ignoring a closed or failing
/// stream; whether it was written, so a caller can stop producing output
/// no one reads.
pub fn to_stdout(args: fmt::Arguments<'_>) -> bool {
    let mut out = io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.flush()).is_ok()
}

/// Whether `err` (or what caused it) is a write to a pipe with no reader.
pub fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// `eprintln!` that never panics (see the module's comment).
#[macro_export]
macro_rules! eprintln_quiet {
    () => { $crate::stdio::to_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdio::to_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! eprint_quiet {
    ($($arg:tt)*) => { $crate::stdio::to_stderr(format_args!($($arg)*)) };
}

/// `print!` (flushed) that never panics; whether it was written.
#[macro_export]
macro_rules! print_quiet {
    ($($arg:tt)*) => { $crate::stdio::to_stdout(format_args!($($arg)*)) };
}

/// `path` as a user can tell it is a path: a bare file name gets `./`, so
/// that a core named `core` reads "core ./core", not "core core".
pub fn shown_path(path: &std::path::Path) -> String {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => format!("./{}", path.display()),
        _ => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_broken_pipe, shown_path};
    use std::io;
    use std::path::Path;

    #[test]
    fn a_bare_file_name_is_shown_as_a_path() {
        assert_eq!(shown_path(Path::new("core")), "./core");
        assert_eq!(shown_path(Path::new("dir/core")), "dir/core");
        assert_eq!(shown_path(Path::new("/var/core")), "/var/core");
    }

    #[test]
    fn finds_a_broken_pipe_among_the_causes() {
        let pipe = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&pipe));
        let wrapped = anyhow::Error::from(pipe).context("writing the output");
        assert!(is_broken_pipe(wrapped.as_ref()));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::NotFound));
        assert!(!is_broken_pipe(other.as_ref()));
    }
}
