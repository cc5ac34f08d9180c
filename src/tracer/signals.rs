//! SIGINT, SIGTERM and SIGHUP must never leave a target stopped or traced:
//! every live target registers its ptrace thread here, and a dedicated
//! signal thread detaches them all before goat exits.
//!
//! In an interactive session SIGINT (Ctrl-C) is not a way out: it stops a
//! running `continue` and is ignored, with a note, at the prompt. A run
//! command (`continue`, `next`, ...) is many runs of the target, with goat
//! deciding conditions in between, so a Ctrl-C is latched for the command
//! it arrived during ([`RunCommand`]) rather than for the run in flight:
//! wherever it lands (a run, a condition being evaluated, the moment
//! between two runs) the next decision point sees it.
//!
//! SIGCHLD, for tracee exits only (`SA_NOCLDSTOP`), wakes ptrace threads
//! that block while every thread of their target is stopped (`live.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use nix::sys::signal::Signal;

use super::ptrace::{AttachError, Job, Tracer};

/// A live target's tracer, as the signal thread reaches it.
#[derive(Clone)]
pub(super) enum Link {
    /// The ptrace thread of a target traced from goat's own process.
    Thread(Sender<Job>),
    /// The pid of a tracer process (`remote.rs`): signals are passed on to
    /// it, and it handles them as goat would.
    Process(i32),
}

type Registry = Mutex<BTreeMap<u64, Link>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(BTreeMap::new()))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// A session is open: SIGINT interrupts instead of detaching.
static SESSION: AtomicBool = AtomicBool::new(false);
/// A continue is waiting for the target.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The run command the run in progress belongs to (0: none).
static RUN_COMMAND: AtomicU64 = AtomicU64::new(0);
/// The run command in progress in this process's session (0: none).
static COMMAND: AtomicU64 = AtomicU64::new(0);
static NEXT_COMMAND: AtomicU64 = AtomicU64::new(1);
/// The latest run command a Ctrl-C was meant for. Command numbers only
/// grow, so this latch needs no clearing: a Ctrl-C from an earlier command
/// can never stop a later one.
static INTERRUPTED: AtomicU64 = AtomicU64::new(0);
/// SIGCHLD wakes ptrace threads (see [`child_exits_wake`]).
static CHILD_WAKES: AtomicBool = AtomicBool::new(false);
/// SIGTERM/SIGHUP arrived: a run in progress stops and disarms, so the
/// detach that follows finds the ptrace thread free.
static ABORT: AtomicBool = AtomicBool::new(false);
/// SIGTERM or SIGHUP (or SIGINT outside a session) is being handled: the
/// signal thread detaches, then exits with 128+signo.
static TERMINATING: AtomicBool = AtomicBool::new(false);
/// A function call is under way in a target (`fncall.rs`): a signal's
/// detach waits for it to end, since leaving it half made kills the
/// program at the runtime's next int3.
static CALLING: AtomicBool = AtomicBool::new(false);
/// How long that wait may be (a called function that never returns).
const CALL_PATIENCE: Duration = Duration::from_secs(3600);

pub(super) fn set_calling(on: bool) {
    CALLING.store(on, Ordering::SeqCst);
}

/// Makes SIGINT interrupt a running `continue` (and be ignored at the
/// prompt) instead of detaching and exiting, while `on`.
pub fn set_session_interrupts(on: bool) {
    SESSION.store(on, Ordering::SeqCst);
}

/// A run command of a session (`continue`, `next`, `step`, `stepout`),
/// from its start to its return to the prompt. A Ctrl-C in that time is
/// latched for it: goat checks [`RunCommand::interrupted`] before each run
/// it starts, and passes the command's number to the tracer in the
/// [`RunPlan`](super::RunPlan), whose run stops on it.
pub struct RunCommand {
    id: u64,
}

impl RunCommand {
    pub fn begin() -> RunCommand {
        let id = NEXT_COMMAND.fetch_add(1, Ordering::SeqCst);
        COMMAND.store(id, Ordering::SeqCst);
        RunCommand { id }
    }

    /// Its number, for [`RunPlan::command`](super::RunPlan::command).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether a Ctrl-C came since it began.
    pub fn interrupted(&self) -> bool {
        interrupted(self.id)
    }
}

impl Drop for RunCommand {
    fn drop(&mut self) {
        let _ = COMMAND.compare_exchange(self.id, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Whether run command `command` was interrupted (never 0, no command).
pub(super) fn interrupted(command: u64) -> bool {
    command != 0 && INTERRUPTED.load(Ordering::SeqCst) >= command
}

/// Marks the ptrace thread as running command `command` (or done).
pub(super) fn set_running(on: bool, command: u64) {
    if on {
        install_wake_handler();
        RUN_COMMAND.store(command, Ordering::SeqCst);
        // The kernel's thread id, not a pthread_t: a signal sent to it
        // after the thread has ended is an error (ESRCH), never undefined
        // behaviour (see `wake_runner`).
        RUN_THREAD.store(nix::unistd::gettid().as_raw() as u64, Ordering::SeqCst);
    }
    RUNNING.store(on, Ordering::SeqCst);
    if !on {
        RUN_THREAD.store(0, Ordering::SeqCst);
    }
}

/// Whether tracee exits wake the ptrace threads (SIGCHLD is caught, see
/// [`install_detach_on_signals`]): a ptrace thread with every tracee
/// stopped may then block until a request comes, since nothing but an
/// exit (SIGKILL) can happen to a stopped thread.
pub(super) fn child_exits_wake() -> bool {
    CHILD_WAKES.load(Ordering::SeqCst)
}

/// The thread blocked in `waitpid` during a run (its kernel thread id; 0
/// when no run is going on).
static RUN_THREAD: AtomicU64 = AtomicU64::new(0);

/// The signal that interrupts the run's blocking `waitpid` (EINTR): its
/// handler does nothing and is installed without SA_RESTART.
fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn on_wake(_: libc::c_int) {}

fn install_wake_handler() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: a zeroed sigaction with a handler that touches nothing.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_wake as *const () as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(wake_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// Wakes the running thread while `pending` holds and the run goes on: a
/// wake-up can land just before it blocks, so it is repeated.
fn wake_runner(pending: impl Fn() -> bool) {
    // A thousand wake-ups, 2 ms apart, at most.
    let _ = crate::poll::poll_until(Duration::from_secs(2), Duration::from_millis(2), || {
        if !RUNNING.load(Ordering::SeqCst) || !pending() {
            return Some(());
        }
        let Ok(tid) = libc::pid_t::try_from(RUN_THREAD.load(Ordering::SeqCst)) else {
            return Some(());
        };
        if tid == 0 {
            return Some(());
        }
        // tgkill, not pthread_kill: the ptrace thread may end between the
        // load and the call, and pthread_kill on an ended thread's handle is
        // undefined behaviour. tgkill names goat's own process, so a thread
        // id reused since reaches at most another goat thread, where the wake
        // signal's handler (installed before the id was stored) does nothing.
        // SAFETY: getpid has no preconditions; tgkill takes three integers
        // and reads or writes no memory of goat's.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, wake_signal()) };
        None
    });
}

pub(super) fn take_abort() -> bool {
    ABORT.load(Ordering::SeqCst)
}

/// Registers a live target's tracer; returns the key to unregister it.
pub(super) fn register(link: Link) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = registry().lock() {
        r.insert(id, link);
    }
    id
}

fn links() -> Vec<Link> {
    registry()
        .lock()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default()
}

/// Stops a run in progress as SIGTERM would (the tracer process does this
/// when goat is gone): it stops every thread and takes the int3s out.
pub(super) fn abort_run() {
    ABORT.store(true, Ordering::SeqCst);
    wake_runner(|| ABORT.load(Ordering::SeqCst));
}

/// Interrupts the run in progress as a Ctrl-C does, for a front end that
/// has no terminal (a DAP client's `pause`). With none in progress the
/// next run command begins interrupted (a pause sent just behind a
/// `continue` reaches the run that follows), until
/// [`forget_pending_interrupt`]; false then.
pub fn interrupt_run() -> bool {
    if COMMAND.load(Ordering::SeqCst) == 0 && !RUNNING.load(Ordering::SeqCst) {
        INTERRUPTED.fetch_max(NEXT_COMMAND.load(Ordering::SeqCst), Ordering::SeqCst);
        return false;
    }
    interrupt(None, &links());
    true
}

/// Drops an interrupt [`interrupt_run`] latched for a run not yet begun:
/// the commands that begin from now on are not interrupted by it.
pub fn forget_pending_interrupt() {
    let latched = INTERRUPTED.load(Ordering::SeqCst);
    NEXT_COMMAND.fetch_max(latched.saturating_add(1), Ordering::SeqCst);
}

/// A Ctrl-C in a session. goat passes it on to its tracer process with
/// `sigqueue`, carrying the number of the command it is for (`queued`); a
/// plain SIGINT is for this process's own command, or its run in progress.
fn interrupt(queued: Option<u64>, live: &[Link]) {
    let command = queued.unwrap_or_else(|| match COMMAND.load(Ordering::SeqCst) {
        0 if RUNNING.load(Ordering::SeqCst) => RUN_COMMAND.load(Ordering::SeqCst),
        c => c,
    });
    if command == 0 {
        crate::eprintln_quiet!(
            "goat: Ctrl-C interrupts a running continue; to leave, type quit or press Ctrl-D"
        );
        return;
    }
    INTERRUPTED.fetch_max(command, Ordering::SeqCst);
    for link in live {
        if let Link::Process(p) = link {
            let value = libc::sigval {
                sival_ptr: command as usize as *mut libc::c_void,
            };
            // SAFETY: sigqueue takes the value by copy; a tracer that is
            // gone has no run to stop.
            unsafe { libc::sigqueue(*p, libc::SIGINT, value) };
        }
    }
    // A run of this process's own ptrace thread (the tracer process, or a
    // session without one); one about to start sees the latch instead.
    wake_runner(|| interrupted(RUN_COMMAND.load(Ordering::SeqCst)));
}

/// Has every ptrace thread of this process look at its tracees (a tracee
/// exited). A no-op job: the thread services stops after each one.
fn wake_ptrace_threads(live: &[Link]) {
    for link in live {
        if let Link::Thread(tx) = link {
            let _ = tx.send(Box::new(|_: &mut Tracer| {}));
        }
    }
}

/// Waits for a signal of `set`; the value it carries when it was queued
/// with `sigqueue` (the command number a Ctrl-C is for).
fn wait_for(set: &nix::sys::signal::SigSet) -> Option<(Signal, Option<u64>)> {
    // SAFETY: a zeroed siginfo_t is a valid buffer for sigwaitinfo.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t; info outlives the call.
    let sig = unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) };
    let sig = Signal::try_from(sig).ok()?;
    let queued = (info.si_code == libc::SI_QUEUE)
        // SAFETY: SI_QUEUE siginfo carries si_value.
        .then(|| unsafe { info.si_value().sival_ptr } as usize as u64);
    Some((sig, queued))
}

/// Catches SIGCHLD with `SA_NOCLDSTOP`: raised for tracee exits only, not
/// for the thousands of stops a hot breakpoint makes (each would wake the
/// signal thread). Blocked like the others, so it waits for the signal
/// thread; the handler only runs in a thread started before the mask.
fn catch_child_exits() -> bool {
    // SAFETY: a zeroed sigaction with a handler that touches nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_wake as *const () as usize;
        sa.sa_flags = libc::SA_NOCLDSTOP | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut()) == 0
    }
}

/// Asks a tracer process to detach and exit (SIGTERM: it takes SIGINT as
/// Ctrl-C in a session), and waits at most `timeout` for it to be gone.
fn end_tracer(tracer: i32, timeout: Duration) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let p = nix::unistd::Pid::from_raw(tracer);
    if nix::sys::signal::kill(p, Signal::SIGTERM).is_err() {
        return;
    }
    // Gone (or not ours to wait for) is what any other answer means.
    let gone = || {
        (!matches!(
            waitpid(p, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ))
        .then_some(())
    };
    let _ = crate::poll::poll_until(timeout, Duration::from_millis(5), gone);
}

pub(super) fn unregister(id: u64) {
    if let Ok(mut r) = registry().lock() {
        r.remove(&id);
    }
}

fn unfinished_files() -> &'static Mutex<BTreeMap<u64, std::path::PathBuf>> {
    static FILES: OnceLock<Mutex<BTreeMap<u64, std::path::PathBuf>>> = OnceLock::new();
    FILES.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// A file goat is writing (a core's temporary) that a SIGTERM, SIGHUP or
/// Ctrl-C ending goat removes, as an error would: `exit` runs no
/// destructors. Dropping the guard forgets the file.
#[derive(Debug)]
pub struct UnfinishedFile(u64);

impl UnfinishedFile {
    pub fn new(path: &std::path::Path) -> UnfinishedFile {
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut files) = unfinished_files().lock() {
            files.insert(id, path.to_path_buf());
        }
        UnfinishedFile(id)
    }
}

impl Drop for UnfinishedFile {
    fn drop(&mut self) {
        if let Ok(mut files) = unfinished_files().lock() {
            files.remove(&self.0);
        }
    }
}

fn remove_unfinished_files() {
    if let Ok(files) = unfinished_files().lock() {
        for path in files.values() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Asks a ptrace thread to detach every thread it traces, waiting at most
/// `timeout` for it to finish.
pub(super) fn detach_via(tx: &Sender<Job>, timeout: Duration) {
    let (rtx, rrx) = bounded::<()>(1);
    let req: Job = Box::new(move |t: &mut Tracer| {
        t.detach_all();
        let _ = rtx.send(());
    });
    if tx.send(req).is_ok() {
        let _ = rrx.recv_timeout(timeout);
    }
}

/// Waits for the signal thread to end goat, when a signal it handles came:
/// goat's work, cut short by it (a session told its tracer is gone), must
/// not end the process first, with another status and maybe before the
/// detach is done. Returns at once otherwise.
pub fn hold_while_terminating() {
    while TERMINATING.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes SIGINT (outside a session), SIGTERM and SIGHUP detach every live
/// target and then exit with status 128+signo. Call it early in `main`, before other threads are
/// started: it blocks those signals in the calling thread (threads started
/// later inherit the mask) and waits for them on a thread of its own.
/// A signal delivered to a thread started earlier still kills goat, and the
/// kernel then detaches anyway (an interrupt-stop does not outlive goat).
pub fn install_detach_on_signals() -> Result<(), AttachError> {
    use nix::sys::signal::SigSet;
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    let child_wakes = catch_child_exits();
    if child_wakes {
        set.add(Signal::SIGCHLD);
    }
    set.thread_block()
        .map_err(|errno| AttachError::os("pthread_sigmask", errno))?;
    let _ = INSTALLED.set(());
    std::thread::Builder::new()
        .name("goat-signals".into())
        .spawn(move || loop {
            let Some((sig, queued)) = wait_for(&set) else {
                continue;
            };
            let live = links();
            if sig == Signal::SIGCHLD {
                wake_ptrace_threads(&live);
                continue;
            }
            if sig == Signal::SIGINT && SESSION.load(Ordering::SeqCst) {
                interrupt(queued, &live);
                continue;
            }
            TERMINATING.store(true, Ordering::SeqCst);
            abort_run();
            for link in &live {
                match link {
                    Link::Thread(tx) => {
                        let patience = if CALLING.load(Ordering::SeqCst) {
                            CALL_PATIENCE
                        } else {
                            Duration::from_secs(3)
                        };
                        detach_via(tx, patience)
                    }
                    Link::Process(p) => end_tracer(*p, Duration::from_secs(6)),
                }
            }
            // After the detach: a fork-mode copy is gone by now, so
            // nothing is still writing what is removed.
            remove_unfinished_files();
            std::process::exit(128 + sig as i32);
        })
        .map_err(|e| AttachError::io("spawn signal thread", &e))?;
    CHILD_WAKES.store(child_wakes, Ordering::SeqCst);
    Ok(())
}
