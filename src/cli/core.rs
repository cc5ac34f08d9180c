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
    if let Some(why) = &st.fallback {
        eprintln!("goat: fork mode unavailable ({why}); kept the target stopped instead");
    }
    eprintln!("goat: wrote {}", dest.display());
    if stats {
        let mode = match st.mode {
            Some(snapshot::Mode::Fork) => "fork",
            _ => "stop",
        };
        eprintln!(
            "goat: mode {mode}: target stopped for {:.2} ms (+{:.2} ms to reap the copy), {} threads, {} segments\n\
             goat: {} bytes written, file {} bytes, {} bytes on disk, {} unreadable pages; {:.1} ms in all",
            st.pause.as_secs_f64() * 1e3,
            st.reap_pause.as_secs_f64() * 1e3,
            st.threads,
            st.segments,
            st.bytes_written,
            st.file_len,
            st.disk_bytes,
            st.unreadable_pages,
            st.total.as_secs_f64() * 1e3,
        );
    }
    Ok(0)
}
