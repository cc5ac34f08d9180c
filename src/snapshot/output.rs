//! Creating the core file safely: a private temporary (0600, `O_EXCL`,
//! `O_NOFOLLOW`) beside the destination, fsync, then an atomic rename that
//! never follows or (without `force`) replaces what is at the final name.
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

/// A temporary file that becomes `dest` on [`TempCore::commit`] and is
/// removed if dropped before that.
#[derive(Debug)]
pub struct TempCore {
    pub file: File,
    tmp: PathBuf,
    dest: PathBuf,
    force: bool,
    committed: bool,
}

fn suffix(attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let x =
        ((std::process::id() as u64) << 32) ^ u64::from(nanos) ^ (u64::from(attempt) * 0x9e37_79b9);
    format!("{:06x}", x & 0xff_ffff)
}

/// Fails when something is at `dest` and `force` is not set (a symlink
/// counts and is never followed); a directory is refused even with `force`.
pub fn check_dest(dest: &Path, force: bool) -> io::Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is a directory", dest.display()),
        )),
        Ok(_) if !force => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists (use --force to replace it)",
                dest.display()
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl TempCore {
    /// Creates `.DEST.tmp-goatPID-XXXXXX` in `dest`'s directory, locked.
    pub fn create(dest: &Path, force: bool) -> io::Result<TempCore> {
        check_dest(dest, force)?;
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", dest.display())))?;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
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
                    super::stale::try_lock(&file);
                    return Ok(TempCore {
                        file,
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
    use std::os::unix::fs::PermissionsExt;

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
        let pid = super::super::stale::writer_pid(tmp_name);
        assert_eq!(pid, Some(std::process::id() as i32), "{tmp_name}");
        // Locked while being written: no sweep takes it.
        let other = File::open(t.tmp_path()).unwrap();
        assert!(!super::super::stale::try_lock(&other));
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
        let t = TempCore::create(&dest, true).unwrap();
        t.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&dest).unwrap().is_symlink());
        let t = TempCore::create(&d.join("core.3"), false).unwrap();
        let tmp = t.tmp_path().to_path_buf();
        drop(t);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
