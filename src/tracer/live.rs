//! A live process as the rest of goat sees it: [`LiveProcess`] (attached,
//! running) and [`Stopped`] (every thread stopped: a [`Target`]). Each
//! sends plain-data requests (`wire.rs`) to its tracer, a thread of goat's
//! process or a tracer process of its own (`remote.rs`); the ptrace work
//! itself is in `ptrace.rs`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, unbounded, RecvTimeoutError, Sender};

use super::breakpoints::Breakpoints;
use super::guardian::GuardianError;
use super::ptrace::{AttachError, Job, Tracer, SERVICE_INTERVAL};
use super::remote::{NoTracerProcess, StartError, TracerProcess};
use super::signals;
use super::wire::{protocol_error, Reply, Request};
use crate::process::ProcessMemory;
use crate::process::{read_mappings, Mapping, Target, Thread};
use crate::process::{Memory, ReadFault};

/// A process goat has attached to (every thread `PTRACE_SEIZE`d, still
/// running). Dropping it detaches every thread.
pub struct LiveProcess {
    pid: i32,
    pub(super) link: Link,
    memory: ProcessMemory,
    reg_id: u64,
    /// A call was left to run on (`fncall/pending.rs`): a tracer process
    /// may stay until the function returns, and goat does not wait for it.
    linger: std::sync::atomic::AtomicBool,
}

/// Where the tracer runs. What only one form can do is a method of that
/// form's type (code runs only on a [`ThreadLink`]), so code that would
/// ask it of the other does not compile.
pub(super) enum Link {
    /// A thread of goat's own process.
    Thread(ThreadLink),
    /// A process of its own, which outlives goat (see `remote.rs`).
    Process(TracerProcess),
}

/// goat's end of a tracer thread in its own process: it runs closures.
pub(super) struct ThreadLink {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LiveProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveProcess")
            .field("pid", &self.pid)
            .finish()
    }
}

fn thread_gone() -> AttachError {
    AttachError::TracerThreadGone
}

impl LiveProcess {
    /// `PTRACE_SEIZE` every thread in `/proc/PID/task` (with
    /// `PTRACE_O_TRACECLONE`; re-scanning until the set is stable). Threads
    /// keep running. On failure, whatever was attached is detached.
    pub fn attach(pid: i32) -> Result<LiveProcess, AttachError> {
        Ok(LiveProcess::attach_then(pid, |_, _| ())?.0)
    }

    /// [`LiveProcess::attach`] with a guardian (see `guardian.rs`), and
    /// whether it started: the tracer is a thread of goat's own process,
    /// which is what a guardian watches over.
    pub(super) fn attach_guarded(
        pid: i32,
    ) -> Result<(LiveProcess, Result<(), GuardianError>), AttachError> {
        LiveProcess::attach_then(pid, super::guardian::watch_over)
    }

    /// [`LiveProcess::attach`], running `then` with the tracer thread once
    /// it is attached and registered for signals (as a caller of `attach`
    /// would, in the same order).
    fn attach_then<T>(
        pid: i32,
        then: impl FnOnce(i32, &ThreadLink) -> T,
    ) -> Result<(LiveProcess, T), AttachError> {
        crate::process::preflight::refuse_early(pid)?;
        let (tx, rx) = unbounded::<Job>();
        let (itx, irx) = bounded::<Result<(), AttachError>>(1);
        let thread = std::thread::Builder::new()
            .name("goat-ptrace".into())
            .spawn(move || {
                let mut t = Tracer {
                    pid,
                    threads: BTreeMap::new(),
                    detached: false,
                    bps: Breakpoints::new(pid),
                    hw: Default::default(),
                    fork_child: None,
                    reaper: None,
                    reaper_ended: false,
                    ended: None,
                    borrowed_fds: BTreeMap::new(),
                    gadgets: Default::default(),
                    ns_tids: Default::default(),
                    call: None,
                    forks: Default::default(),
                    execd: None,
                };
                if let Err(e) = t.seize_all() {
                    t.detach_all();
                    let _ = itx.send(Err(e));
                    return;
                }
                let _ = itx.send(Ok(()));
                loop {
                    // With every tracee stopped (a session at its prompt)
                    // only an exit can happen, and it wakes this thread
                    // (SIGCHLD, signals.rs): block until work comes instead
                    // of servicing stops every millisecond for nothing.
                    let job = if t.quiescent() && signals::child_exits_wake() {
                        rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                    } else {
                        rx.recv_timeout(SERVICE_INTERVAL)
                    };
                    match job {
                        Ok(req) => req(&mut t),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            t.detach_all();
                            return;
                        }
                    }
                    if !t.detached {
                        t.service();
                    }
                }
            })
            .map_err(|e| AttachError::io("spawn ptrace thread", &e))?;
        match irx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(thread_gone());
            }
        }
        let reg_id = signals::register(signals::Link::Thread(tx.clone()));
        let link = ThreadLink {
            tx: Some(tx),
            thread: Some(thread),
        };
        let then = then(pid, &link);
        let live = LiveProcess {
            pid,
            link: Link::Thread(link),
            memory: ProcessMemory::new(pid),
            reg_id,
            linger: Default::default(),
        };
        Ok((live, then))
    }

    /// Like [`LiveProcess::attach`], with the tracer in a process of its
    /// own (`goat tracer PID`, see `remote.rs`) that outlives goat: whatever
    /// it is doing when goat dies, even by SIGKILL (an injected syscall, a
    /// run under breakpoints), it finishes, puts the target back as it was
    /// (every int3 out, a snapshot copy killed and reaped, borrowed
    /// registers restored) and detaches. Should that process not start,
    /// goat traces from its own process, and the second value says why.
    pub fn attach_outliving(
        pid: i32,
    ) -> Result<(LiveProcess, Option<NoTracerProcess>), AttachError> {
        match LiveProcess::attach_process(pid)? {
            Ok(live) => Ok((live, None)),
            Err(why) => Ok((LiveProcess::attach(pid)?, Some(why))),
        }
    }

    /// Attached through a tracer process of its own, or why there is none
    /// (the inner `Err`: goat may trace from its own process instead).
    fn attach_process(pid: i32) -> Result<Result<LiveProcess, NoTracerProcess>, AttachError> {
        crate::process::preflight::refuse_early(pid)?;
        match TracerProcess::spawn(pid) {
            Ok(tracer) => {
                let reg_id = signals::register(signals::Link::Process(tracer.pid()));
                Ok(Ok(LiveProcess {
                    pid,
                    link: Link::Process(tracer),
                    memory: ProcessMemory::new(pid),
                    reg_id,
                    linger: Default::default(),
                }))
            }
            Err(StartError::Attach(e)) => Err(e),
            Err(StartError::Unavailable(why)) => Ok(Err(why)),
        }
    }

    /// [`LiveProcess::attach_outliving`] for sessions, which arm
    /// breakpoints: without a tracer process, a guardian process watches
    /// over the int3s instead, and the note says so. The session is worth
    /// having either way.
    pub fn attach_for_session(pid: i32) -> Result<(LiveProcess, Option<String>), AttachError> {
        let why = match LiveProcess::attach_process(pid)? {
            Ok(live) => return Ok((live, None)),
            Err(why) => why,
        };
        let (live, guarded) = LiveProcess::attach_guarded(pid)?;
        let note = match guarded {
            Ok(()) => format!(
                "no tracer process ({why}): tracing from goat itself; a guardian \
                 process restores the breakpoints should goat be killed"
            ),
            Err(e) => format!(
                "no tracer process ({why}) and no guardian ({e}): breakpoints \
                 would stay behind should goat be killed while the program runs"
            ),
        };
        Ok((live, Some(note)))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A call goes on unattended: dropping this does not wait for the
    /// tracer process, which ends when the function returns.
    pub(super) fn let_tracer_linger(&self) {
        self.linger.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Tells a tracer process that goat is about to write a temporary in
    /// `dir` (named for goat's pid, under an exclusive `flock`; see
    /// `outfile`): should goat die before it is saved or removed, the
    /// tracer removes it as it exits, instead of leaving gigabytes for the
    /// next `goat core` to find. Told before the file exists, so no moment
    /// of goat's death escapes it.
    pub fn watch_temporaries(&self, dir: &std::path::Path) -> Result<(), AttachError> {
        if self.tracer_process_pid().is_none() {
            return Ok(());
        }
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let t = super::wire::Temporaries {
            dir,
            writer: std::process::id() as i32,
        };
        match self.request(Request::Temporaries(t))? {
            Reply::Done => Ok(()),
            _ => Err(protocol_error()),
        }
    }

    /// The pid of the tracer process, if it has died (it is goat's child:
    /// a zombie until goat waits for it).
    pub fn tracer_lost(&self) -> Option<i32> {
        match &self.link {
            Link::Process(p) => p.died().then(|| p.pid()),
            Link::Thread(_) => None,
        }
    }

    /// The tracer process and the guardian, with their `oom_score_adj`
    /// (`oom.rs`); none when the tracer is a thread of goat's.
    pub fn helpers(&self) -> Vec<super::oom::Helper> {
        self.tracer_process_pid()
            .map(super::oom::helpers_of)
            .unwrap_or_default()
    }

    /// The tracer process's pid, when the tracer is a process of its own.
    pub(super) fn tracer_process_pid(&self) -> Option<i32> {
        match &self.link {
            Link::Process(p) => Some(p.pid()),
            Link::Thread(_) => None,
        }
    }

    pub fn memory(&self) -> &ProcessMemory {
        &self.memory
    }

    /// Carries out `req` on the tracer, wherever it runs. A failure the
    /// tracer reports comes back as `Err`, so `Ok` is never `Reply::Failed`.
    pub(super) fn request(&self, req: Request) -> Result<Reply, AttachError> {
        let reply = match &self.link {
            Link::Thread(t) => t.call(move |t| t.handle(req))?,
            Link::Process(p) => p.request(&req)?,
        };
        match reply {
            Reply::Failed(e) => Err(e),
            r => Ok(r),
        }
    }

    /// Stops every thread with `PTRACE_INTERRUPT` and reads its registers.
    /// A signal that was on its way to a thread is kept and delivered on
    /// resume. The returned guard resumes every thread when dropped.
    pub fn stop(&self) -> Result<Stopped<'_>, AttachError> {
        let (since, began) = (Instant::now(), SystemTime::now());
        let Reply::Threads(threads) = self.request(Request::Stop)? else {
            return Err(protocol_error());
        };
        let mut s = Stopped::new(self, threads);
        s.since = since;
        s.began = began;
        Ok(s)
    }

    fn resume_all(&self) -> Result<(), AttachError> {
        match self.request(Request::Resume)? {
            Reply::Done => Ok(()),
            _ => Err(protocol_error()),
        }
    }
}

impl ThreadLink {
    /// Runs `f` on the ptrace thread and returns its result (code cannot
    /// go to a tracer process: only requests do).
    pub(super) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tracer) -> R + Send + 'static,
    ) -> Result<R, AttachError> {
        let (rtx, rrx) = bounded::<R>(1);
        let job: Job = Box::new(move |t: &mut Tracer| {
            let _ = rtx.send(f(t));
        });
        self.tx
            .as_ref()
            .ok_or_else(thread_gone)?
            .send(job)
            .map_err(|_| thread_gone())?;
        rrx.recv().map_err(|_| thread_gone())
    }
}

impl Drop for LiveProcess {
    fn drop(&mut self) {
        signals::unregister(self.reg_id);
        match &mut self.link {
            Link::Thread(ThreadLink { tx, thread }) => {
                if let Some(tx) = tx.take() {
                    signals::detach_via(&tx, Duration::from_secs(10));
                }
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            // Closing its stdin makes it detach and exit; one that must
            // first see a call to its end is not waited for.
            Link::Process(_) if *self.linger.get_mut() => {
                let placeholder = Link::Thread(ThreadLink {
                    tx: None,
                    thread: None,
                });
                drop(std::mem::replace(&mut self.link, placeholder));
            }
            Link::Process(p) => p.finish(),
        }
    }
}

/// A live process with every thread stopped: a [`Target`]. Dropping it
/// resumes every thread (re-injecting any signal that was being delivered).
pub struct Stopped<'a> {
    pub(super) process: &'a LiveProcess,
    threads: Vec<Thread>,
    mappings: OnceLock<Vec<Mapping>>,
    since: Instant,
    /// `since` on the wall clock, for [`StopWindow`].
    began: SystemTime,
    pub(super) resumed: bool,
}

/// When a stop began on the wall clock and how long it lasted so far: what
/// a user lines up with the service's own logs of a slow moment, and what
/// `scripts/bench` lines up with the target's heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct StopWindow {
    pub began: SystemTime,
    pub lasted: Duration,
}

impl<'a> Stopped<'a> {
    pub(super) fn new(process: &'a LiveProcess, threads: Vec<Thread>) -> Stopped<'a> {
        Stopped {
            process,
            threads,
            mappings: OnceLock::new(),
            since: Instant::now(),
            began: SystemTime::now(),
            resumed: false,
        }
    }

    /// Resumes every thread.
    pub fn resume(mut self) -> Result<(), AttachError> {
        self.resumed = true;
        self.process.resume_all()
    }

    /// Time since the stop was requested.
    pub fn stopped_for(&self) -> Duration {
        self.since.elapsed()
    }

    /// When the stop was requested, and [`Self::stopped_for`].
    pub fn window(&self) -> StopWindow {
        StopWindow {
            began: self.began,
            lasted: self.stopped_for(),
        }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = self.process.resume_all();
        }
    }
}

impl Memory for Stopped<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        self.process.memory.read(addr, buf)
    }
    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        self.process.memory.read_batch(reqs)
    }
}

impl Target for Stopped<'_> {
    fn pid(&self) -> Option<i32> {
        Some(self.process.pid)
    }
    fn threads(&self) -> &[Thread] {
        &self.threads
    }
    fn mappings(&self) -> &[Mapping] {
        self.mappings
            .get_or_init(|| read_mappings(self.process.pid))
    }
}
