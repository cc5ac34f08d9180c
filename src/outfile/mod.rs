//! Creating an output file safely (a core, or `dump-bytes`' file): a
//! private temporary (0600, `O_EXCL`, `O_NOFOLLOW`) beside the destination,
//! fsync, then an atomic rename that never follows or (without `force`)
//! replaces what is at the final name.
//!
//! The destination itself is never opened, so a FIFO or a device there
//! cannot block goat while its target waits stopped (and `check_dest`
//! refuses them). `--force` replaces a file by renaming a new one over it
//! rather than truncating it in place: the result is 0600 whatever the old
//! mode was (an `fchmod` after the fact would leave a moment with the new
//! bytes under the old mode, and fail on a file someone else owns), the old
//! contents stay whole if the write fails half-way, and a hard link to the
//! old file keeps the old bytes instead of receiving the new ones.
//!
//! The temporary is `.NAME.tmp-goatPID-XXXXXX` (hidden; PID is goat's own)
//! and goat holds an exclusive `flock` on it while writing, so a later run
//! can tell one left by a killed goat from one being written (`stale.rs`).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub mod direct;
pub mod stale;

/// A temporary file that becomes `dest` on [`TempCore::commit`] and is
/// removed if dropped before that.
#[derive(Debug)]
pub struct TempCore {
    pub file: File,
    tmp: PathBuf,
    dest: PathBuf,
    force: bool,
    committed: bool,
    /// Removes `tmp` if a signal ends goat before `commit`.
    _on_signal: crate::tracer::UnfinishedFile,
}

fn suffix(attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let x =
        ((std::process::id() as u64) << 32) ^ u64::from(nanos) ^ (u64::from(attempt) * 0x9e37_79b9);
    format!("{:06x}", x & 0xff_ffff)
}

/// Refuses `dest` unless it is free, or (with `force`) a regular file:
/// goat writes only regular files of its own. A FIFO or a device would
/// block the write (or feed a program reading it) while the target waits
/// stopped; a directory cannot be replaced. A symbolic link is refused
/// even with `force`: writing through it (gdb's and Delve's way) lets a
/// link planted in a shared directory such as /tmp aim goat at any file
/// the user can write, and replacing the link itself would put the bytes
/// somewhere other than where the user's link says. `lstat` only: nothing
/// is opened, so nothing here can block.
pub fn check_dest(dest: &Path, force: bool) -> io::Result<()> {
    let m = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot look at {}: {e}", dest.display()),
            ))
        }
    };
    let ft = m.file_type();
    if ft.is_symlink() {
        // Whoever made the link chose its text: no control characters
        // reach the terminal, and the message stays one line.
        let to = std::fs::read_link(dest)
            .map(|t| {
                let shown = t.to_string_lossy().replace(char::is_control, "?");
                format!(" to {shown}")
            })
            .unwrap_or_default();
        return Err(refusal(
            dest,
            &format!(
                "it is a symbolic link{to}, which goat neither follows nor replaces \
                 (give the path it points to, or remove the link)"
            ),
        ));
    }
    if let Some(what) = not_regular(&ft) {
        return Err(refusal(
            dest,
            &format!("it is {what}, not a regular file (give a new file's path)"),
        ));
    }
    if !force {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "not writing to {}: it already exists (use -f or --force to replace it)",
                dest.display()
            ),
        ));
    }
    Ok(())
}

/// What a file type is, when it is neither a regular file nor a symlink.
pub fn not_regular(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if ft.is_file() || ft.is_symlink() {
        return None;
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    })
}

fn refusal(dest: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not writing to {}: {why}", dest.display()),
    )
}

/// The directory `dest`'s temporary goes in: `dest`'s own.
pub fn temp_dir(dest: &Path) -> &Path {
    match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

impl TempCore {
    /// Creates `.DEST.tmp-goatPID-XXXXXX` in `dest`'s directory, locked.
    pub fn create(dest: &Path, force: bool) -> io::Result<TempCore> {
        check_dest(dest, force)?;
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", dest.display())))?;
        let dir = temp_dir(dest);
        let mut last = None;
        for attempt in 0..16 {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(
                ".tmp-goat{}-{}",
                std::process::id(),
                suffix(attempt)
            ));
            let tmp = dir.join(tmp_name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(file) => {
                    // Held until the file is closed (or goat dies): "being
                    // written". A fresh file's lock is always free.
                    stale::try_lock(&file);
                    return Ok(TempCore {
                        file,
                        _on_signal: crate::tracer::UnfinishedFile::new(&tmp),
                        tmp,
                        dest: dest.to_path_buf(),
                        force,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no temporary name free")))
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs and renames to the destination (refusing to replace anything
    /// there unless `force`), then fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        if self.force {
            // What was checked at `create` may have been swapped meanwhile
            // (a long write): a FIFO, device or link put there since is not
            // replaced. (A swap in the microseconds before the rename is
            // harmless: rename neither follows nor opens what it replaces.)
            check_dest(&self.dest, true)?;
        }
        let from = CString::new(self.tmp.as_os_str().as_bytes())?;
        let to = CString::new(self.dest.as_os_str().as_bytes())?;
        let flags = if self.force {
            0
        } else {
            libc::RENAME_NOREPLACE
        };
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                flags,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(match e.raw_os_error() {
                    Some(libc::EEXIST) => io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} appeared meanwhile (use --force to replace it)",
                            self.dest.display()
                        ),
                    ),
                    _ => e,
                });
            }
            // The filesystem has no RENAME_NOREPLACE: link (never replaces)
            // or, with force, a plain rename (replaces a symlink itself).
            if self.force {
                std::fs::rename(&self.tmp, &self.dest)?;
            } else {
                std::fs::hard_link(&self.tmp, &self.dest)?;
                let _ = std::fs::remove_file(&self.tmp);
            }
        }
        self.committed = true;
        if let Some(dir) = self.dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for TempCore {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("goat-out-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commits_0600_and_refuses_to_replace() {
        let d = scratch("commit");
        let dest = d.join("core.1");
        let mut t = TempCore::create(&dest, false).unwrap();
        assert!(t.tmp_path().starts_with(&d));
        let tmp_name = t.tmp_path().file_name().unwrap().to_str().unwrap();
        let pid = super::stale::writer_pid(tmp_name);
        assert_eq!(pid, Some(std::process::id() as i32), "{tmp_name}");
        // Locked while being written: no sweep takes it.
        let other = File::open(t.tmp_path()).unwrap();
        assert!(!super::stale::try_lock(&other));
        t.file.write_all(b"x").unwrap();
        t.commit().unwrap();
        let m = std::fs::metadata(&dest).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert!(TempCore::create(&dest, false).is_err());
        let t = TempCore::create(&dest, true).unwrap();
        t.commit().unwrap();
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), 0);
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporaries left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn never_follows_a_symlink_and_cleans_up_on_drop() {
        let d = scratch("link");
        let target = d.join("victim");
        std::fs::write(&target, b"keep").unwrap();
        let dest = d.join("core.2");
        std::os::unix::fs::symlink(&target, &dest).unwrap();
        assert!(TempCore::create(&dest, false).is_err());
        // Not replaced either, even with force: refused, saying what it is.
        let e = TempCore::create(&dest, true).unwrap_err().to_string();
        assert!(e.contains("symbolic link to "), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&dest).unwrap().is_symlink());
        let t = TempCore::create(&d.join("core.3"), false).unwrap();
        let tmp = t.tmp_path().to_path_buf();
        drop(t);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_even_with_force() {
        let d = scratch("special");
        let fifo = d.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sock = d.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/null"), "a character device"),
            (sock.as_path(), "a socket"),
            (d.as_path(), "a directory"),
        ] {
            for force in [false, true] {
                let e = check_dest(path, force).unwrap_err().to_string();
                let want = format!(
                    "not writing to {}: it is {what}, not a regular file",
                    path.display()
                );
                assert!(e.starts_with(&want), "{e}");
            }
        }
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn force_replaces_a_loose_file_with_a_private_one() {
        let d = scratch("loose");
        let dest = d.join("out");
        std::fs::write(&dest, b"old").unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = TempCore::create(&dest, false).unwrap_err().to_string();
        assert!(e.contains("already exists (use -f or --force"), "{e}");
        let mut t = TempCore::create(&dest, true).unwrap();
        t.file.write_all(b"new").unwrap();
        // A FIFO put there during the write is not replaced at commit.
        std::fs::remove_file(&dest).unwrap();
        let c = CString::new(dest.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(t.commit().is_err());
        std::fs::remove_file(&dest).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut t = TempCore::create(&dest, true).unwrap();
        t.file.write_all(b"new").unwrap();
        t.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporaries left");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
