//! The tracer of an interactive session runs in a process of its own
//! (`goat tracer PID`), like Delve's headless server, so that nothing that
//! happens to goat's own process can leave int3 bytes in the target.
//!
//! Whoever traces a process must be alive to undo its breakpoints: when a
//! tracer dies, the kernel detaches its tracees as they are, and a thread
//! that then runs into an int3 (or had trapped on one a moment before) dies
//! of SIGTRAP. With the tracer in goat's process, `kill -9` of goat while a
//! conditional breakpoint on a hot function was being evaluated killed the
//! program in 3–4 of 20 trials, guardian or not. Now goat is only the user
//! interface: when it dies, the tracer reads end-of-file on its stdin, stops
//! the run (every thread stopped, trapped ones rewound, every int3 out) and
//! detaches, exactly as `quit` does.
//!
//! The protocol is one JSON `Request` (`wire.rs`) per line on the tracer's stdin and
//! one `Reply` per line on its stdout; the first line it writes says
//! whether it attached. Ctrl-C, SIGTERM and SIGHUP reach goat and are
//! passed on as signals (`signals.rs`): the tracer handles them as goat's
//! own ptrace thread would. The tracer runs in a session of its own, so a
//! signal to goat's process group (Ctrl-C, a shell's `kill %1`) does not
//! reach it directly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::live::LiveProcess;
use super::ptrace::AttachError;
use super::signals;
use super::wire::{protocol_error, Reply, Request, Temporaries};
use crate::poll::poll_until;

/// The hidden subcommand that runs [`serve`].
pub const SUBCOMMAND: &str = "tracer";
/// How long goat waits for the tracer to detach and exit when the session
/// ends (a detach stops every thread first; a stop may wait up to 5 s for
/// a thread in uninterruptible sleep).
const EXIT_PATIENCE: Duration = Duration::from_secs(20);

fn gone() -> AttachError {
    AttachError::TracerProcessGone
}

/// goat's end of a tracer process.
pub(super) struct TracerProcess {
    child: Child,
    io: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
    /// A request found the pipes broken: the tracer is dead or dying.
    lost: std::sync::atomic::AtomicBool,
}

/// Why there is no tracer process.
pub(super) enum StartError {
    /// It ran, and could not attach: the same error goat would have had.
    Attach(AttachError),
    /// It could not be started, or ended without a word.
    Unavailable(NoTracerProcess),
}

/// Why goat traces from its own process instead of a tracer process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoTracerProcess {
    /// The spawn's error, as text (an `io::Error` is neither `Clone` nor
    /// `Eq`, which warnings are).
    #[error("cannot run /proc/self/exe: {detail}")]
    CannotRun { detail: String },
    #[error("no pipes to it")]
    NoPipes,
    #[error("it answered out of turn")]
    OutOfTurn,
    #[error("it ended before attaching")]
    EndedBeforeAttaching,
}

impl TracerProcess {
    /// Starts `goat tracer PID` (this executable) and waits for it to attach.
    pub(super) fn spawn(pid: i32) -> Result<TracerProcess, StartError> {
        let mut child = Command::new(crate::process::procfs::OWN_EXE)
            .arg(SUBCOMMAND)
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                StartError::Unavailable(NoTracerProcess::CannotRun {
                    detail: e.to_string(),
                })
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartError::Unavailable(NoTracerProcess::NoPipes));
        };
        let mut stdout = BufReader::new(stdout);
        let first = read_reply(&mut stdout);
        let mut tracer = TracerProcess {
            child,
            io: Mutex::new(Some((stdin, stdout))),
            lost: Default::default(),
        };
        let failed = match first {
            Ok(Reply::Done) => return Ok(tracer),
            Ok(Reply::Failed(e)) => StartError::Attach(e),
            Ok(_) => StartError::Unavailable(NoTracerProcess::OutOfTurn),
            Err(_) => StartError::Unavailable(NoTracerProcess::EndedBeforeAttaching),
        };
        tracer.finish();
        Err(failed)
    }

    pub(super) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `req` and waits for its reply (a run waits until the target stops).
    pub(super) fn request(&self, req: &Request) -> Result<Reply, AttachError> {
        let mut io = self.io.lock().map_err(|_| gone())?;
        let (stdin, stdout) = io.as_mut().ok_or_else(gone)?;
        let mut line = serde_json::to_string(req).map_err(|_| protocol_error())?;
        line.push('\n');
        let sent = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush());
        let reply = sent.map_err(|_| gone()).and_then(|()| read_reply(stdout));
        if reply.is_err() {
            self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        reply
    }

    /// Whether the tracer has died: its pipes broke, and it has ended (or
    /// does within a few seconds: a traced tracer, say under strace, ends
    /// only once its own tracer has seen it go).
    pub(super) fn died(&self) -> bool {
        let state = || crate::process::has_exited(self.pid());
        if !self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            return state();
        }
        poll_until(Duration::from_secs(3), Duration::from_millis(5), || {
            state().then_some(())
        })
        .is_some()
    }

    /// Closes the tracer's stdin (it detaches, then exits) and waits for it.
    pub(super) fn finish(&mut self) {
        if let Ok(mut io) = self.io.lock() {
            io.take();
        }
        // Ended, or no longer ours to wait for: either way, done.
        let ended = || (!matches!(self.child.try_wait(), Ok(None))).then_some(());
        if poll_until(EXIT_PATIENCE, Duration::from_millis(2), ended).is_some() {
            return;
        }
        // Never killed: a tracer still at work is better left to finish.
        crate::eprintln_quiet!(
            "goat: the tracer process (pid {}) has not finished detaching; it will on its own",
            self.child.id()
        );
    }
}

fn read_reply(stdout: &mut impl BufRead) -> Result<Reply, AttachError> {
    let mut line = String::new();
    match stdout.read_line(&mut line) {
        Ok(0) | Err(_) => Err(gone()),
        Ok(_) => serde_json::from_str(&line).map_err(|_| protocol_error()),
    }
}

/// The tracer process: attaches to `pid`, serves requests from stdin until
/// it closes, then detaches. Returns the exit status.
pub fn serve(pid: i32) -> i32 {
    // Its own session: signals for goat's terminal or process group come
    // through goat, which passes on what is meant for the tracer.
    let _ = nix::unistd::setsid();
    // Its own name, so that `killall goat` (or `pkill -x goat`) aimed at a
    // stuck session spares the one process that can undo its breakpoints.
    let _ = nix::sys::prctl::set_name(c"goat-tracer");
    // Before it holds the target in any state its death could harm.
    super::oom::exempt_self();
    if let Err(e) = signals::install_detach_on_signals() {
        crate::eprintln_quiet!("goat tracer: cannot guard against signals: {e}");
    }
    // A SIGINT passed on by goat stops a running continue.
    signals::set_session_interrupts(true);
    let mut out = std::io::stdout().lock();
    // If this process is killed in turn, the guardian still takes the int3s
    // out (see guardian.rs).
    let live = match LiveProcess::attach_guarded(pid) {
        Ok((live, Ok(()))) => live,
        Ok((live, Err(e))) => {
            crate::eprintln_quiet!("goat tracer: no guardian process: {e}");
            live
        }
        Err(e) => {
            let _ = send(&mut out, &Reply::Failed(e));
            return 1;
        }
    };
    if send(&mut out, &Reply::Done).is_err() {
        return 1;
    }
    let requests = read_requests();
    let mut temporaries: Vec<Temporaries> = Vec::new();
    for req in requests.iter() {
        let reply = match req {
            Ok(Request::Temporaries(t)) => {
                if !temporaries.iter().any(|k| k.dir == t.dir) {
                    temporaries.push(t);
                }
                Reply::Done
            }
            Ok(req) => live.request(req).unwrap_or_else(Reply::Failed),
            Err(e) => Reply::Failed(e),
        };
        // goat may be gone; the loop then ends at the end of its stdin.
        let _ = send(&mut out, &reply);
    }
    // Drop detaches: every thread stopped, every int3 out, a snapshot copy
    // killed and reaped, then released.
    drop(live);
    for t in &temporaries {
        remove_abandoned(t);
    }
    0
}

/// How long the tracer waits for a dead goat's `flock` on its temporary to
/// be released (the kernel drops it as goat's files are closed, which may
/// come a while after the pipe's end: a killed goat's exit also tears down
/// its borrowed userfaultfd, which walks the target's mappings, and on a
/// loaded machine 2 s was once not enough). Only a goat that died makes
/// the tracer wait here, so the patience costs nothing otherwise.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Removes the temporaries goat left in `t.dir`: a saved core was renamed
/// away and a failed one removed, so any still named for goat is one it
/// died writing (or about to write). Each is removed once its lock is free,
/// so no goat is writing it (`outfile::stale::remove_left_by`).
fn remove_abandoned(t: &Temporaries) {
    for s in crate::outfile::stale::remove_left_by(&t.dir, t.writer, LOCK_PATIENCE) {
        crate::eprintln_quiet!(
            "goat tracer: removed {}, the temporary core of a goat that died writing it",
            s.path.display()
        );
    }
}

fn send(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// Reads stdin on a thread of its own, so that its end (goat died) is seen
/// while a run blocks the main thread: the run is then aborted as SIGTERM
/// would abort it, and the channel closes after the requests already read.
fn read_requests() -> crossbeam_channel::Receiver<Result<Request, AttachError>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let spawned = std::thread::Builder::new()
        .name("goat-requests".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let req = serde_json::from_str::<Request>(&line).map_err(|e| {
                    AttachError::UnreadableRequest {
                        detail: e.to_string(),
                    }
                });
                if tx.send(req).is_err() {
                    return;
                }
            }
            signals::abort_run();
        });
    if spawned.is_err() {
        // Without the reader nothing can be served; the loop ends at once.
        crate::eprintln_quiet!("goat tracer: cannot start its request reader");
    }
    rx
}
