//! `goat heap`: what holds the memory of a Go program.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use goat::heapgraph::{Progress, ReportOptions};
use goat::inspect::{HeapOptions, Inspector, OpenOptions};
use goat::report::HeapTextOptions;

use super::phases::PhaseClock;
use super::{warn, Source};

/// Chains shown: one for each of this many of the biggest types.
const CHAINS: usize = 5;
/// A walk shorter than this shows no progress line.
const QUIET_FOR: Duration = Duration::from_secs(1);

/// What `goat heap` was asked for.
pub struct HeapArgs {
    pub json: bool,
    pub top: usize,
    pub pprof: Option<PathBuf>,
    /// An earlier `goat heap --json` report: print what grew since.
    pub diff: Option<PathBuf>,
    pub stats: bool,
    pub opts: OpenOptions,
}

/// `goat heap PID` or `goat heap --core FILE [--exe BINARY]`.
pub fn heap(source: &Source<'_>, args: &HeapArgs) -> Result<u8> {
    let (inspector, of) = source.open(&args.opts)?;
    run(&inspector, &of, args)
}

fn run(inspector: &Inspector, of: &str, args: &HeapArgs) -> Result<u8> {
    let started = Instant::now();
    // Read first: a bad file stops nothing.
    let old = match &args.diff {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let report: goat::heapgraph::HeapReport = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a goat heap --json report", path.display()))?;
            Some(report)
        }
        None => None,
    };
    // A refused destination stops nothing: checked before the target is read.
    let profile_file = match &args.pprof {
        Some(dest) => Some((goat::outfile::TempCore::create(dest, false)?, dest)),
        None => None,
    };
    let opts = HeapOptions {
        scratch: None,
        open: args.opts.clone(),
        report: ReportOptions { chains: CHAINS },
    };
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let mut shown = false;
    let mut phases = PhaseClock::default();
    let mut progress = |p: Progress| {
        phases.begin(p.phase);
        if show_progress && started.elapsed() >= QUIET_FOR {
            shown = true;
            goat::eprint_quiet!(
                "\rgoat: {}: {} objects, {} MiB walked\x1b[K",
                p.phase,
                p.objects,
                p.bytes >> 20
            );
        }
    };
    let outcome = inspector.heap(&opts, &mut warn, &mut progress);
    phases.begin("the report");
    if shown {
        goat::eprint_quiet!("\r\x1b[K");
    }
    let outcome = outcome?;
    if let Some((tmp, dest)) = profile_file {
        let stacks = outcome.graph.reference_stacks();
        let mut w = std::io::BufWriter::new(&tmp.file);
        goat::report::pprof::write_heap_profile(&stacks, &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {}", dest.display()))?;
        drop(w);
        tmp.commit()
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    let text_opts = HeapTextOptions { top: args.top };
    let text = match (&old, args.json) {
        (Some(old), json) => {
            let d = goat::heapgraph::diff(old, &outcome.report);
            if json {
                serde_json::to_string_pretty(&d)? + "\n"
            } else {
                goat::report::heap_diff_text(&d, of, text_opts)
            }
        }
        (None, true) => serde_json::to_string_pretty(&outcome.report)? + "\n",
        (None, false) => goat::report::heap_text(&outcome.report, of, text_opts),
    };
    super::print_report(&text)?;
    if args.stats {
        let paused = outcome
            .paused()
            .map_or("not stopped (a core)".to_string(), |p| {
                format!("stopped for {:.1} ms", p.as_secs_f64() * 1e3)
            });
        goat::eprintln_quiet!(
            "goat: {of}: {paused}; {} objects and {} goroutines analysed in {:.2} s",
            outcome.report.totals.objects,
            outcome.goroutines,
            started.elapsed().as_secs_f64()
        );
        if !outcome.copied.stops.is_empty() {
            goat::eprintln_quiet!(
                "goat: {}{}",
                super::stop_times(&outcome.copied.stops),
                goat::goruntime::gcphase::marks_note(&outcome.copied.gc_marks)
            );
        }
        goat::eprintln_quiet!("goat: {}", phases.line());
    }
    Ok(0)
}
