//! `goat core`: an ELF core of a live process.

use std::path::PathBuf;

use anyhow::{Context, Result};

use goat::snapshot;
use goat::target::{preflight, LiveProcess};

use super::phases::hold_duration;

/// How `goat core` keeps the target's pause short.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CoreMode {
    Fork,
    Stop,
}

pub fn core(
    pid: i32,
    output: Option<PathBuf>,
    mode: CoreMode,
    force: bool,
    stats: bool,
) -> Result<u8> {
    preflight::refuse_early(pid)?;
    let dest = output.unwrap_or_else(|| PathBuf::from(format!("core.{pid}")));
    // Refuse before touching the target; checked again when the file is saved.
    snapshot::output::check_dest(&dest, force).context("not writing the core")?;
    let live = LiveProcess::attach(pid)?;
    let opts = snapshot::CoreOptions {
        dest: dest.clone(),
        mode: match mode {
            CoreMode::Fork => snapshot::Mode::Fork,
            CoreMode::Stop => snapshot::Mode::Stop,
        },
        force,
        hold: hold_duration(),
    };
    let result = snapshot::write_core(&live, &opts);
    drop(live);
    let st = result?;
    if st.leftovers_reaped > 0 {
        eprintln!(
            "goat: reaped {} zombie snapshot cop{} of pid {pid} left by goats killed while writing a core",
            st.leftovers_reaped,
            if st.leftovers_reaped == 1 { "y" } else { "ies" }
        );
    }
    for s in &st.stale_removed {
        eprintln!(
            "goat: removed {} ({} MiB), a temporary core left by goat pid {}, which is gone",
            s.path.display(),
            s.bytes >> 20,
            s.pid
        );
    }
    if let Some(why) = &st.fallback {
        eprintln!("goat: fork mode unavailable ({why}); kept the target stopped instead");
    }
    eprintln!("goat: wrote {}", dest.display());
    if stats {
        let pause = match st.mode {
            Some(snapshot::Mode::Fork) => format!(
                "mode fork: target stopped for {:.2} ms to clone a frozen copy (the kernel's fork: {:.2} ms) \
                 (+{:.2} ms, {}, to reap the copy)",
                st.pause.as_secs_f64() * 1e3,
                st.clone.as_secs_f64() * 1e3,
                st.reap_pause.as_secs_f64() * 1e3,
                if st.reap_one_thread {
                    "one idle thread only"
                } else {
                    "every thread"
                },
            ),
            _ => format!(
                "mode stop: target stopped for {:.2} ms (the whole write)",
                st.pause.as_secs_f64() * 1e3,
            ),
        };
        eprintln!(
            "goat: {pause}, {} threads, {} segments\n\
             goat: {} bytes written ({} MiB), file {} bytes (sparse: {} bytes on disk), {} unreadable pages skipped; {:.1} ms in all",
            st.threads,
            st.segments,
            st.bytes_written,
            st.bytes_written >> 20,
            st.file_len,
            st.disk_bytes,
            st.unreadable_pages,
            st.total.as_secs_f64() * 1e3,
        );
    }
    Ok(0)
}
