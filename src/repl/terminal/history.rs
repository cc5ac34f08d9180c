//! The history file, `$XDG_STATE_HOME/goat/history` (else
//! `~/.local/state/goat/history`): one command a line, a newline inside one
//! written `<\n>`, as reedline's `FileBackedHistory` writes it, so history
//! from earlier goats reads the same.
//!
//! goat opens it itself instead of handing reedline the path, because
//! commands can hold secrets typed into `p` expressions and reedline opens
//! by path each time it saves: here the file is created 0600 (an existing
//! looser one is tightened), a symbolic link there is refused rather than
//! followed (a link planted there would receive every command), anything
//! but a regular file is refused (a FIFO would block the session's start,
//! with the target stopped), and commands are appended through the one
//! descriptor that was checked. Only interactive sessions keep history.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::outfile::not_regular;

/// Entries kept (the file is trimmed to this many when a session starts).
pub(in crate::repl) const ENTRIES: usize = 1000;
const NEWLINE_ESCAPE: &str = "<\\n>";

/// Why no history is kept: a one-line note for stderr (the session goes
/// on without).
#[derive(Debug, Error)]
#[error("goat: not keeping history in {}: {fault}", path.display())]
pub(in crate::repl) struct HistoryError {
    path: PathBuf,
    fault: HistoryFault,
}

/// What is wrong with the history file or its directory.
#[derive(Debug, Error)]
pub(in crate::repl) enum HistoryFault {
    #[error("cannot create its directory: {0}")]
    CreateDir(io::Error),
    #[error("it is a symbolic link, which goat does not follow (remove it to keep history)")]
    Symlink,
    /// A FIFO, device or the like: `what` it is.
    #[error("it is {0}, not a regular file (remove it to keep history)")]
    NotRegular(&'static str),
    #[error("cannot open it: {0}")]
    Open(io::Error),
    #[error("{0}")]
    Stat(io::Error),
    #[error("it is readable by others and cannot be made 0600: {0}")]
    Chmod(io::Error),
    #[error("cannot read it: {0}")]
    Read(io::Error),
}

pub(in crate::repl) struct History {
    file: File,
    last: Option<String>,
}

/// `$XDG_STATE_HOME/goat/history`, else `~/.local/state/goat/history`.
fn path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("goat/history"))
}

impl History {
    /// Opens (creating) the history file and reads its last [`ENTRIES`]
    /// entries, oldest first. `Ok(None)`: no HOME, so no place for one;
    /// `Err(why)`: a one-line note for stderr (the session goes on without).
    pub(in crate::repl) fn open() -> Result<Option<(History, Vec<String>)>, HistoryError> {
        match path() {
            Some(path) => History::open_at(&path).map(Some),
            None => Ok(None),
        }
    }

    fn open_at(path: &Path) -> Result<(History, Vec<String>), HistoryError> {
        let fail = |fault: HistoryFault| HistoryError {
            path: path.to_path_buf(),
            fault,
        };
        if let Some(dir) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(HistoryFault::CreateDir(e)))?;
        }
        // lstat first, so that a device there is not even opened (opening
        // one can have effects); fstat after, for what was really opened.
        if let Ok(m) = std::fs::symlink_metadata(path) {
            refuse(&m).map_err(fail)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => fail(HistoryFault::Symlink),
                _ => fail(HistoryFault::Open(e)),
            })?;
        let m = file.metadata().map_err(|e| fail(HistoryFault::Stat(e)))?;
        refuse(&m).map_err(fail)?;
        if m.mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(HistoryFault::Chmod(e)))?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| fail(HistoryFault::Read(e)))?;
        let all: Vec<String> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.replace(NEWLINE_ESCAPE, "\n"))
            .collect();
        let kept = all[all.len().saturating_sub(ENTRIES)..].to_vec();
        let mut h = History {
            file,
            last: kept.last().cloned(),
        };
        if kept.len() < all.len() {
            h.trim(&kept);
        }
        Ok((h, kept))
    }

    /// Rewrites the file with `kept` only, if no other goat holds it
    /// (its lock); otherwise it stays longer until a later session.
    fn trim(&mut self, kept: &[String]) {
        let fd = self.file.as_raw_fd();
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return;
        }
        let text: String = kept.iter().map(|e| encode(e) + "\n").collect();
        // O_APPEND: after the truncation, writes land at the start.
        let _ = self
            .file
            .set_len(0)
            .and_then(|()| self.file.write_all(text.as_bytes()));
        // SAFETY: as above.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
    }

    /// Appends `line` (one `write`, so concurrent sessions do not mix their
    /// lines), unless it is empty or repeats the last entry, as reedline's
    /// own history does. A failure is reported once and ends the history.
    pub(in crate::repl) fn add(this: &mut Option<History>, line: &str) {
        let Some(h) = this else { return };
        if line.trim().is_empty() || h.last.as_deref() == Some(line) {
            return;
        }
        if let Err(e) = h.file.write_all((encode(line) + "\n").as_bytes()) {
            crate::eprintln_quiet!("goat: history no longer kept: {e}");
            *this = None;
            return;
        }
        h.last = Some(line.to_string());
    }
}

fn encode(line: &str) -> String {
    line.replace('\n', NEWLINE_ESCAPE)
}

/// Why `m` is no file to keep history in, if it is not one.
fn refuse(m: &std::fs::Metadata) -> Result<(), HistoryFault> {
    if m.file_type().is_symlink() {
        return Err(HistoryFault::Symlink);
    }
    match not_regular(&m.file_type()) {
        Some(what) => Err(HistoryFault::NotRegular(what)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("goat-history-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_appends_and_reads_back() {
        let d = scratch("new");
        let p = d.join("state/goat/history");
        let (h, entries) = History::open_at(&p).unwrap();
        assert!(entries.is_empty());
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        let mut h = Some(h);
        for line in ["grs", "grs", "", "p \"a\nb\"", "bt"] {
            History::add(&mut h, line);
        }
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "grs\np \"a<\\n>b\"\nbt\n"
        );
        let (_, entries) = History::open_at(&p).unwrap();
        assert_eq!(entries, ["grs", "p \"a\nb\"", "bt"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tightens_a_loose_file_and_trims_it() {
        let d = scratch("loose");
        let p = d.join("history");
        let text: String = (0..ENTRIES + 5).map(|i| format!("p {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, entries) = History::open_at(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(entries.len(), ENTRIES);
        assert_eq!(entries[0], "p 5");
        let kept = std::fs::read_to_string(&p).unwrap();
        assert_eq!(kept.lines().count(), ENTRIES);
        assert!(kept.starts_with("p 5\n"), "{kept}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_links_and_special_files() {
        let d = scratch("refuse");
        let victim = d.join("victim");
        std::fs::write(&victim, b"x\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = History::open_at(&link).err().unwrap().to_string();
        assert!(e.contains("it is a symbolic link"), "{e}");
        assert_eq!(mode(&victim), 0o644, "not followed to chmod");
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = History::open_at(&fifo).err().unwrap().to_string();
        assert!(e.contains("it is a FIFO, not a regular file"), "{e}");
        let e = History::open_at(Path::new("/dev/null"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("it is a character device"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
