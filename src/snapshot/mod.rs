//! `goat core`: a gcore-style ELF core of a live process, which gdb and
//! `dlv core` open, written without killing the target.
//!
//! Two modes:
//! - [`Mode::Stop`]: every thread stays stopped while the whole core is
//!   written (what gdb's `gcore` does).
//! - [`Mode::Fork`]: every thread is stopped just long enough to read the
//!   registers and have one thread run `clone(0)` (see `target/inject.rs`);
//!   the target then runs on while the frozen copy-on-write copy is dumped,
//!   killed and reaped.
//!
//! Layout and contents follow the kernel's own cores (`fs/binfmt_elf.c`):
//! see [`maps`] (which mappings, by `coredump_filter`), [`notes`] and [`elf`].

pub mod elf;
pub mod maps;
pub mod notes;
pub mod output;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::target::{
    find_syscall_insn, read_mappings, AttachError, LiveProcess, Memory, ProcessMemory, Stopped,
    Target,
};

use maps::{dump_rule, parse_smaps, read_filter, Vma};
use notes::{ProcessInfo, ThreadInfo};

/// How the target is kept consistent while its memory is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stopped for the whole write.
    Stop,
    /// Stopped only to clone a frozen copy, which is dumped instead.
    Fork,
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
}

/// What writing the core cost.
#[derive(Debug, Clone, Default)]
pub struct CoreStats {
    /// The mode actually used (`Stop` after a fallback).
    pub mode: Option<Mode>,
    /// Why `Fork` fell back to `Stop`, if it did.
    pub fallback: Option<String>,
    /// How long the target was stopped (the main stop).
    pub pause: Duration,
    /// Fork mode: the second, short stop that reaps the copy.
    pub reap_pause: Duration,
    pub threads: usize,
    pub segments: usize,
    /// Bytes written (holes excluded).
    pub bytes_written: u64,
    /// The file's length and the space it takes on disk (it is sparse).
    pub file_len: u64,
    pub disk_bytes: u64,
    pub unreadable_pages: u64,
    pub total: Duration,
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
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let what = what.into();
    move |source| SnapshotError::Io { what, source }
}

/// Whether cloning the target is safe and likely to work; `Err(why)` if not.
pub fn fork_feasible(pid: i32) -> Result<(), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':').map(str::trim))
    };
    // Seized by goat already, a job-control stop shows as 't'.
    if field("State").is_some_and(|v| v.starts_with(['T', 't'])) {
        return Err(
            "the target is in a job-control stop (SIGSTOP): no thread can run the clone".into(),
        );
    }
    if field("Seccomp").is_some_and(|v| v != "0") {
        return Err("the target has a seccomp filter (an injected clone could kill it)".into());
    }
    let kb = |k: &str| -> u64 {
        field(k)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let anon = kb("RssAnon") * 1024;
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup{}", path.trim());
        let rd = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        if let (Some(max), Some(cur)) = (rd("memory.max"), rd("memory.current")) {
            if let (Ok(max), Ok(cur)) = (max.trim().parse::<u64>(), cur.trim().parse::<u64>()) {
                let room = max.saturating_sub(cur);
                if room < anon {
                    return Err(format!(
                        "its cgroup has {} MiB of memory headroom, less than its {} MiB of anonymous memory a copy could need",
                        room >> 20,
                        anon >> 20
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Finds a `syscall` instruction in the target's executable memory: the
/// vdso first (two pages), then the executable's text.
pub fn find_syscall(pid: i32, mem: &dyn Memory) -> Option<u64> {
    let maps = read_mappings(pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let vdso = maps.iter().filter(|m| m.path.as_deref() == Some("[vdso]"));
    let text = maps
        .iter()
        .filter(|m| m.path.is_some() && m.path == exe && m.path.as_deref() != Some("[vdso]"));
    for m in vdso.chain(text).filter(|m| m.executable && m.readable) {
        let mut at = m.start;
        let end = m.end.min(m.start + (256 << 20));
        let mut buf = vec![0u8; 1 << 20];
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            if mem.read(at, &mut buf[..n]).is_ok() {
                if let Some(a) = find_syscall_insn(&buf[..n], at) {
                    return Some(a);
                }
            }
            // Overlap by one byte so an instruction across chunks is found.
            at += (n as u64).saturating_sub(1).max(1);
        }
    }
    None
}

fn read_vmas(pid: i32) -> Result<Vec<Vma>, SnapshotError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map_err(io_err(format!("reading /proc/{pid}/smaps")))?;
    Ok(parse_smaps(&text))
}

/// What goes into the notes, read while the target was stopped.
struct Facts<'a> {
    pinfo: &'a ProcessInfo,
    threads: &'a [ThreadInfo],
    filter: u32,
    hold: Option<Duration>,
}

/// Cores smaller than this are written without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 256 << 20;

/// A progress bar on stderr for a large core, when stderr is a terminal.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if total < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "goat: writing core {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .ok()?;
    bar.set_style(style);
    Some(bar)
}

/// Plans and writes the core of `layout_pid`'s memory as `mem` shows it.
fn write_file(
    tmp: &output::TempCore,
    layout_pid: i32,
    mem: &(dyn Memory + Sync),
    facts: &Facts<'_>,
    stats: &mut CoreStats,
) -> Result<(), SnapshotError> {
    let Facts {
        pinfo,
        threads,
        filter,
        hold,
    } = *facts;
    let vmas = read_vmas(layout_pid)?;
    let rules: Vec<_> = vmas.iter().map(|v| dump_rule(v, filter)).collect();
    let notes = notes::build_notes(pinfo, threads, &vmas);
    let layout = elf::plan(&vmas, &rules, mem, notes).map_err(io_err("laying out the core"))?;
    if let Some(h) = hold {
        std::thread::sleep(h);
    }
    let what = format!("writing {}", tmp.tmp_path().display());
    let bar = progress_bar(elf::dump_bytes(&layout));
    let w = elf::write_core(&tmp.file, &layout, mem, &mut |n| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let w = w.map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
            " (the disk is full; the partial file was removed)"
        } else {
            " (the partial file was removed)"
        };
        SnapshotError::Io {
            what: format!("{what}{hint}"),
            source: e,
        }
    })?;
    stats.segments = layout.segments.len();
    stats.bytes_written = w.bytes_written;
    stats.unreadable_pages = w.unreadable_pages;
    stats.file_len = layout.end;
    Ok(())
}

/// Writes a core of the attached process `live` to `opts.dest`. The target
/// is resumed (and, in fork mode, its copy killed and reaped) on every path.
pub fn write_core(live: &LiveProcess, opts: &CoreOptions) -> Result<CoreStats, SnapshotError> {
    let start = Instant::now();
    let pid = live.pid();
    let mut stats = CoreStats::default();
    let tmp = output::TempCore::create(&opts.dest, opts.force).map_err(io_err(format!(
        "creating a core file for {}",
        opts.dest.display()
    )))?;
    let filter = read_filter(pid);
    let mut mode = opts.mode;
    let mut insn = None;
    if mode == Mode::Fork {
        let why = fork_feasible(pid).and_then(|()| {
            find_syscall(pid, live.memory())
                .ok_or_else(|| "no syscall instruction found in the target's text".to_string())
        });
        match why {
            Ok(a) => insn = Some(a),
            Err(why) => {
                stats.fallback = Some(why);
                mode = Mode::Stop;
            }
        }
    }

    let stopped = live.stop()?;
    let fp = stopped.fp_states()?;
    let threads: Vec<ThreadInfo> = stopped
        .threads()
        .iter()
        .zip(fp)
        .map(|(t, f)| ThreadInfo::read(pid, t, f))
        .collect();
    let pinfo = ProcessInfo::read(pid);
    stats.threads = threads.len();

    let mut child = None;
    if let (Mode::Fork, Some(a)) = (mode, insn) {
        match stopped.fork_copy(a) {
            Ok(c) => child = Some(c),
            Err(e) => {
                stats.fallback = Some(format!("cloning the target failed: {e}"));
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
            let r = write_file(&tmp, pid, &stopped, &facts, &mut stats);
            stats.pause = stopped.stopped_for();
            stopped.resume()?;
            r
        }
        Some(c) => {
            stats.pause = stopped.stopped_for();
            stopped.resume()?;
            // Never process_vm_readv here: it would copy every shared page.
            let mem = ProcessMemory::without_pinning(c);
            let r = write_file(&tmp, c, &mem, &facts, &mut stats);
            let reaped = live.release_copy();
            match reaped {
                Ok(d) => stats.reap_pause = d,
                Err(e) => {
                    r?;
                    return Err(e.into());
                }
            }
            r
        }
    };
    result?;
    let dest = opts.dest.display().to_string();
    tmp.commit().map_err(io_err(format!("saving {dest}")))?;
    if let Ok(m) = std::fs::metadata(&opts.dest) {
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
    let tmp = output::TempCore::create(dest, force).map_err(io_err(format!(
        "creating a core file for {}",
        dest.display()
    )))?;
    let fp = stopped.fp_states()?;
    let threads: Vec<ThreadInfo> = stopped
        .threads()
        .iter()
        .zip(fp)
        .map(|(t, f)| ThreadInfo::read(pid, t, f))
        .collect();
    let pinfo = ProcessInfo::read(pid);
    stats.threads = threads.len();
    let facts = Facts {
        pinfo: &pinfo,
        threads: &threads,
        filter: read_filter(pid),
        hold: None,
    };
    write_file(&tmp, pid, stopped, &facts, &mut stats)?;
    tmp.commit()
        .map_err(io_err(format!("saving {}", dest.display())))?;
    if let Ok(m) = std::fs::metadata(dest) {
        stats.disk_bytes = m.blocks() * 512;
    }
    stats.total = start.elapsed();
    Ok(stats)
}
