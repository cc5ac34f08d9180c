//! `goat why`: what each stuck goroutine waits on, who could release it,
//! deadlock cycles, and which can never wake.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use goat::inspect::{Inspector, OpenOptions, StacksMode, WhyOptions};

use super::phases::PhaseClock;
use super::{warn, Source};

/// What `goat why` was asked for.
pub struct WhyArgs {
    pub json: bool,
    pub pprof: Option<PathBuf>,
    pub stats: bool,
    pub opts: OpenOptions,
}

/// `goat why PID` or `goat why --core FILE [--exe BINARY]`.
pub fn why(source: &Source<'_>, args: &WhyArgs) -> Result<u8> {
    let (inspector, of) = source.open(&args.opts)?;
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
    let mut phases = PhaseClock::default();
    let outcome = inspector.why_phased(&opts, &mut warn, &mut |p| phases.begin(p))?;
    phases.begin("the report");
    if let (Some((tmp, dest)), Some(bytes)) = (profile_file, &outcome.profile) {
        (&tmp.file)
            .write_all(bytes)
            .with_context(|| format!("writing {}", dest.display()))?;
        tmp.commit()
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    // Written as formatted: the report of 100k goroutines is tens of
    // megabytes of text, more as JSON.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = match args.json {
        true => serde_json::to_writer_pretty(&mut out, &outcome.report)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
        false => goat::report::write_why_text(&outcome.report, of, &mut out),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::Error::new(e).context("writing the report"))?;
    drop(out);
    if args.stats {
        let paused = outcome
            .paused()
            .map_or("not stopped (a core)".to_string(), |p| {
                format!("stopped for {:.1} ms", p.as_secs_f64() * 1e3)
            });
        goat::eprintln_quiet!(
            "goat: {of}: {paused}; {} goroutines analysed in {:.2} s",
            outcome.report.goroutines.len(),
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
    // goat exits now: the copy's release is waited for, and the report is
    // left to the exit rather than freed an answer at a time (a third of
    // a second at a million goroutines).
    let goat::inspect::WhyOutcome {
        report, released, ..
    } = outcome;
    drop(released);
    std::mem::forget(report);
    Ok(0)
}

/// `goat why --growth DURATION PID`.
pub fn growth(pid: i32, every: &str, args: &WhyArgs) -> Result<u8> {
    let interval = parse_duration(every)?;
    let inspector = Inspector::open_pid_with(pid, &args.opts, &mut warn)?;
    let before = inspector.stacks_with(StacksMode::Auto, &mut warn)?.dump;
    goat::eprintln_quiet!(
        "goat: {} goroutines; reading again in {} (the program runs meanwhile)",
        before.goroutines.len(),
        every
    );
    std::thread::sleep(interval);
    let after = inspector.stacks_with(StacksMode::Auto, &mut warn)?.dump;
    let g = goat::why::growth::growth(&before, &after, interval.as_secs_f64());
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&g)?;
        s.push('\n');
        s
    } else {
        goat::why::growth::growth_text(&g, &format!("pid {pid}"))
    };
    super::print_report(&text)?;
    Ok(0)
}

/// `500ms`, `30s`, `5m`, `1h` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--growth: {s:?} is not a duration (like 30s, 5m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => anyhow::bail!("--growth: unknown unit in {s:?} (ms, s, m or h)"),
    };
    Ok(d)
}
