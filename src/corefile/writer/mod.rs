//! `goat core`: a gcore-style ELF core of a live process, which gdb and
//! `dlv core` open, written without killing the target.
//!
//! Three modes:
//! - [`Mode::Live`] (the default): copied while the target runs, its writes
//!   tracked; stopped only to re-read the last of them (see [`live`]).
//! - [`Mode::Stop`]: every thread stays stopped while the whole core is
//!   written (what gdb's `gcore` does).
//! - [`Mode::Fork`]: every thread is stopped just long enough to read the
//!   registers and have one thread run `clone(0)` (see `tracer/inject.rs`);
//!   the target then runs on while the frozen copy-on-write copy is dumped,
//!   killed and reaped.
//!
//! Layout and contents follow the kernel's own cores (`fs/binfmt_elf.c`):
//! see [`maps`] (which mappings, by `coredump_filter`), [`notes`] and [`elf`].

pub mod elf;
mod extents;
mod flush;
mod fork;
mod live;
pub mod maps;
pub mod notes;
mod write;

pub use fork::{fork_feasible, injection_feasible as syscall_injection_feasible, Infeasible};
pub use live::LiveStats;
use write::{write_file, Facts};

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::process::has_exited;
use crate::process::{Memory, ProcessMemory, Target};
use crate::tracer::{AttachError, LiveProcess, StopWindow, Stopped};

use maps::{dump_rule, read_filter, Vma};
use notes::{ProcessInfo, ThreadInfo};

/// How the target is kept consistent while its memory is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stopped for the whole write.
    Stop,
    /// Stopped only to clone a frozen copy, which is dumped instead.
    Fork,
    /// Copied while running, with the target's writes tracked; stopped
    /// only to re-copy the last of them (see [`live`]).
    Live,
}

/// What `goat core` should do.
#[derive(Debug, Clone)]
pub struct CoreOptions {
    pub dest: PathBuf,
    pub mode: Mode,
    /// Replace an existing file (never following a symlink) at `dest`.
    pub force: bool,
    /// Tests only: sleep this long in the middle of the dump.
    pub hold: Option<Duration>,
    /// Tests only: inject syscalls even under a seccomp filter.
    pub inject_under_seccomp: bool,
}

/// What writing the core cost.
#[derive(Debug, Clone, Default)]
pub struct CoreStats {
    /// The mode actually used (another after a fallback).
    pub mode: Option<Mode>,
    /// Why the mode asked for was not used, if it was not: (mode, why).
    pub fallback: Vec<(Mode, String)>,
    /// Live mode's own figures.
    pub live: Option<LiveStats>,
    /// The main stop: when it began and how long it lasted
    /// ([`Self::pause`]).
    pub window: Option<StopWindow>,
    /// Fork mode: how much of the pause the kernel's fork took.
    pub clone: Duration,
    /// Fork mode: the second, short stop that reaps the copy.
    pub reap_pause: Duration,
    /// Zombies of copies left by killed goats, reaped in that stop.
    pub leftovers_reaped: usize,
    /// Whether that stop held one thread only (else every thread).
    pub reap_one_thread: bool,
    pub threads: usize,
    pub segments: usize,
    /// Temporaries of killed goats removed from the destination directory.
    pub stale_removed: Vec<crate::outfile::stale::Stale>,
    /// Bytes written (holes excluded).
    pub bytes_written: u64,
    /// The file's length and the space it takes on disk (it is sparse).
    pub file_len: u64,
    pub disk_bytes: u64,
    pub unreadable_pages: u64,
    pub total: Duration,
    /// goat's tracer and guardian processes, for `--stats`.
    pub helpers: Vec<crate::tracer::oom::Helper>,
}

impl CoreStats {
    /// Records the main stop.
    fn stopped(&mut self, stopped: &Stopped<'_>) {
        self.window = Some(stopped.window());
    }

    /// How long the target was stopped (the main stop).
    pub fn pause(&self) -> Duration {
        self.window.map_or(Duration::ZERO, |w| w.lasted)
    }

    /// Every stop of the target, in order: live mode's setup stop, then
    /// the main one.
    pub fn stops(&self) -> Vec<StopWindow> {
        let setup = self.live.as_ref().and_then(|l| l.setup);
        setup.into_iter().chain(self.window).collect()
    }
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// `{what}`; the cause is its source (anyhow prints the chain).
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The target exited while its core was being written.
    #[error("pid {pid} exited while its core was being written; nothing was saved as {}", dest.display())]
    TargetGone { pid: i32, dest: PathBuf },
    /// The filesystem filled up (or a quota ran out) while writing.
    #[error(
        "{cause} writing {} after {} MiB (the partial file was removed; the target runs on, untouched)",
        dest.display(),
        written >> 20
    )]
    DiskFull {
        cause: &'static str,
        dest: PathBuf,
        written: u64,
    },
    /// goat's tracer process died (killed) while the core was written.
    #[error(
        "goat's tracer process (pid {tracer}) died while the core of pid {pid} was being written; \
         nothing was saved as {}; the target runs on, untraced{}",
        dest.display(),
        match reaped {
            Ok(0) => String::new(),
            Ok(n) => format!(" ({n} zombie snapshot cop{} reaped)", if *n == 1 { "y" } else { "ies" }),
            Err(e) => format!(" (its snapshot copy may be left as a zombie: {e})"),
        }
    )]
    TracerDied {
        pid: i32,
        tracer: i32,
        dest: PathBuf,
        reaped: Result<usize, AttachError>,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let what = what.into();
    move |source| SnapshotError::Io { what, source }
}

/// Writes a core of the attached process `live` to `opts.dest`. The target
/// is resumed (and, in fork mode, its copy killed and reaped) on every path.
pub fn write_core(live: &LiveProcess, opts: &CoreOptions) -> Result<CoreStats, SnapshotError> {
    write_core_of(live, opts).map_err(|e| match (has_exited(live.pid()), live.tracer_lost()) {
        // Whatever failed, this is why: say so rather than which read.
        (true, _) => SnapshotError::TargetGone {
            pid: live.pid(),
            dest: opts.dest.clone(),
        },
        // The survivor cleans up: a fork-mode copy died with the tracer
        // (PTRACE_O_EXITKILL, or its way back), a zombie only the target
        // can reap.
        (false, Some(tracer)) => SnapshotError::TracerDied {
            pid: live.pid(),
            tracer,
            dest: opts.dest.clone(),
            reaped: LiveProcess::reap_leftover_copies(live.pid()),
        },
        (false, None) => e,
    })
}

fn write_core_of(live: &LiveProcess, opts: &CoreOptions) -> Result<CoreStats, SnapshotError> {
    let start = Instant::now();
    let pid = live.pid();
    let mut stats = CoreStats::default();
    // Before the temporary exists: goat killed at any moment after this
    // leaves nothing behind.
    live.watch_temporaries(crate::outfile::temp_dir(&opts.dest))?;
    let tmp = create_temp(&opts.dest, opts.force, &mut stats)?;
    let filter = read_filter(pid);
    let mut mode = opts.mode;
    // Fork and live mode both run syscalls in the target; a fork needs room.
    let feasible = match mode {
        Mode::Stop => Ok(false),
        Mode::Live => injection_feasible(pid, live, opts.inject_under_seccomp).map(|()| true),
        Mode::Fork => injection_feasible(pid, live, opts.inject_under_seccomp)
            .and_then(|()| fork::memory_headroom(pid).map(|()| true)),
    };
    let injects = feasible.unwrap_or_else(|why| {
        stats.fallback.push((mode, why.to_string()));
        mode = Mode::Stop;
        false
    });
    if mode == Mode::Live && injects {
        match live::write_live(live, &tmp.file, &opts.dest, (filter, opts.hold), &mut stats) {
            Ok(releasing) => {
                stats.mode = Some(Mode::Live);
                let r = finish(tmp, &opts.dest, stats, start);
                releasing.wait();
                return r;
            }
            Err(Ok(live::Unavailable(why))) => {
                stats.fallback.push((Mode::Live, why));
                mode = match fork::memory_headroom(pid) {
                    Ok(()) => Mode::Fork,
                    Err(why) => {
                        stats.fallback.push((Mode::Fork, why.to_string()));
                        Mode::Stop
                    }
                };
            }
            Err(Err(e)) => return Err(e),
        }
    }

    let stopped = live.stop()?;
    let (threads, pinfo) = stop_facts(&stopped, pid)?;
    stats.threads = threads.len();

    let mut child = None;
    if mode == Mode::Fork && injects {
        match stopped.fork_copy() {
            Ok(f) => {
                stats.clone = f.clone;
                child = Some(f.child);
            }
            Err(e) => {
                stats
                    .fallback
                    .push((Mode::Fork, format!("cloning the target failed: {e}")));
                mode = Mode::Stop;
            }
        }
    }
    stats.mode = Some(mode);
    let facts = Facts {
        pinfo: &pinfo,
        threads: &threads,
        filter,
        hold: opts.hold,
    };
    let result = match child {
        None => {
            let r = write_file(&tmp, &opts.dest, pid, &stopped, &facts, &mut stats);
            stats.stopped(&stopped);
            // SIGKILL ends even a stopped target, and its memory then reads
            // as unreadable (holes): such a file is not a core of it.
            let r = r.and_then(|()| match has_exited(pid) {
                true => Err(SnapshotError::TargetGone {
                    pid,
                    dest: opts.dest.clone(),
                }),
                false => Ok(()),
            });
            stopped.resume()?;
            r
        }
        Some(c) => {
            stats.stopped(&stopped);
            stopped.resume()?;
            // Never process_vm_readv here: it would copy every shared page.
            let mem = ProcessMemory::without_pinning(c);
            let r = write_file(&tmp, &opts.dest, c, &mem, &facts, &mut stats);
            let reaped = live.release_copy();
            match reaped {
                Ok(d) => {
                    stats.reap_pause = d.pause;
                    stats.leftovers_reaped = d.leftovers;
                    stats.reap_one_thread = d.one_thread;
                }
                Err(e) => {
                    r?;
                    return Err(e.into());
                }
            }
            r
        }
    };
    result?;
    finish(tmp, &opts.dest, stats, start)
}

/// Whether syscalls can be run in the target (fork and live mode);
/// `Err(why)` if not. The tracer finds the instructions it runs them with
/// itself, in a stop (`tracer/rescue.rs`).
fn injection_feasible(pid: i32, live: &LiveProcess, under_seccomp: bool) -> Result<(), Infeasible> {
    fork::injection_feasible(pid, under_seccomp)?;
    // Best effort: without it, an injection is as safe as the tracer's life.
    let _ = live.prepare_injection();
    Ok(())
}

/// Saves the written temporary under `dest`, with the figures of the end.
fn finish(
    tmp: crate::outfile::TempCore,
    dest: &Path,
    mut stats: CoreStats,
    start: Instant,
) -> Result<CoreStats, SnapshotError> {
    tmp.commit().map_err(|e| {
        // fsync can be where a full disk shows (delayed allocation, NFS).
        if write::disk_full(&e) {
            write::write_error(dest, stats.bytes_written, e)
        } else {
            io_err(format!("saving {}", dest.display()))(e)
        }
    })?;
    if let Ok(m) = std::fs::metadata(dest) {
        stats.disk_bytes = m.blocks() * 512;
    }
    stats.total = start.elapsed();
    Ok(stats)
}

/// Writes a core of a target that is already stopped (a debugging session
/// at its prompt): exactly the stop the user is looking at. The target stays
/// stopped; nothing is injected.
pub fn write_core_stopped(
    stopped: &Stopped<'_>,
    dest: &Path,
    force: bool,
) -> Result<CoreStats, SnapshotError> {
    let start = Instant::now();
    // A live target always has one.
    let pid = Target::pid(stopped).unwrap_or_default();
    let mut stats = CoreStats {
        mode: Some(Mode::Stop),
        ..CoreStats::default()
    };
    let tmp = create_temp(dest, force, &mut stats)?;
    let (threads, pinfo) = stop_facts(stopped, pid)?;
    stats.threads = threads.len();
    let facts = Facts {
        pinfo: &pinfo,
        threads: &threads,
        filter: read_filter(pid),
        hold: None,
    };
    write_file(&tmp, dest, pid, stopped, &facts, &mut stats)?;
    tmp.commit()
        .map_err(io_err(format!("saving {}", dest.display())))?;
    if let Ok(m) = std::fs::metadata(dest) {
        stats.disk_bytes = m.blocks() * 512;
    }
    stats.total = start.elapsed();
    Ok(stats)
}

/// The registers of every stopped thread and the process facts, for the notes.
fn stop_facts(
    stopped: &Stopped<'_>,
    pid: i32,
) -> Result<(Vec<ThreadInfo>, ProcessInfo), SnapshotError> {
    let fp = stopped.fp_states()?;
    let threads = stopped
        .threads()
        .iter()
        .zip(fp)
        .map(|(t, f)| ThreadInfo::read(pid, t, f))
        .collect();
    Ok((threads, ProcessInfo::read(pid)))
}

/// The temporary file the core is written to, beside `dest`; temporaries
/// that killed goats left in that directory are removed first.
fn create_temp(
    dest: &Path,
    force: bool,
    stats: &mut CoreStats,
) -> Result<crate::outfile::TempCore, SnapshotError> {
    stats.stale_removed = crate::outfile::stale::sweep(crate::outfile::temp_dir(dest));
    crate::outfile::TempCore::create(dest, force).map_err(io_err(format!(
        "creating a core file for {}",
        dest.display()
    )))
}

/// Holds the write here for `GOAT_TEST_HOLD_STOPPED_MS` (test builds only:
/// `hold` is `None` otherwise), after saying so on stderr, so that a test
/// acts once goat has reached this point rather than after a guessed delay
/// (under load, a guess can land before the temporary is even registered).
fn hold_for_tests(hold: Option<Duration>) {
    if let Some(h) = hold {
        crate::eprintln_quiet!("goat: test hook: holding for {} ms", h.as_millis());
        std::thread::sleep(h);
    }
}
