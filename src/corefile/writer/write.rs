//! Planning and writing the file from a stopped target or its frozen copy.

use std::path::Path;

use super::*;

pub(super) fn read_vmas(pid: i32) -> Result<Vec<Vma>, SnapshotError> {
    crate::process::procfs::smaps(pid).map_err(io_err(format!("reading /proc/{pid}/smaps")))
}

/// What goes into the notes, read while the target was stopped.
pub(super) struct Facts<'a> {
    pub(super) pinfo: &'a ProcessInfo,
    pub(super) threads: &'a [ThreadInfo],
    pub(super) filter: u32,
    pub(super) hold: Option<Duration>,
}

/// Cores smaller than this are written without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 256 << 20;

/// A progress bar on stderr for a large core, when stderr is a terminal.
pub(super) fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    crate::corefile::progress::bar("writing core", total, PROGRESS_MIN_BYTES)
}

pub(super) fn disk_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
}

/// The error for a failed write of the core for `dest`, `written` bytes in.
/// A full disk (or quota) gets a plain sentence of its own: it is the
/// likely failure for files this large, and the user's fix is elsewhere.
pub(super) fn write_error(dest: &Path, written: u64, e: io::Error) -> SnapshotError {
    let cause = match e.raw_os_error() {
        Some(libc::ENOSPC) => Some("no space left on device"),
        Some(libc::EDQUOT) => Some("disk quota exceeded"),
        Some(libc::EFBIG) => Some("file too large for the filesystem"),
        _ => None,
    };
    match cause {
        Some(cause) => SnapshotError::DiskFull {
            cause,
            dest: dest.to_path_buf(),
            written,
        },
        None => SnapshotError::Io {
            what: format!(
                "writing {} (after {} MiB; the partial file was removed)",
                dest.display(),
                written >> 20
            ),
            source: e,
        },
    }
}

/// Plans and writes the core of `layout_pid`'s memory as `mem` shows it.
pub(super) fn write_file(
    tmp: &crate::outfile::TempCore,
    dest: &Path,
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
    super::hold_for_tests(hold);
    let bar = progress_bar(elf::dump_bytes(&layout));
    let mut w = elf::WriteStats::default();
    let r = elf::write_core(
        &tmp.file,
        &layout,
        mem,
        &mut |n| {
            if let Some(b) = &bar {
                b.inc(n);
            }
        },
        &mut w,
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    stats.bytes_written = w.bytes_written;
    r.map_err(|e| write_error(dest, w.bytes_written, e))?;
    stats.segments = layout.segments.len();
    stats.unreadable_pages = w.unreadable_pages;
    stats.file_len = layout.end;
    Ok(())
}
