//! goat killed at every ptrace call of an operation (issue 11).
//!
//! The ptrace calls of `goat core`, of a breakpoint session and of a
//! pre-copy `goat stacks` (whose write tracking must end with goat) are made by
//! the tracer process (`goat-tracer`, one thread, `goat-ptrace`), which
//! outlives goat. Each test first counts the calls of one run under
//! `strace -f`, then for every N from 1 to that count runs the operation
//! again under strace with a signal injected at the tracer's N-th call:
//!
//! - `inject=ptrace:signal=SIGSTOP:when=N` freezes the tracer right after
//!   its N-th call; goat (strace's child) is then SIGKILLed and the tracer
//!   continued (the `goat_killed` tests): goat dies at exactly that point
//!   of the tracer's work, which the tracer must finish or undo on its own;
//! - `inject=ptrace:signal=SIGKILL:when=N` kills the tracer itself (the
//!   `tracer_killed` tests): what it had done to the target must be undone
//!   anyway (the guardian's bytes, self-restoring injections). See
//!   `kill_at` for the N at which the tracer dies before attaching.
//! - `inject=ptrace:signal=SIGSTOP:when=N` freezes the tracer, then every
//!   goat process (goat, the tracer, the guardian) is SIGKILLed together
//!   (the `all_killed` tests): what `pkill -9 goat` or an OOM kill of goat's
//!   cgroup does. Nothing of goat's is left to undo anything, so every
//!   state the tracer can be in after any of its calls must be one the
//!   target comes out of by itself (ways back, `src/tracer/rescue.rs`; the
//!   copy's reaper thread, `src/tracer/reaper.rs`). A temporary core may be
//!   left then (the next `goat core` into that directory removes it).
//!
//! strace exits only when all of its tracees (goat, the tracer, the
//! guardian) are gone, so its end is the moment to check the target: alive,
//! not stopped, untraced, text unchanged, no `uw` mapping, no child process
//! (zombie or copy), no temporary core left, and the HTTP server answering.
//! Failures are collected over every N and reported together, with the
//! ptrace call at N, goat's stderr (the tracer's too) and the target's.
//!
//! The programs: `states` (7 threads, all parked) for cores, `ticker` (4
//! threads, `main.tick` every 10 ms: `states` calls nothing once ready, so a
//! breakpoint there is never hit) for a session, and `server` (net/http,
//! kept under load by 3 client threads during every kill) for both.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::faults::{Program, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// What goat is asked to do.
#[derive(Clone, Copy)]
enum Op {
    /// `goat core PID --mode MODE -o OUT/core --force`.
    Core(&'static str),
    /// `goat attach PID --batch -x CMD...`: a script that ends.
    Session(&'static [&'static str]),
    /// `goat stacks PID --mode precopy`: the tracer process borrows a
    /// userfaultfd in a first stop, then stops the target again at the end.
    PrecopyStacks,
}

/// On the 4-thread ticker: `main.tick` hit twice (the trap converted, the
/// other threads stopped, the hit reported, the int3 stepped over on the
/// way out), then quit. About 72 ptrace calls, the same every run.
const TICK_TWICE: &[&str] = &["break main.tick", "continue", "continue", "quit"];

/// On the server under load: `main.work`, called once per request, with a
/// condition true for one request in four: hits whose condition is false
/// are evaluated and resumed inside the tracer while other threads trap
/// too, until one is true. The number of calls varies from run to run
/// (99 to 268 seen).
const WORK_ID_3: &[&str] = &["break main.work", "cond 1 id == 3", "continue", "quit"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// goat, with the tracer frozen right after its N-th call.
    Goat,
    /// The tracer process itself, right after its N-th call.
    Tracer,
    /// Every goat process at once, the tracer frozen right after its N-th call.
    All,
}

/// Beyond this many calls, not every N is tried (runtime): 1..=150, then
/// every k-th, about 75 more.
const EVERY_CALL_UP_TO: usize = 300;

/// How long one run may take before it counts as hung.
const PATIENCE: Duration = Duration::from_secs(60);

fn args(op: Op, pid: i32, out: &Path) -> Vec<String> {
    let pid = pid.to_string();
    match op {
        Op::Core(mode) => {
            let core = out.join("core");
            let core = core.to_str().expect("a UTF-8 path");
            ["core", &pid, "--mode", mode, "-o", core, "--force"]
                .map(String::from)
                .to_vec()
        }
        Op::PrecopyStacks => ["stacks", &pid, "--mode", "precopy"]
            .map(String::from)
            .to_vec(),
        Op::Session(script) => {
            let mut v = vec!["attach".to_string(), pid, "--batch".into()];
            for cmd in script {
                v.push("-x".into());
                v.push(cmd.to_string());
            }
            v
        }
    }
}

/// `strace -f [-e inject=ptrace:signal=SIG:when=N] -o TRACE goat ARGS`,
/// goat's output in LOG.
fn strace_goat(
    args: &[String],
    inject: Option<(Signal, usize)>,
    trace: &Path,
    log: &Path,
) -> Child {
    let log = File::create(log).expect("create the log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-q", "-e", "trace=ptrace"]);
    if let Some((sig, n)) = inject {
        cmd.arg("-e")
            .arg(format!("inject=ptrace:signal={}:when={n}", sig.as_str()));
    }
    cmd.arg("-o")
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_goat"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup the log"))
        .stderr(log)
        .spawn()
        .expect("run strace (apt-get install strace)")
}

/// Waits for `child` to exit, up to `PATIENCE`; kills it past that.
fn wait_exit(child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not end within {PATIENCE:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// An strace -f line's thread id and the rest (the id is padded to 5 columns).
fn split_tid(line: &str) -> Option<(&str, &str)> {
    let (tid, rest) = line.split_once(' ')?;
    Some((tid, rest.trim_start()))
}

/// The ptrace calls in an strace log, by thread, threads in the order of
/// their first call.
fn ptrace_calls(trace: &Path) -> Vec<(i32, Vec<String>)> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut calls: Vec<(i32, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let Some((tid, rest)) = split_tid(line) else {
            continue;
        };
        let (Ok(tid), true) = (tid.parse::<i32>(), rest.starts_with("ptrace(")) else {
            continue;
        };
        let call = rest.chars().take(110).collect();
        match calls.iter_mut().find(|(t, _)| *t == tid) {
            Some((_, v)) => v.push(call),
            None => calls.push((tid, vec![call])),
        }
    }
    calls
}

/// The calls of the first thread that made any: the tracer's (goat's own
/// come only after the tracer died before attaching).
fn first_thread_calls(trace: &Path) -> Vec<String> {
    ptrace_calls(trace)
        .into_iter()
        .next()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The calls of an undisturbed run, which must all come from one thread:
/// strace counts calls per thread, so injecting at the N-th call means the
/// N-th call of that thread.
fn only_thread_calls(trace: &Path) -> Vec<String> {
    let calls = ptrace_calls(trace);
    assert!(
        calls.len() <= 1,
        "ptrace called from several threads ({:?}): strace's when=N would count each",
        calls.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );
    first_thread_calls(trace)
}

/// A field of /proc/PID/status as a number.
fn status_number(pid: i32, key: &str) -> Option<i32> {
    common::proc_status(pid, key)?.parse().ok()
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Which N to try for `count` calls.
fn kill_points(count: usize) -> Vec<usize> {
    if count <= EVERY_CALL_UP_TO {
        return (1..=count).collect();
    }
    let step = (count - 150).div_ceil(75);
    (1..=150)
        .chain((150 + step..=count).step_by(step))
        .collect()
}

/// How a run is made to die at the N-th call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    /// `inject=ptrace:signal=SIGSTOP:when=N`, then SIGKILL goat and
    /// SIGCONT the tracer.
    FreezeKillGoat,
    /// `inject=ptrace:signal=SIGKILL:when=N`: the tracer dies as its N-th
    /// call returns.
    InjectKill,
    /// `inject=ptrace:signal=SIGSTOP:when=N`, then SIGKILL the tracer.
    FreezeKillTracer,
    /// `inject=ptrace:signal=SIGSTOP:when=N`, then SIGKILL every process
    /// strace runs (goat, the tracer, the guardian) together.
    FreezeKillAll,
}

/// One run killed at the N-th call. Ok(whether the kill happened: a run
/// with fewer calls than N just finishes), or what went wrong.
///
/// The tracer is killed by an injected SIGKILL, so that no time passes
/// between its N-th call and its death (the target's running threads may
/// trap meanwhile). But strace counts calls per thread: another thread
/// that makes N calls of its own gets the SIGKILL at its N-th too (goat's,
/// tracing after its tracer died before attaching; the guardian's,
/// undoing what the dead tracer left): a second fault, not this test's.
/// Such an N is run again with the tracer frozen at its N-th call and then
/// killed (before attaching, nothing of the target runs armed). A thread
/// with fewer calls got no signal: the run stands (re-running every N
/// whose guardian made any call doubled these tests' time).
fn kill_at(t: &mut Target, op: Op, n: usize, how: Kill, dir: &Path) -> Result<bool, String> {
    match how {
        Kill::Goat => return run_killed(t, op, n, Method::FreezeKillGoat, dir),
        Kill::All => return run_killed(t, op, n, Method::FreezeKillAll, dir),
        Kill::Tracer => {}
    }
    let result = run_killed(t, op, n, Method::InjectKill, dir);
    // The tracer's thread first; was any other signalled at its N-th call?
    let threads = ptrace_calls(&dir.join("trace"));
    if !threads.iter().skip(1).any(|(_, calls)| calls.len() >= n) {
        return result;
    }
    if result.is_err() {
        t.restart();
    }
    run_killed(t, op, n, Method::FreezeKillTracer, dir)
}

fn run_killed(t: &mut Target, op: Op, n: usize, how: Method, dir: &Path) -> Result<bool, String> {
    let out = dir.join("out");
    let (trace, log) = (dir.join("trace"), dir.join("log"));
    // The last run's log must not be read as this one's.
    let _ = std::fs::remove_file(&trace);
    let sig = match how {
        Method::InjectKill => Signal::SIGKILL,
        _ => Signal::SIGSTOP,
    };
    let mut strace = strace_goat(&args(op, t.pid(), &out), Some((sig, n)), &trace, &log);
    let mut handled = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    // strace ends when goat, the tracer and the guardian all have.
    while strace.try_wait().map_err(|e| e.to_string())?.is_none() {
        for tid in injected_stops(&trace) {
            if handled.contains(&tid) {
                continue;
            }
            handled.push(tid);
            let Some(tgid) = status_number(tid, "Tgid") else {
                continue;
            };
            // Only the first thread to reach its N-th call is the tracer.
            if handled.len() > 1 {
                let _ = kill(Pid::from_raw(tgid), Signal::SIGCONT);
                continue;
            }
            if how == Method::FreezeKillAll {
                // Listed first, killed together: none of them acts again.
                for pid in descendants(strace.id() as i32) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            } else if how == Method::FreezeKillGoat {
                // Still goat's child: goat waits for its frozen tracer.
                let goat = status_number(tgid, "PPid").unwrap_or(0);
                if goat != strace.id() as i32 && goat > 1 {
                    let _ = kill(Pid::from_raw(goat), Signal::SIGKILL);
                }
                let _ = kill(Pid::from_raw(tgid), Signal::SIGCONT);
            } else {
                let _ = kill(Pid::from_raw(tgid), Signal::SIGKILL);
            }
        }
        if Instant::now() > deadline {
            let _ = strace.kill();
            let _ = strace.wait();
            return Err(format!(
                "N={n}: goat, its tracer or its guardian did not end within {PATIENCE:?}; goat's output: {}",
                tail(&log, 10)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let calls = first_thread_calls(&trace);
    let call = calls.get(n - 1).cloned().unwrap_or_default();
    let fired = match how {
        Method::InjectKill => calls.len() >= n,
        _ => !handled.is_empty(),
    };
    // With every goat process dead, nothing removes the temporary core.
    let temporaries_ok = how == Method::FreezeKillAll;
    let result = t.survived_with(&out, temporaries_ok).map_err(|e| {
        format!(
            "N={n} ({call}): {e}\n    goat's output: {}",
            tail(&log, 6).replace('\n', "\n      ")
        )
    });
    // Whatever this run left must not fail the next one.
    for f in std::fs::read_dir(&out).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(f.path());
    }
    result.map(|()| fired)
}

/// Every process below `root` (its children, theirs, …), found through
/// each process's parent in `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, status_number(pid, "PPid")?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The threads an injected SIGSTOP has stopped, in order: the strace lines
/// `TID --- SIGSTOP {...}` (the signal delivered to the thread that made
/// the N-th call) followed by `TID --- stopped by SIGSTOP ---` (its
/// process is stopped; other threads of it log the same line, but got no
/// signal of their own).
fn injected_stops(trace: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut signalled = Vec::new();
    let mut stopped = Vec::new();
    for line in text.lines() {
        let Some((tid, rest)) = split_tid(line) else {
            continue;
        };
        let Ok(tid) = tid.parse::<i32>() else {
            continue;
        };
        if rest.starts_with("--- SIGSTOP {") {
            signalled.push(tid);
        } else if rest == "--- stopped by SIGSTOP ---" && signalled.contains(&tid) {
            stopped.push(tid);
        }
    }
    stopped
}

/// Counts the calls of `op`, then kills at each of them; fails with every N
/// whose run left the target damaged.
fn every_call(program: Program, op: Op, how: Kill, tag: &str) {
    if !common::require_tool("strace", "apt-get install strace") {
        return;
    }
    let started = Instant::now();
    let dir: PathBuf = common::scratch_dir(&format!("kill-{tag}"));
    std::fs::create_dir_all(dir.join("out")).expect("out dir");
    let mut t = Target::start(program);

    let (trace, log) = (dir.join("count.trace"), dir.join("count.log"));
    let mut plain = strace_goat(&args(op, t.pid(), &dir.join("out")), None, &trace, &log);
    wait_exit(&mut plain, "the counting run").unwrap();
    assert!(
        plain.wait().unwrap().success(),
        "the counting run failed: {}",
        tail(&log, 10)
    );
    let count = only_thread_calls(&trace).len();
    assert!(count > 10, "only {count} ptrace calls: {}", tail(&log, 10));
    t.assert_survived(&dir.join("out"));

    let points = kill_points(count);
    let mut failures = Vec::new();
    let mut fired = 0;
    for &n in &points {
        match kill_at(&mut t, op, n, how, &dir) {
            Ok(f) => fired += usize::from(f),
            Err(e) => {
                failures.push(e);
                t.restart();
            }
        }
    }
    let (ok, failed) = t.load_counts();
    eprintln!(
        "{tag}: {count} ptrace calls, {} kill points, {fired} kills made, {} failures, {} restarts, load {ok} requests ok / {failed} failed, {:.1} s",
        points.len(),
        failures.len(),
        t.restarts,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{tag}: {} of {} kills left the target damaged:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
    // Requests in flight during the kills were answered too (unless a
    // failure above replaced the server).
    assert_eq!(failed, 0, "{tag}: {failed} requests of the load failed");
    // The kills happened: a run with fewer calls than N ends on its own.
    // The cores and the ticker's session make the same calls every run;
    // the server's session varies with the load (99 to 268 calls seen), so
    // some of its runs end before their N.
    assert!(
        fired * 2 >= points.len(),
        "{tag}: only {fired} of {} runs reached their N-th call",
        points.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Every goat process killed at once (issue 31): goat, its tracer and its
// guardian together, on the HTTP server under load.

#[test]
fn server_live_core_all_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Core("live"),
        Kill::All,
        "server-live-all",
    );
}

#[test]
fn server_fork_core_all_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Core("fork"),
        Kill::All,
        "server-fork-all",
    );
}

#[test]
fn server_precopy_stacks_all_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::PrecopyStacks,
        Kill::All,
        "server-precopy-all",
    );
}

#[test]
fn states_fork_core_goat_killed_at_every_ptrace_call() {
    every_call(Program::States, Op::Core("fork"), Kill::Goat, "states-fork");
}

#[test]
fn states_live_core_goat_killed_at_every_ptrace_call() {
    every_call(Program::States, Op::Core("live"), Kill::Goat, "states-live");
}

#[test]
fn ticker_session_goat_killed_at_every_ptrace_call() {
    every_call(
        Program::Ticker,
        Op::Session(TICK_TWICE),
        Kill::Goat,
        "ticker-session",
    );
}

#[test]
fn server_fork_core_goat_killed_at_every_ptrace_call() {
    every_call(Program::Server, Op::Core("fork"), Kill::Goat, "server-fork");
}

#[test]
fn server_live_core_goat_killed_at_every_ptrace_call() {
    every_call(Program::Server, Op::Core("live"), Kill::Goat, "server-live");
}

#[test]
fn states_precopy_stacks_goat_killed_at_every_ptrace_call() {
    every_call(
        Program::States,
        Op::PrecopyStacks,
        Kill::Goat,
        "states-precopy",
    );
}

#[test]
fn server_precopy_stacks_goat_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::PrecopyStacks,
        Kill::Goat,
        "server-precopy",
    );
}

#[test]
fn states_precopy_stacks_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::States,
        Op::PrecopyStacks,
        Kill::Tracer,
        "states-precopy-tracer",
    );
}

#[test]
fn server_session_goat_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Session(WORK_ID_3),
        Kill::Goat,
        "server-session",
    );
}

// The tracer process itself SIGKILLed at its N-th call: the target must
// come through as when goat dies. A borrowed thread has a way back
// written below its stack pointer (src/tracer/rescue.rs), and the copy's
// reaper thread (src/tracer/reaper.rs) reaps it in the target whatever
// the moment. (These two once failed at a kill point where goat itself,
// surviving its tracer, stopped a thread to reap the copy and met
// strace's own stop there: goat no longer has anything to reap.)

#[test]
fn states_fork_core_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::States,
        Op::Core("fork"),
        Kill::Tracer,
        "states-fork-tracer",
    );
}

#[test]
fn states_live_core_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::States,
        Op::Core("live"),
        Kill::Tracer,
        "states-live-tracer",
    );
}

#[test]
fn server_fork_core_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Core("fork"),
        Kill::Tracer,
        "server-fork-tracer",
    );
}

#[test]
fn server_live_core_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Core("live"),
        Kill::Tracer,
        "server-live-tracer",
    );
}

// A session's tracer killed: between a thread's trap on an int3 and the
// tracer's cancelling its SIGTRAP, or while a thread steps over a
// breakpoint with the trap flag set, nothing can save that thread (the
// kernel delivers the SIGTRAP as the tracing ends, and leaves the trap
// flag set), so these measure rather than assert: docs/ARCHITECTURE.md,
// "Windows the kernel leaves open". Measured (--ignored, one run each):
// ticker 12 of 60 kills, server 26 of 76 (some of those the next run
// after a death) killed the target.

#[test]
#[ignore = "measurement: a session's tracer killed with a trap in flight or mid-step kills the target (the kernel's window, docs/ARCHITECTURE.md)"]
fn ticker_session_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::Ticker,
        Op::Session(TICK_TWICE),
        Kill::Tracer,
        "ticker-session-tracer",
    );
}

#[test]
#[ignore = "measurement: a session's tracer killed with a trap in flight or mid-step kills the target (the kernel's window, docs/ARCHITECTURE.md)"]
fn server_session_tracer_killed_at_every_ptrace_call() {
    every_call(
        Program::Server,
        Op::Session(WORK_ID_3),
        Kill::Tracer,
        "server-session-tracer",
    );
}
