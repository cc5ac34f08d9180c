//! The executable saved beside a core (`CORE.exe`) when the one the process
//! runs can no longer be reached by its name: deleted or replaced by a
//! deploy, or in a filesystem this machine does not see. Without it the
//! core is of no use once the process is gone (nothing else holds the
//! text, pclntab and DWARF); through `/proc/PID/exe` the kernel still
//! serves the running image, so `goat core` copies it, and `goat stacks
//! --core` and `goat debug` look for it before the name the core records.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::outfile::TempCore;
use crate::process::procfs;

/// What a core saved as `core` calls its executable's copy: `core.exe`.
pub(super) fn beside(core: &Path) -> PathBuf {
    let mut name = core.as_os_str().to_os_string();
    name.push(".exe");
    PathBuf::from(name)
}

/// The copy saved beside `core`, if there is one: `CORE.exe`, or for a
/// core compressed afterwards (`CORE.zst`, systemd-coredump's suffixes)
/// the uncompressed name's. Only a regular file counts (never a link that
/// someone planted, never a FIFO that would block the open).
pub(super) fn find(core: &Path) -> Option<PathBuf> {
    let uncompressed = ["zst", "lz4", "xz"]
        .iter()
        .any(|x| core.extension().is_some_and(|e| e == *x))
        .then(|| beside(&core.with_extension("")));
    [Some(beside(core)), uncompressed]
        .into_iter()
        .flatten()
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
}

/// Why the running executable needs saving: the name the process was
/// started from (and which the core will record) no longer reaches the
/// file it runs. `None` when it does, or when nothing can be told (the
/// process gone: the core write will say so).
pub(super) fn unreachable_by_name(pid: i32) -> Option<PathBuf> {
    let link = procfs::exe(pid).ok()?;
    let running = std::fs::metadata(procfs::exe_path(pid)).ok()?;
    let text = link.to_string_lossy();
    let named = PathBuf::from(text.trim_end_matches(" (deleted)"));
    let same = std::fs::metadata(&named)
        .is_ok_and(|m| m.dev() == running.dev() && m.ino() == running.ino());
    (!same).then_some(named)
}

/// A copy of process `pid`'s running executable, written to a private
/// temporary beside `dest`, made `dest` by [`Pending::commit`] (after the
/// core is saved: no copy outlives a failed core).
pub(super) struct Pending {
    tmp: TempCore,
    pub dest: PathBuf,
    /// The name the process was started from, which no longer reaches it.
    pub named: PathBuf,
}

/// Copies `/proc/PID/exe` (the running image, whatever became of its name)
/// into a temporary for `dest`. Read while the target runs: an executable
/// being run cannot be written (ETXTBSY), so the bytes cannot change.
pub(super) fn copy(pid: i32, dest: &Path, force: bool, named: PathBuf) -> io::Result<Pending> {
    let mut tmp = TempCore::create(dest, force)?;
    let mut src = File::open(procfs::exe_path(pid))?;
    io::copy(&mut src, &mut tmp.file)?;
    Ok(Pending {
        tmp,
        dest: dest.to_path_buf(),
        named,
    })
}

impl Pending {
    pub fn commit(self) -> io::Result<PathBuf> {
        self.tmp.commit()?;
        Ok(self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_beside_the_core_or_its_uncompressed_name_and_only_as_a_file() {
        let d = std::env::temp_dir().join(format!("goat-saved-exe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let core = d.join("core.12");
        assert_eq!(find(&core), None);
        std::os::unix::fs::symlink("/bin/true", d.join("core.12.exe")).unwrap();
        assert_eq!(find(&core), None, "a link is not followed");
        std::fs::remove_file(d.join("core.12.exe")).unwrap();
        std::fs::write(d.join("core.12.exe"), b"x").unwrap();
        assert_eq!(find(&core), Some(d.join("core.12.exe")));
        assert_eq!(find(&d.join("core.12.zst")), Some(d.join("core.12.exe")));
        assert_eq!(find(&d.join("core.13.zst")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_process_run_from_its_file_needs_no_copy() {
        assert_eq!(unreachable_by_name(std::process::id() as i32), None);
    }
}
