//! `goat why`: what each stuck goroutine waits on, who could release it,
//! deadlock cycles, and which can never wake.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use goat::inspect::{Inspector, OpenOptions, WhyOptions};

use super::warn;

/// What `goat why` was asked for.
pub struct WhyArgs {
    pub json: bool,
    pub pprof: Option<PathBuf>,
    pub stats: bool,
    pub opts: OpenOptions,
}

/// `goat why PID`.
pub fn why(pid: i32, args: &WhyArgs) -> Result<u8> {
    let inspector = Inspector::open_pid_with(pid, &args.opts, &mut warn)?;
    run(&inspector, &format!("pid {pid}"), args)
}

/// `goat why --core FILE [--exe BINARY]`.
pub fn why_core(core: &Path, exe: Option<&Path>, args: &WhyArgs) -> Result<u8> {
    let inspector = Inspector::open_core_with(core, exe, &args.opts, &mut warn)?;
    let of = format!("core {}", goat::stdio::shown_path(core));
    run(&inspector, &of, args)
}

fn run(inspector: &Inspector, of: &str, args: &WhyArgs) -> Result<u8> {
    let started = std::time::Instant::now();
    // A refused destination stops nothing: checked before the target is read.
    let profile_file = match &args.pprof {
        Some(dest) => Some((goat::outfile::TempCore::create(dest, false)?, dest)),
        None => None,
    };
    let opts = WhyOptions {
        scratch: None,
        open: args.opts.clone(),
        profile: profile_file.is_some(),
    };
    let outcome = inspector.why(&opts, &mut warn)?;
    if let (Some((tmp, dest)), Some(bytes)) = (profile_file, &outcome.profile) {
        (&tmp.file)
            .write_all(bytes)
            .with_context(|| format!("writing {}", dest.display()))?;
        tmp.commit()
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&outcome.report)?;
        s.push('\n');
        s
    } else {
        goat::report::why_text(&outcome.report, of)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    if args.stats {
        let paused = outcome
            .paused
            .map_or("not stopped (a core)".to_string(), |p| {
                format!("stopped for {:.1} ms", p.as_secs_f64() * 1e3)
            });
        goat::eprintln_quiet!(
            "goat: {of}: {paused}; {} goroutines analysed in {:.2} s",
            outcome.report.goroutines.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
