//! SIGINT, SIGTERM and SIGHUP must never leave a target stopped or traced:
//! every live target registers its ptrace thread here, and a dedicated
//! signal thread detaches them all before goat exits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::ptrace::{AttachError, Request, Tracer};

type Registry = Mutex<BTreeMap<u64, Sender<Request>>>;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(BTreeMap::new()))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Registers a live target's ptrace thread; returns the key to unregister it.
pub(super) fn register(tx: Sender<Request>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut r) = registry().lock() {
        r.insert(id, tx);
    }
    id
}

pub(super) fn unregister(id: u64) {
    if let Ok(mut r) = registry().lock() {
        r.remove(&id);
    }
}

/// Asks a ptrace thread to detach every thread it traces, waiting at most
/// `timeout` for it to finish.
pub(super) fn detach_via(tx: &Sender<Request>, timeout: Duration) {
    let (rtx, rrx) = bounded::<()>(1);
    let req: Request = Box::new(move |t: &mut Tracer| {
        t.detach_all();
        let _ = rtx.send(());
    });
    if tx.send(req).is_ok() {
        let _ = rrx.recv_timeout(timeout);
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP detach every live target and then exit
/// with status 128+signo. Call it early in `main`, before other threads are
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
    set.thread_block().map_err(|errno| AttachError::Os {
        op: "pthread_sigmask",
        errno,
    })?;
    let _ = INSTALLED.set(());
    std::thread::Builder::new()
        .name("goat-signals".into())
        .spawn(move || loop {
            let Ok(sig) = set.wait() else { continue };
            let live: Vec<Sender<Request>> = registry()
                .lock()
                .map(|r| r.values().cloned().collect())
                .unwrap_or_default();
            for tx in &live {
                detach_via(tx, Duration::from_secs(3));
            }
            std::process::exit(128 + sig as i32);
        })
        .map_err(|e| AttachError::Os {
            op: "spawn signal thread",
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    Ok(())
}
