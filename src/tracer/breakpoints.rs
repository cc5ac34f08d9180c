//! Breakpoints: the table the ptrace thread owns, and the int3 bytes.
//!
//! int3s are in the target only while it runs: [`Breakpoints::arm`] writes
//! them right before a resume, [`Breakpoints::disarm`] puts every original
//! byte back as soon as every thread is stopped. At the prompt the text is
//! pristine, so a goat killed there (the kernel then detaches) leaves a
//! correct program. An [`ArmObserver`] (the guardian process) hears of
//! every int3 before it is written, to cover goat dying while armed.

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::live::{LiveProcess, ThreadLink};
use super::ptrace::AttachError;
use super::wire::{protocol_error, Reply, Request};

const INT3: u8 = 0xcc;

/// Told about every int3 goat writes into the target, so that something can
/// restore the original bytes if goat dies while they are in place.
pub trait ArmObserver: Send {
    /// Called on the ptrace thread right BEFORE int3s are written: every (address, original byte) about to be armed.
    fn armed(&mut self, bytes: &[(u64, u8)]);
    /// Called right AFTER every original byte is back in place.
    fn disarmed(&mut self);
    /// Called before the first watchpoint is written into the debug
    /// registers (`true`) and after the last is cleared (`false`).
    fn watching(&mut self, on: bool);
}

/// A breakpoint's int3 as the tracer keeps it (names, conditions and hit
/// counts are the session's: `repl/bptable.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakpointInfo {
    pub id: u32,
    /// Run-time address.
    pub addr: u64,
}

/// What a thread stopped at a temporary (stepping) breakpoint must match to
/// count: the goroutine being stepped and, for recursion, its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TempBreakpoint {
    /// Run-time address.
    pub addr: u64,
    /// Address of the `runtime.g` being stepped; 0: any goroutine (a
    /// watched stack's move, seen in `runtime.copystack` on the g0 stack).
    pub g: u64,
    /// The frame's CFA must equal `cfa`, where the CFA at `addr` is
    /// `rsp + sp_delta + 8` (pclntab's SP delta at `addr`).
    pub frame: Option<FrameCond>,
    /// What a hit that matches does.
    pub action: TempAction,
}

/// What the tracer does with a matching hit of a temporary breakpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TempAction {
    /// Stop there: the step is over.
    #[default]
    Stop,
    /// `addr` is a CALL whose target is only known at run time (through a
    /// register or memory): single-step it, alone, and report where it
    /// went ([`StopReason::CallEntered`](super::StopReason)), so that the
    /// session, which knows the functions, decides whether to stop in the
    /// callee. `next` is the address after the CALL: the return address
    /// the step must have pushed (else a signal handler ran first).
    EnterCall { next: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameCond {
    pub cfa: u64,
    pub sp_delta: i64,
}

/// The ptrace thread's breakpoint state.
#[derive(Default)]
pub(super) struct Breakpoints {
    /// The target's pid (for a last-chance disarm on drop).
    pid: i32,
    mem: Option<File>,
    pub(super) user: BTreeMap<u32, BreakpointInfo>,
    next_id: u32,
    pub(super) temps: Vec<TempBreakpoint>,
    /// Original byte of every address a breakpoint uses.
    orig: BTreeMap<u64, u8>,
    /// Addresses holding an int3 right now.
    pub(super) armed: Vec<u64>,
    /// Addresses disarmed since the last arming: a thread that fetched the
    /// int3 just before its byte was restored still traps there.
    recent: Vec<u64>,
    observer: Option<Box<dyn ArmObserver>>,
    /// Threads whose hit was reported at the last stop, with the address:
    /// stepped over (alone, original byte in place) on the next resume.
    pub(super) step_over: Vec<(i32, u64)>,
    /// Threads rewound from a trap whose PTRACE_EVENT_STOP is still to
    /// come, with the breakpoint address.
    pub(super) pending_trap: BTreeMap<i32, u64>,
    /// Whether traps now are hits to report (the target runs), or threads
    /// that ran into an int3 while the others were being stopped.
    pub(super) collecting: bool,
    pub(super) hits: Vec<(i32, u64)>,
    /// Children that share the target's memory (a vfork's, until it execs
    /// or exits; see `forks.rs`): they run untraced, so no int3 may be in
    /// that memory while one lives.
    pub(super) sharing: BTreeSet<i32>,
    /// A run wanted the int3s in while a sharing child held them out: they
    /// go back in when the last such child lets go of the memory.
    suspended: bool,
}

fn os(op: &'static str, e: std::io::Error) -> AttachError {
    AttachError::io(op, &e)
}

impl Breakpoints {
    pub(super) fn new(pid: i32) -> Breakpoints {
        let mut b = Breakpoints::default();
        b.pid = pid;
        b
    }

    fn mem(&mut self, pid: i32) -> Result<&File, AttachError> {
        if self.mem.is_none() {
            let f = crate::process::procfs::open_mem(pid, true)
                .map_err(|e| os("open /proc/PID/mem", e))?;
            self.mem = Some(f);
        }
        self.mem
            .as_ref()
            .ok_or_else(|| os("open /proc/PID/mem", std::io::ErrorKind::NotFound.into()))
    }

    fn read_byte(&mut self, pid: i32, addr: u64) -> Result<u8, AttachError> {
        let mut b = [0u8];
        self.mem(pid)?
            .read_exact_at(&mut b, addr)
            .map_err(|e| os("reading the target's code", e))?;
        Ok(b[0])
    }

    pub(super) fn read_u64(&mut self, pid: i32, addr: u64) -> Result<u64, AttachError> {
        let mut b = [0u8; 8];
        self.mem(pid)?
            .read_exact_at(&mut b, addr)
            .map_err(|e| os("reading the target's memory", e))?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads `buf.len()` bytes of the target.
    pub(super) fn read_bytes(
        &mut self,
        pid: i32,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), AttachError> {
        self.mem(pid)?
            .read_exact_at(buf, addr)
            .map_err(|e| os("reading the target's memory", e))
    }

    /// Writes `bytes` into the target's data (`set`) and reads them back.
    pub(super) fn write_bytes(
        &mut self,
        pid: i32,
        addr: u64,
        bytes: &[u8],
    ) -> Result<(), AttachError> {
        self.mem(pid)?
            .write_all_at(bytes, addr)
            .map_err(|e| os("writing the target's memory", e))?;
        let mut back = vec![0u8; bytes.len()];
        self.read_bytes(pid, addr, &mut back)?;
        if back != bytes {
            return Err(AttachError::WriteNotVerified { addr });
        }
        Ok(())
    }

    /// The next breakpoint or watchpoint number.
    pub(super) fn next_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Tells the observer whether debug registers are in use.
    pub(super) fn tell_watching(&mut self, on: bool) {
        if let Some(o) = self.observer.as_mut() {
            o.watching(on);
        }
    }

    /// Writes one byte (`/proc/PID/mem` writes through read-only text, as
    /// ptrace's own pokes do) and reads it back.
    fn write_byte(&mut self, pid: i32, addr: u64, byte: u8) -> Result<(), AttachError> {
        self.mem(pid)?
            .write_all_at(&[byte], addr)
            .map_err(|e| os("writing the target's code", e))?;
        if self.read_byte(pid, addr)? != byte {
            return Err(AttachError::WriteNotVerified { addr });
        }
        Ok(())
    }

    /// Saves the original byte at `addr` the first time a breakpoint uses it.
    fn remember(&mut self, pid: i32, addr: u64) -> Result<(), AttachError> {
        if self.orig.contains_key(&addr) {
            return Ok(());
        }
        debug_assert!(
            self.armed.is_empty(),
            "breakpoints change only when disarmed"
        );
        let b = self.read_byte(pid, addr)?;
        if b == INT3 {
            // Another debugger's, or the program's own: restoring "our"
            // original byte later would be wrong either way.
            return Err(AttachError::ForeignInt3 { addr });
        }
        self.orig.insert(addr, b);
        Ok(())
    }

    /// Forgets original bytes no breakpoint uses any more.
    fn prune(&mut self) {
        let used: Vec<u64> = self
            .user
            .values()
            .map(|b| b.addr)
            .chain(self.temps.iter().map(|t| t.addr))
            .collect();
        self.orig.retain(|a, _| used.contains(a));
    }

    pub(super) fn add_user(&mut self, pid: i32, addr: u64) -> Result<BreakpointInfo, AttachError> {
        if self.user_at(addr).is_some() {
            return Err(AttachError::BreakpointExists { addr });
        }
        self.remember(pid, addr)?;
        let b = BreakpointInfo {
            id: self.next_id(),
            addr,
        };
        self.user.insert(b.id, b.clone());
        Ok(b)
    }

    pub(super) fn remove_user(&mut self, id: u32) -> Option<BreakpointInfo> {
        let b = self.user.remove(&id);
        self.prune();
        b
    }

    pub(super) fn set_temps(
        &mut self,
        pid: i32,
        temps: Vec<TempBreakpoint>,
    ) -> Result<(), AttachError> {
        self.temps.clear();
        for t in &temps {
            if let Err(e) = self.remember(pid, t.addr) {
                self.prune();
                return Err(e);
            }
        }
        self.temps = temps;
        self.prune();
        Ok(())
    }

    pub(super) fn clear_temps(&mut self) {
        self.temps.clear();
        self.prune();
    }

    pub(super) fn set_observer(&mut self, o: Box<dyn ArmObserver>) {
        self.observer = Some(o);
    }

    /// Whether a trap at `addr` is one of goat's int3s (in place now, or
    /// until the disarming that ended this run).
    pub(super) fn is_armed(&self, addr: u64) -> bool {
        self.armed.contains(&addr) || self.recent.contains(&addr)
    }

    /// Writes an int3 at every breakpoint address (the observer hears of
    /// them first). On failure every byte already written is restored.
    pub(super) fn arm(&mut self, pid: i32) -> Result<(), AttachError> {
        let bytes: Vec<(u64, u8)> = self.orig.iter().map(|(&a, &b)| (a, b)).collect();
        if bytes.is_empty() {
            self.recent.clear();
            return Ok(());
        }
        self.sharing
            .retain(|&child| super::forks::shares_memory(pid, child));
        if !self.sharing.is_empty() {
            // Armed when the child lets go (forks.rs); the traps of the
            // last disarming still count meanwhile.
            self.suspended = true;
            return Ok(());
        }
        self.suspended = false;
        self.recent.clear();
        if let Some(o) = self.observer.as_mut() {
            o.armed(&bytes);
        }
        for &(addr, _) in &bytes {
            // Counted before the write: a write that fails half-way is still
            // undone.
            self.armed.push(addr);
            if let Err(e) = self.write_byte(pid, addr, INT3) {
                self.disarm(pid);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Puts every original byte back. Failures are reported on stderr: there
    /// is nothing better to do with the byte (the target may be gone).
    pub(super) fn disarm(&mut self, pid: i32) {
        self.suspended = false;
        if self.armed.is_empty() {
            return;
        }
        for addr in std::mem::take(&mut self.armed) {
            self.recent.push(addr);
            let Some(&orig) = self.orig.get(&addr) else {
                continue;
            };
            if let Err(e) = self.write_byte(pid, addr, orig) {
                crate::eprintln_quiet!("goat: cannot restore the code byte at {addr:#x}: {e}");
            }
        }
        if let Some(o) = self.observer.as_mut() {
            o.disarmed();
        }
    }

    /// Takes the int3s out for a child that shares the target's memory and
    /// runs untraced, to be put back by [`Breakpoints::child_released`].
    pub(super) fn suspend_for(&mut self, pid: i32, child: i32) {
        let wanted = self.suspended || !self.armed.is_empty();
        self.disarm(pid);
        self.sharing.insert(child);
        self.suspended = wanted;
    }

    /// `child` no longer shares the memory (it exec'd or exited): the
    /// int3s a run wanted go back in once no other child shares it.
    pub(super) fn child_released(&mut self, pid: i32, child: i32) {
        self.sharing.remove(&child);
        if self.suspended {
            if let Err(e) = self.arm(pid) {
                crate::eprintln_quiet!("goat: cannot put the breakpoints back after a vfork: {e}");
            }
        }
    }

    /// Every (address, original byte) a breakpoint uses.
    pub(super) fn originals(&self) -> Vec<(u64, u8)> {
        self.orig.iter().map(|(&a, &b)| (a, b)).collect()
    }

    /// The program exec'd: its int3s went with the old image, and the
    /// descriptor of its memory names the old one. Nothing is restored
    /// (the addresses mean something else now, or nothing); the observer
    /// hears that nothing is armed, so that it never writes there either.
    pub(super) fn forget_image(&mut self) {
        let had = !std::mem::take(&mut self.armed).is_empty();
        let mut fresh = Breakpoints::new(self.pid);
        fresh.next_id = self.next_id;
        fresh.observer = self.observer.take();
        // The old value's drop finds nothing armed: it writes nothing.
        *self = fresh;
        if had {
            if let Some(o) = self.observer.as_mut() {
                o.disarmed();
            }
        }
    }

    /// The user breakpoint at `addr`.
    pub(super) fn user_at(&self, addr: u64) -> Option<&BreakpointInfo> {
        self.user.values().find(|b| b.addr == addr)
    }
}

impl ThreadLink {
    /// Installs the observer told of every int3 before it is written. A
    /// tracer process installs its own, in its own tracer thread.
    pub(super) fn set_arm_observer(&self, o: Box<dyn ArmObserver>) -> Result<(), AttachError> {
        self.call(move |t| t.bps.set_observer(o))
    }
}

impl LiveProcess {
    /// A new user breakpoint at run-time `addr` (its original byte is saved
    /// now; an address that already holds an int3 is refused).
    pub fn add_breakpoint(&self, addr: u64) -> Result<BreakpointInfo, AttachError> {
        match self.request(Request::AddBreakpoint(addr))? {
            Reply::Breakpoint(Some(b)) => Ok(b),
            _ => Err(protocol_error()),
        }
    }

    pub fn remove_breakpoint(&self, id: u32) -> Result<Option<BreakpointInfo>, AttachError> {
        self.breakpoint_reply(Request::RemoveBreakpoint(id))
    }

    pub fn breakpoints(&self) -> Result<Vec<BreakpointInfo>, AttachError> {
        match self.request(Request::Breakpoints)? {
            Reply::Breakpoints(all) => Ok(all),
            _ => Err(protocol_error()),
        }
    }

    fn breakpoint_reply(&self, req: Request) -> Result<Option<BreakpointInfo>, AttachError> {
        match self.request(req)? {
            Reply::Breakpoint(b) => Ok(b),
            _ => Err(protocol_error()),
        }
    }
}

impl Drop for Breakpoints {
    /// A panic on the ptrace thread must not leave int3s behind either.
    fn drop(&mut self) {
        let pid = self.pid;
        self.disarm(pid);
    }
}
