//! Cores the kernel itself writes (GOTRACEBACK=crash and SIGQUIT), for
//! the tests that read what a user finds after a crash.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// A directory of its own, removed when dropped (cores are big).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("goat-core-read-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What to do when the kernel wrote no core (`why`).
pub fn kernel_core_fix(why: &str) -> String {
    format!("{why}; let the kernel write plain core files (sysctl kernel.core_pattern=core, ulimit -c unlimited)")
}

/// `exe ARGS` to run in `dir` with GOTRACEBACK=crash and its core limit
/// raised to the hard limit (no root needed), stdout and stderr piped.
pub fn crashable(exe: &Path, args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -c "$(ulimit -H -c)" && exec "$0" "$@""#)
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .env("GOTRACEBACK", "crash")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The core the kernel wrote in `dir` for a process that ended with
/// `status`, or why there is none (with the fix).
pub fn core_written(dir: &Path, status: ExitStatus) -> Result<PathBuf, String> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let core = std::fs::read_dir(dir)
        .expect("the scratch directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("core"))
        });
    match core {
        Some(c) if status.core_dumped() => Ok(c),
        _ => Err(format!(
            "the kernel wrote no core in {} (status {status:?}, kernel.core_pattern {:?}, \
             hard RLIMIT_CORE from `ulimit -H -c`)",
            dir.display(),
            pattern.trim()
        )),
    }
}

/// Runs `exe` with GOTRACEBACK=crash and core dumps allowed, in `dir`,
/// SIGQUITs it, and returns its stderr (the runtime's dump) and the core
/// the kernel wrote, if it wrote one (else why not).
pub fn kernel_core(exe: &Path, dir: &Path) -> (String, Result<PathBuf, String>) {
    let mut child = crashable(exe, &[], dir).spawn().expect("start fixture");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGQUIT).expect("SIGQUIT");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (err, core_written(dir, status))
}
