//! goat (or its tracer process) SIGKILLed at random moments (issue 11),
//! run by `scripts/kill-campaign [KILLS]` (`GOAT_KILLS`, default 50 per
//! mode; `GOAT_CAMPAIGN_SEED` replays a campaign).
//!
//! `kill_points.rs` kills at every ptrace call of one run, which are the
//! moments goat's tracer changes the target; this kills at moments chosen
//! by the clock instead (inside system calls, between reads of a core,
//! while a breakpoint's trap is being handled, before the tracer exists),
//! many times per mode:
//!
//! - `stacks`: `goat stacks` of the server under load, in pre-copy mode
//!   (the default: a tracer process, a userfaultfd borrowed from the
//!   target, which must not outlive goat), and `stacks stop` in stop mode
//!   (goat traces alone);
//! - `live core`, `fork core`: `goat core --mode live|fork` of the server;
//! - `attach hot`: `goat attach` of the ticker with a breakpoint on
//!   `main.hot` (4,000 hits a second) whose condition is never true;
//! - `tracer`: the tracer process, not goat, killed during a live core, a
//!   fork core, or a session with an int3 armed, of the server (in turn).
//!
//! Each kill comes after a random delay within the operation's duration
//! (measured first); then every process goat left (its tracer, the
//! guardian: this process is their subreaper) must end, and the target
//! must pass the same checks as in `kill_points.rs`. Every failure is
//! listed, with the target replaced by a fresh one; the test fails if there
//! was any.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::faults::{Program, Target};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stacks,
    StacksStop,
    LiveCore,
    ForkCore,
    AttachHot,
    Tracer,
    /// `goat why`: a live-mode copy, then the analysis of it.
    Why,
    /// `goat heap`: the same live-mode copy, then the heap's analysis.
    Heap,
}

impl Mode {
    const ALL: [Mode; 8] = [
        Mode::Stacks,
        Mode::StacksStop,
        Mode::LiveCore,
        Mode::ForkCore,
        Mode::AttachHot,
        Mode::Tracer,
        Mode::Why,
        Mode::Heap,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Stacks => "stacks",
            Mode::StacksStop => "stacks stop",
            Mode::LiveCore => "live core",
            Mode::ForkCore => "fork core",
            Mode::AttachHot => "attach hot",
            Mode::Tracer => "tracer",
            Mode::Why => "why",
            Mode::Heap => "heap",
        }
    }

    fn program(self) -> Program {
        match self {
            Mode::AttachHot => Program::Ticker,
            _ => Program::Server,
        }
    }

    /// goat's arguments for the `i`-th kill.
    fn args(self, i: usize, pid: i32, out: &Path) -> Vec<String> {
        let pid = pid.to_string();
        let core = out.join("core").to_str().expect("UTF-8").to_string();
        let core = |mode: &str| {
            ["core", &pid, "--mode", mode, "-o", &core, "--force"]
                .map(String::from)
                .to_vec()
        };
        match self {
            // Pre-copy whatever the server's size (the default would
            // stop a small one).
            Mode::Stacks => ["stacks", &pid, "--mode", "precopy"]
                .map(String::from)
                .to_vec(),
            Mode::StacksStop => ["stacks", &pid, "--mode", "stop"]
                .map(String::from)
                .to_vec(),
            Mode::LiveCore => core("live"),
            Mode::ForkCore => core("fork"),
            Mode::Why => ["why", &pid, "--json"].map(String::from).to_vec(),
            Mode::Heap => ["heap", &pid, "--json"].map(String::from).to_vec(),
            Mode::Tracer if i.is_multiple_of(3) => core("live"),
            Mode::Tracer if i % 3 == 1 => core("fork"),
            // A session whose int3 is armed but never hit (a healthy
            // program never calls runtime.fatalpanic), so that the guardian
            // has bytes to restore and no trap is ever in flight (a thread
            // trapped at the tracer's death dies of SIGTRAP: the known
            // window, measured by kill_points' ignored session tests).
            Mode::Tracer => [
                "attach",
                &pid,
                "--batch",
                "-x",
                "break runtime.fatalpanic",
                "-x",
                "continue",
            ]
            .map(String::from)
            .to_vec(),
            Mode::AttachHot => [
                "attach",
                &pid,
                "--batch",
                "-x",
                "break main.hot",
                "-x",
                "cond 1 x == -1",
                "-x",
                "continue",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// xorshift64*: enough randomness for delays, and a seed to replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// goat with ARGS, its stderr (and its tracer's) in `log`.
fn spawn(args: &[String], log: &Path) -> Child {
    // `goat why` keeps its copy of the target under TMPDIR: the run's
    // output directory (the log is `OUT.log`), where what a killed goat
    // left is looked for.
    common::goat()
        .env("TMPDIR", log.with_extension(""))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("create the log"))
        .spawn()
        .expect("run goat")
}

/// The goat log of a run, for a failure's message.
fn log_of(out: &Path) -> PathBuf {
    out.with_extension("log")
}

/// How long the operation's `i`-th variant takes when nothing kills it (the
/// median of 3), which the random delays span. Sessions never end: their
/// delays span the attach and a good part of a second of running.
fn duration(mode: Mode, i: usize, t: &Target, out: &Path) -> Duration {
    if mode == Mode::AttachHot || (mode == Mode::Tracer && i % 3 == 2) {
        return Duration::from_millis(800);
    }
    let mut took: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let st = spawn(&mode.args(i, t.pid(), out), &log_of(out))
                .wait()
                .expect("goat");
            assert!(st.success(), "{}: goat failed undisturbed", mode.name());
            started.elapsed()
        })
        .collect();
    took.sort();
    took[1]
}

/// Processes whose parent is this one and whose name starts with `goat`:
/// the tracers and guardians of killed goats, which this subreaper inherits.
fn goat_orphans() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, not ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = tail.split_whitespace().nth(1);
        if comm.starts_with("goat") && ppid == Some(me.as_str()) {
            v.push(pid);
        }
    }
    v
}

/// Waits for (and reaps) every process goat left behind; Err past 60 s.
fn reap_orphans() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = goat_orphans();
        if left.is_empty() {
            return Ok(());
        }
        for pid in &left {
            let _ = waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
        }
        if Instant::now() > deadline {
            return Err(format!("goat's processes {left:?} still there after 60 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The goat-tracer child of `goat`, if it has one yet.
fn tracer_of_goat(goat: i32) -> Option<i32> {
    let kids = common::children(goat);
    kids.iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "goat-tracer")
        })
}

/// One kill; Ok(whether it struck while its victim was at work), or
/// whatever was wrong with the target afterwards.
fn one_kill(
    mode: Mode,
    i: usize,
    t: &mut Target,
    delay: Duration,
    out: &Path,
) -> Result<bool, String> {
    let started = Instant::now();
    let mut goat = spawn(&mode.args(i, t.pid(), out), &log_of(out));
    let mut struck = false;
    if mode == Mode::Tracer {
        // The delay counts from goat's start; a kill due before the tracer
        // exists waits for it (a session would never end otherwise).
        std::thread::sleep(delay);
        while goat.try_wait().map_err(|e| e.to_string())?.is_none() {
            if let Some(tracer) = tracer_of_goat(goat.id() as i32) {
                struck = kill(Pid::from_raw(tracer), Signal::SIGKILL).is_ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut told = false;
        while goat.try_wait().map_err(|e| e.to_string())?.is_none() {
            // A tracer killed before it had attached leaves a session to
            // trace from goat's own process and run on: goat is then told
            // to detach and exit as a user would. Only a session: a core
            // ends by itself, and goat also traces from itself for a
            // moment when it reaps the copy a dead tracer left (a SIGTERM
            // then would leave that zombie, as a user's would).
            let tracing = common::proc_status(t.pid(), "TracerPid")
                .and_then(|tid| common::proc_status(tid.parse().ok()?, "Tgid"));
            let session = i % 3 == 2;
            if session && !told && tracing == Some(goat.id().to_string()) {
                told = kill(Pid::from_raw(goat.id() as i32), Signal::SIGTERM).is_ok();
            }
            if Instant::now() > deadline {
                let _ = goat.kill();
                let _ = goat.wait();
                return Err("goat did not end within 60 s of its tracer's death".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    } else {
        std::thread::sleep(delay.saturating_sub(started.elapsed()));
        struck = goat.try_wait().map_err(|e| e.to_string())?.is_none();
        let _ = goat.kill();
        let _ = goat.wait();
    }
    reap_orphans()?;
    // A goat why or heap killed between saving its copy and unlinking it (a few
    // microseconds) leaves it, named as a temporary: the next goat why in
    // this directory removes it (outfile::stale::sweep).
    let copies = matches!(mode, Mode::Why | Mode::Heap);
    let checked = t.survived_with(out, copies).map_err(|e| {
        let log = std::fs::read_to_string(log_of(out)).unwrap_or_default();
        format!("{e}; goat said: {:?}", log.trim())
    });
    // Whatever this run left must not fail the next one.
    for f in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(f.path());
    }
    checked.map(|()| struck)
}

#[test]
#[ignore = "long (several minutes): run by scripts/kill-campaign"]
fn random_moment_campaign() {
    let kills: usize = std::env::var("GOAT_KILLS")
        .ok()
        .map(|k| k.parse().expect("GOAT_KILLS is a number"))
        .unwrap_or(50);
    let seed: u64 = std::env::var("GOAT_CAMPAIGN_SEED")
        .ok()
        .map(|s| s.parse().expect("GOAT_CAMPAIGN_SEED is a number"))
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 | 1
        });
    eprintln!("kill campaign: {kills} kills per mode, GOAT_CAMPAIGN_SEED={seed}");
    let mut rng = Rng(seed);
    // The tracers and guardians of killed goats become this process's
    // children, so that it can wait for them to finish their work.
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let dir = common::scratch_dir("kill-campaign");
    let mut all_failures = Vec::new();
    let mut summaries = Vec::new();
    for mode in Mode::ALL {
        let started = Instant::now();
        let out = dir.join(mode.name().replace(' ', "-"));
        std::fs::create_dir_all(&out).unwrap();
        let mut t = Target::start(mode.program());
        let variants = if mode == Mode::Tracer { 3 } else { 1 };
        let spans: Vec<Duration> = (0..variants).map(|i| duration(mode, i, &t, &out)).collect();
        let span = *spans.iter().max().unwrap();
        let (mut struck, mut deaths, mut failures) = (0, 0, Vec::new());
        for i in 0..kills {
            let delay = Duration::from_micros(rng.below(spans[i % variants].as_micros() as u64));
            match one_kill(mode, i, &mut t, delay, &out) {
                Ok(s) => struck += usize::from(s),
                Err(e) => {
                    deaths += usize::from(e.starts_with("the target died"));
                    failures.push(format!("{}: kill {i} after {delay:?}: {e}", mode.name()));
                    t.restart();
                }
            }
        }
        let (ok, failed) = t.load_counts();
        let summary = format!(
            "{}: {kills} kills ({struck} while at work, delays up to {span:.0?}), {deaths} target deaths, {} other failures, load {ok} requests ok / {failed} failed, {:.0?}",
            mode.name(),
            failures.len() - deaths,
            started.elapsed()
        );
        eprintln!("{summary}");
        summaries.push(summary);
        all_failures.extend(failures);
    }
    for f in &all_failures {
        eprintln!("{f}");
    }
    assert!(
        all_failures.is_empty(),
        "{} failures (GOAT_CAMPAIGN_SEED={seed}):\n{}\n{}",
        all_failures.len(),
        summaries.join("\n"),
        all_failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
