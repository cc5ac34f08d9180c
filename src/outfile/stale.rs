//! Temporaries a killed goat left behind.
//!
//! A goat killed mid-write (SIGKILL, OOM, power loss) cannot remove its
//! temporary, which may be gigabytes. Temporaries are named
//! `.NAME.tmp-goatPID-XXXXXX` (see `mod.rs`), and the writer holds an
//! exclusive `flock` on the file for as long as it lives. A later run
//! removes one only when every sign says goat made it and its writer is
//! dead:
//! - the name has that shape, and the pid in it is not a live process;
//! - the lock is free (the kernel drops it when its holder dies: this also
//!   covers a writer in another pid namespace, whose pid means nothing here);
//! - it is a regular file (never a symlink), owned by us, mode 0600;
//! - and it is still the same inode when unlinked.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Entries of a directory looked at, at most (a huge directory must not
/// make `goat core` slow).
const MAX_ENTRIES: usize = 100_000;

/// A temporary removed, and what it was.
#[derive(Debug, Clone)]
pub struct Stale {
    pub path: PathBuf,
    /// The goat that wrote it.
    pub pid: i32,
    pub bytes: u64,
}

/// The `PID` of a name `.NAME.tmp-goatPID-XXXXXX`, if it is one.
pub fn writer_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-goat")?;
    let (pid, suffix) = tail.split_once('-')?;
    let hex = suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if !hex || !digits {
        return None;
    }
    pid.parse().ok().filter(|&p: &i32| p > 0)
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; EPERM means it exists (someone else's).
    // SAFETY: kill with signal 0 sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Takes `file`'s exclusive lock without blocking; true if it was free.
pub fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes `path` if it is a temporary of a dead goat (see the module
/// docs); returns what was removed.
fn remove_if_stale(path: &Path, pid: i32) -> Option<Stale> {
    if pid == std::process::id() as i32 || alive(pid) {
        return None;
    }
    remove_unlocked(path, pid, try_lock)
}

/// Removes `path` if it is our private regular file and `lock` takes its
/// lock (then no writer holds it), and it is still the same inode.
fn remove_unlocked(path: &Path, pid: i32, lock: impl FnOnce(&File) -> bool) -> Option<Stale> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o7777 != 0o600 {
        return None;
    }
    if !lock(&file) {
        return None;
    }
    // Still the file we checked, not something swapped in under its name.
    let now = std::fs::symlink_metadata(path).ok()?;
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        return None;
    }
    std::fs::remove_file(path).ok()?;
    Some(Stale {
        path: path.to_path_buf(),
        pid,
        bytes: meta.blocks() * 512,
    })
}

/// Removes the temporaries in `dir` that the goat `writer` left when it
/// died, from the process that outlives it (goat's tracer): a goat killed
/// between creating a temporary and saving it, whatever the moment. Each
/// one's lock is waited for up to `patience` (the kernel drops a dead
/// goat's lock as its files are closed, which can come late).
pub fn remove_left_by(dir: &Path, writer: i32, patience: Duration) -> Vec<Stale> {
    temporaries_in(dir)
        .into_iter()
        .filter(|&(_, pid)| pid == writer)
        .filter_map(|(path, _)| {
            remove_unlocked(&path, writer, |file| {
                crate::poll::poll_until(patience, Duration::from_millis(10), || {
                    try_lock(file).then_some(())
                })
                .is_some()
            })
        })
        .collect()
}

/// Removes the temporaries dead goats left in `dir`.
pub fn sweep(dir: &Path) -> Vec<Stale> {
    temporaries_in(dir)
        .into_iter()
        .filter_map(|(path, pid)| remove_if_stale(&path, pid))
        .collect()
}

/// Removes the private directories `PREFIXPID-XXXXXX` that dead goats
/// left in `dir` (`goat why` keeps its copy of a process in one), with the
/// regular files in them; returns how many. Only directories of ours whose
/// named goat is dead; nothing is followed through a symlink.
pub fn sweep_dirs(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in entries.take(MAX_ENTRIES).flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| dir_writer_pid(n, prefix)) else {
            continue;
        };
        if pid == std::process::id() as i32 || alive(pid) {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me {
            continue;
        }
        for f in std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .take(16)
        {
            if f.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(f.path());
            }
        }
        if std::fs::remove_dir(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The pid of a directory name `PREFIXPID-XXXXXX`, if it is one.
fn dir_writer_pid(name: &str, prefix: &str) -> Option<i32> {
    let (pid, suffix) = name.strip_prefix(prefix)?.split_once('-')?;
    let hex = suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if !hex || !digits {
        return None;
    }
    pid.parse().ok().filter(|&p: &i32| p > 0)
}

/// The files in `dir` named as goat's temporaries, each with its writer's
/// pid (listed whole first: the callers remove some as they go).
fn temporaries_in(dir: &Path) -> Vec<(PathBuf, i32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .take(MAX_ENTRIES)
        .filter_map(|e| {
            let e = e.ok()?;
            let pid = writer_pid(e.file_name().to_str()?)?;
            Some((e.path(), pid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn recognises_only_goat_temporary_names() {
        assert_eq!(writer_pid(".core.12.tmp-goat4242-0a1b2c"), Some(4242));
        assert_eq!(writer_pid(".x.tmp-goat.tmp-goat7-abcdef"), Some(7));
        for bad in [
            "core.12.tmp-goat4242-0a1b2c", // no leading dot
            ".core.12.tmp-goat4242-0a1b2",
            ".core.12.tmp-goat-0a1b2c",
            ".core.12.tmp-goatx1-0a1b2c",
            ".core.12.tmp-goat0-0a1b2c",
            ".core.12.tmp-0a1b2c",
            ".core.12.tmp-goat12-0a1b2g",
        ] {
            assert_eq!(writer_pid(bad), None, "{bad}");
        }
    }

    #[test]
    fn removes_only_dead_goats_copy_directories() {
        let d = std::env::temp_dir().join(format!("goat-stale-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id() as i32;
        c.wait().unwrap();
        let mk = |name: String| {
            let p = d.join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("core"), b"core bytes").unwrap();
            p
        };
        let stale = mk(format!(".goat-why-{dead}-a1B2c3"));
        let mine = mk(format!(".goat-why-{}-a1B2c3", std::process::id()));
        let odd = mk(format!(".goat-why-{dead}-a1B2c"));
        let other = mk(format!(".goat-whyx-{dead}-a1B2c3"));
        assert_eq!(sweep_dirs(&d, ".goat-why-"), 1);
        assert!(!stale.exists());
        assert!(mine.join("core").exists());
        assert!(odd.exists() && other.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn removes_only_dead_writers_private_files() {
        let d = std::env::temp_dir().join(format!("goat-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        // A pid that is surely not running: a reaped child's.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let dead = c.id() as i32;
        c.wait().unwrap();
        let mk = |name: &str, mode: u32| {
            let p = d.join(name);
            std::fs::write(&p, b"core bytes").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let stale = mk(&format!(".core.1.tmp-goat{dead}-00aa11"), 0o600);
        let loose = mk(&format!(".core.2.tmp-goat{dead}-00aa12"), 0o644);
        let mine = mk(
            &format!(".core.3.tmp-goat{}-00aa13", std::process::id()),
            0o600,
        );
        let other = mk(&format!("core.4.tmp-goat{dead}-00aa14"), 0o600);
        // Locked by a live holder (as a writer in another pid namespace
        // would be): kept even though the pid in its name is dead.
        let locked = mk(&format!(".core.5.tmp-goat{dead}-00aa15"), 0o600);
        let holder = File::open(&locked).unwrap();
        assert!(try_lock(&holder));
        let link = d.join(format!(".core.6.tmp-goat{dead}-00aa16"));
        std::os::unix::fs::symlink(&stale, &link).unwrap();

        let removed = sweep(&d);
        let paths: Vec<&Path> = removed.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(paths, vec![stale.as_path()], "{removed:?}");
        assert_eq!(removed[0].pid, dead);
        for kept in [&loose, &mine, &other, &locked] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert!(std::fs::symlink_metadata(&link).is_ok());
        drop(holder);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_tracer_removes_what_its_goat_left_once_the_lock_is_free() {
        let d = std::env::temp_dir().join(format!("goat-left-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (writer, other) = (4_000_001, 4_000_002);
        let mk = |name: String, mode: u32| {
            let p = d.join(name);
            std::fs::write(&p, b"core bytes").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let left = mk(format!(".core.1.tmp-goat{writer}-00aa11"), 0o600);
        // Still locked when the tracer looks (the dying goat's files not
        // closed yet): removed once the lock is let go.
        let late = mk(format!(".core.2.tmp-goat{writer}-00aa12"), 0o600);
        let holder = File::open(&late).unwrap();
        assert!(try_lock(&holder));
        let loose = mk(format!(".core.3.tmp-goat{writer}-00aa13"), 0o644);
        let others = mk(format!(".core.4.tmp-goat{other}-00aa14"), 0o600);
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(holder);
        });
        let removed = remove_left_by(&d, writer, Duration::from_secs(10));
        release.join().unwrap();
        let mut paths: Vec<&Path> = removed.iter().map(|s| s.path.as_path()).collect();
        paths.sort();
        assert_eq!(paths, vec![left.as_path(), late.as_path()], "{removed:?}");
        assert!(loose.exists() && others.exists());
        // A lock never let go is given up on after the patience.
        let held = mk(format!(".core.5.tmp-goat{writer}-00aa15"), 0o600);
        let holder = File::open(&held).unwrap();
        assert!(try_lock(&holder));
        assert!(remove_left_by(&d, writer, Duration::from_millis(50)).is_empty());
        assert!(held.exists());
        drop(holder);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
