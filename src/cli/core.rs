//! `goat core`: an ELF core of a live process.

use std::path::PathBuf;

use anyhow::Result;

use goat::corefile::writer;
use goat::inspect;

use super::warn;

/// How `goat core` keeps the target's pause short.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CoreMode {
    Live,
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
    let dest = output.unwrap_or_else(|| PathBuf::from(format!("core.{pid}")));
    let opts = writer::CoreOptions {
        dest: dest.clone(),
        mode: match mode {
            CoreMode::Live => writer::Mode::Live,
            CoreMode::Fork => writer::Mode::Fork,
            CoreMode::Stop => writer::Mode::Stop,
        },
        force,
        hold: inspect::hold_duration(),
        // Tests only (see `tests/core_faults.rs`): never in a user's goat,
        // where it would let an injected syscall kill the program.
        inject_under_seccomp: cfg!(feature = "test-hooks")
            && inspect::test_hook_set("GOAT_TEST_CLONE_UNDER_SECCOMP"),
    };
    let st = inspect::write_core(pid, &opts, &mut warn)?;
    if st.leftovers_reaped > 0 {
        goat::eprintln_quiet!(
            "goat: reaped {} zombie snapshot cop{} of pid {pid} left by goats killed while writing a core",
            st.leftovers_reaped,
            if st.leftovers_reaped == 1 { "y" } else { "ies" }
        );
    }
    for s in &st.stale_removed {
        goat::eprintln_quiet!(
            "goat: removed {} ({} MiB), a temporary core left by goat pid {}, which is gone",
            s.path.display(),
            s.bytes >> 20,
            s.pid
        );
    }
    for (mode, why) in &st.fallback {
        goat::eprintln_quiet!("goat: {} mode unavailable: {why}", mode_name(*mode));
    }
    if !st.fallback.is_empty() {
        if let Some(m) = st.mode {
            goat::eprintln_quiet!("goat: used {} mode instead", mode_name(m));
        }
    }
    goat::eprintln_quiet!("goat: wrote {}", dest.display());
    if stats {
        let stops = st.stops();
        if !stops.is_empty() {
            goat::eprintln_quiet!("goat: {}", super::stop_times(&stops));
        }
        let pause = match st.mode {
            Some(writer::Mode::Fork) => format!(
                "mode fork: target stopped for {:.2} ms to clone a frozen copy (the kernel's fork: {:.2} ms) \
                 ({})",
                st.pause().as_secs_f64() * 1e3,
                st.clone.as_secs_f64() * 1e3,
                reap_note(&st),
            ),
            Some(writer::Mode::Live) => live_pause(&st),
            _ => format!(
                "mode stop: target stopped for {:.2} ms (the whole write)",
                st.pause().as_secs_f64() * 1e3,
            ),
        };
        goat::eprintln_quiet!(
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
        for h in &st.helpers {
            goat::eprintln_quiet!("goat: {h}");
        }
    }
    Ok(0)
}

fn mode_name(m: writer::Mode) -> &'static str {
    match m {
        writer::Mode::Live => "live",
        writer::Mode::Fork => "fork",
        writer::Mode::Stop => "stop",
    }
}

/// How the snapshot copy was reaped, for `--stats`.
fn reap_note(st: &writer::CoreStats) -> String {
    let ms = st.reap_pause.as_secs_f64() * 1e3;
    match (st.reap_pause.is_zero(), st.reap_one_thread) {
        (true, _) => "the copy reaped by its reaper thread in the target, with no stop".into(),
        (false, true) => format!("+{ms:.2} ms, one idle thread only, to reap the copy"),
        (false, false) => format!("+{ms:.2} ms, every thread, to reap the copy"),
    }
}

/// The `--stats` line of a live-mode core.
fn live_pause(st: &writer::CoreStats) -> String {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let Some(l) = &st.live else {
        return String::new();
    };
    let rounds: Vec<String> = l
        .round_bytes
        .iter()
        .map(|&b| format!("{:.1}", mib(b)))
        .collect();
    let last = if l.final_from_copy {
        format!(
            "to clone a frozen copy (the kernel's fork: {:.2} ms), from which the {:.1} MiB \
             written during the copy were read ({})",
            ms(st.clone),
            mib(l.final_bytes),
            reap_note(st)
        )
    } else {
        format!(
            "to re-read {:.1} MiB written during the copy",
            mib(l.final_bytes)
        )
    };
    format!(
        "mode live: target stopped for {:.2} ms {last} \
         (+{:.2} ms at the start, to open the write tracking); copied {:.1} MiB while it ran, \
         then again {} MiB in {} round{}",
        ms(st.pause()),
        ms(l.setup.map_or(std::time::Duration::ZERO, |w| w.lasted)),
        mib(l.first_copy),
        if rounds.is_empty() {
            "0".to_string()
        } else {
            rounds.join(" + ")
        },
        l.round_bytes.len(),
        if l.round_bytes.len() == 1 { "" } else { "s" },
    ) + &l.round_skipped.map_or(String::new(), |b| {
        format!(
            " ({:.1} MiB written meanwhile were left for the final stop: the target writes \
             too fast for another round to shrink them)",
            mib(b)
        )
    }) + &goat::goruntime::gcphase::marks_note(&l.gc_marks)
}
