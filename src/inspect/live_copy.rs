//! The step `goat why` and `goat heap` share: a live process copied as
//! `goat core --mode live` copies it (a pause of milliseconds, the copy
//! consistent as of that pause; fork or stop mode where live mode cannot
//! run, with the reason in a warning) into a private directory, opened by
//! descriptor and unlinked at once, then opened as a core (read through a
//! memory map) and handed to the analysis while the program runs on.

use std::path::{Path, PathBuf};

use crate::corefile::writer::{CoreOptions, Mode};
use crate::goruntime::gcphase::MarkWait;
use crate::tracer::StopWindow;

use super::write_core::SaveExecutable;
use super::{InspectError, Inspector, OpenOptions, Warning};

/// The private directories of a copy: `.goat-why-PID-XXXXXX` (named so
/// since `goat why` first made them; `goat heap` shares the name, so one
/// sweep removes what either left when killed).
const COPY_DIR_PREFIX: &str = ".goat-why-";

impl Inspector {
    /// Copies live process `pid` (executable `exe`) into `scratch` (default
    /// `$TMPDIR`, else `/var/tmp`), opens the copy as a core and runs
    /// `analyse` on it. Returns its result and the process's stops.
    pub(super) fn on_live_copy<T>(
        pid: i32,
        exe: &Path,
        scratch: Option<&PathBuf>,
        open: &OpenOptions,
        warn: &mut dyn FnMut(Warning),
        analyse: impl FnOnce(&Inspector, &mut dyn FnMut(Warning)) -> Result<T, InspectError>,
    ) -> Result<(T, CopyFacts, ReleasedCopy), InspectError> {
        // On disk where there is one: the copy is as large as the
        // process's memory, too much for a tmpfs `/tmp`.
        let dir = scratch
            .cloned()
            .unwrap_or_else(crate::process::temporary_dir);
        // A private directory named for goat's pid: what a goat killed
        // before it unlinked the copy left, the next goat here removes
        // (`outfile::stale::sweep_dirs`).
        crate::outfile::stale::sweep_dirs(&dir, COPY_DIR_PREFIX);
        let holder = tempfile::Builder::new()
            .prefix(&format!("{COPY_DIR_PREFIX}{}-", std::process::id()))
            .rand_bytes(6)
            .tempdir_in(&dir)
            .map_err(|cause| InspectError::Spill {
                dir: dir.clone(),
                cause,
            })?;
        let dest = holder.path().join("core");
        // After a deploy the name the process was started from reaches
        // another file, or none: the running one is read through
        // `/proc/PID/exe`, which holds it while the process lives (and the
        // copy is read while it runs on).
        let exe = match super::saved_exe::unreachable_by_name(pid) {
            Some(_) => crate::process::procfs::exe_path(pid),
            None => exe.to_path_buf(),
        };
        let stats = super::write_core::write(
            pid,
            &CoreOptions {
                dest: dest.clone(),
                mode: Mode::Live,
                force: false,
                hold: super::hold_duration(),
                inject_under_seccomp: false,
            },
            SaveExecutable::Never,
            warn,
        )?;
        // Opened, then unlinked at once: the copy is read through the
        // descriptor and gone from the disk whatever happens. Writable:
        // the core reader frees its blocks once the analysis is done
        // reading it (`CoreFile::adopt_scratch`).
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&dest);
        let _ = std::fs::remove_file(&dest);
        let file = opened.map_err(|cause| {
            InspectError::Core(crate::corefile::CoreError::Io {
                path: dest.clone(),
                cause,
            })
        })?;
        let by_fd = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&file)
        ));
        let open = OpenOptions {
            map_core: true,
            ..open.clone()
        };
        let copy = Inspector::open_core_with(&by_fd, Some(&exe), &open, warn);
        drop(holder);
        let copy = copy?;
        if let Some(core) = copy.core_file() {
            core.adopt_scratch(file);
        }
        let out = analyse(&copy, warn)?;
        let facts = CopyFacts {
            stops: stats.stops(),
            gc_marks: stats.live.map(|l| l.gc_marks).unwrap_or_default(),
        };
        Ok((out, facts, ReleasedCopy::release(copy)))
    }
}

/// What a live copy did to the process, for `--stats`.
#[derive(Debug, Clone, Default)]
pub struct CopyFacts {
    /// The process's stops, in order: when each began and how long it
    /// lasted.
    pub stops: Vec<StopWindow>,
    /// The garbage collector's marks the copy waited out before its final
    /// stop (see `goruntime/gcphase.rs`).
    pub gc_marks: Vec<MarkWait>,
}

/// A live copy being given back on a thread of its own while the caller
/// prints what it found: the kernel takes about a second to free a
/// million goroutines' copy (4.5 GB unlinked, and its map). Dropping it
/// waits for the end, so that goat never exits with the work half done.
#[derive(Default)]
pub struct ReleasedCopy(Option<std::thread::JoinHandle<()>>);

impl ReleasedCopy {
    fn release(copy: Inspector) -> ReleasedCopy {
        let spawned = std::thread::Builder::new()
            .name("goat-release".into())
            .spawn(move || drop(copy));
        // No thread: the copy was dropped with the closure, here.
        ReleasedCopy(spawned.ok())
    }
}

impl Drop for ReleasedCopy {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}
