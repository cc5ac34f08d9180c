//! Hardware watchpoints: the x86 debug registers DR0–DR3 (addresses), DR7
//! (enables, access kind, length) and DR6 (which one fired), written with
//! `PTRACE_POKEUSER` into every thread, including threads created later
//! (each is given the registers at its first stop, before it runs any user
//! code; the kernel does not copy a tracer's debug registers to a clone).
//!
//! The kernel keeps a thread's debug registers when its tracer detaches or
//! dies (tried: DR7 read back unchanged after both), and a watchpoint that
//! fires in an untraced thread is a SIGTRAP that kills a Go program. So,
//! as int3s are, watchpoints are in the registers only while the target
//! runs: armed right before a run, cleared from every thread as soon as
//! every thread is stopped. A tracer killed at the prompt leaves nothing
//! (kept in DR7 at the prompt, a program that read or wrote the variable
//! as soon as it ran again died of SIGTRAP before the guardian could
//! seize it). DR7 is cleared again before a detach
//! ([`Tracer::clear_debug_registers`]), and the guardian is told while
//! they are armed, to clear them if the tracer dies during a run.
//!
//! A data breakpoint traps after the access: the thread stands at the
//! instruction after the write, with nothing to rewind. Its SIGTRAP
//! (`si_code` `TRAP_HWBKPT`) is turned into a signal-less stop, as an
//! int3's is (`exec.rs`).

use std::collections::BTreeMap;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::breakpoints::FrameCond;
use super::ptrace::{AttachError, State, Tracer};

/// x86-64 has four address registers.
pub const SLOTS: usize = 4;
/// `si_code` of a SIGTRAP raised by a hardware breakpoint.
const TRAP_HWBKPT: i32 = 4;

/// What access stops the program. x86 cannot trap on reads alone: a read
/// watchpoint also stops on writes (DR7 RW=11), as in Delve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchKind {
    Write,
    ReadWrite,
}

/// Where a watched stack variable lives: the watchpoint ends when its frame
/// returns (a stepping breakpoint at the return address, `repl/watch.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackScope {
    /// Address of the goroutine's `runtime.g`, and its id.
    pub g: u64,
    pub goid: u64,
    /// Run-time return address of the variable's frame, and the caller's
    /// frame there.
    pub ret: u64,
    pub frame: FrameCond,
    /// `g.stack.hi` when the watchpoint was set: a different one later
    /// means the runtime moved the stack (`runtime.copystack`).
    pub stack_hi: u64,
}

/// A watchpoint as the session asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSpec {
    pub addr: u64,
    /// 1, 2, 4 or 8, and `addr` a multiple of it.
    pub size: u8,
    pub kind: WatchKind,
    /// The expression as typed, and the `.debug_info` offset of its type.
    pub expr: String,
    pub ty: u64,
    pub stack: Option<StackScope>,
    /// The number the session gives it (breakpoints and watchpoints share
    /// one sequence, as in Delve); the tracer numbers it when `None`.
    #[serde(default)]
    pub id: Option<u32>,
}

/// A watchpoint as the tracer keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchpointInfo {
    /// Numbered with the breakpoints (one sequence, as in Delve).
    pub id: u32,
    pub slot: u8,
    pub spec: WatchSpec,
    pub hits: BTreeMap<u64, u64>,
    pub total: u64,
    /// The watched bytes as last seen (set, or the last hit).
    pub last: Vec<u8>,
}

/// A reported hit: the bytes before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchHit {
    pub id: u32,
    pub tid: i32,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// The ptrace thread's watchpoint state.
#[derive(Default)]
pub(super) struct HwWatch {
    pub(super) slots: [Option<WatchpointInfo>; SLOTS],
    /// DR7 as last written into each thread (a thread not here has the
    /// kernel's 0).
    applied: BTreeMap<i32, u64>,
    /// (thread, slot) of traps not yet reported.
    pub(super) hits: Vec<(i32, u8)>,
    /// Whether the watchpoints are in the registers (the target runs).
    armed: bool,
}

/// Byte offset of debug register `n` in `struct user`.
fn dr_offset(n: usize) -> usize {
    std::mem::offset_of!(libc::user, u_debugreg) + n * 8
}

fn poke_dr(tid: i32, n: usize, value: u64) -> Result<(), Errno> {
    // SAFETY: PTRACE_POKEUSER takes an offset and a value, no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_POKEUSER, tid, dr_offset(n), value as usize) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub(super) fn peek_dr(tid: i32, n: usize) -> Result<u64, Errno> {
    Errno::clear();
    // SAFETY: PTRACE_PEEKUSER takes an offset, no pointers; -1 is a value
    // unless errno says otherwise.
    let r = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, tid, dr_offset(n), 0usize) };
    if r == -1 && Errno::last_raw() != 0 {
        return Err(Errno::last());
    }
    Ok(r as u64)
}

/// Clears DR7 (and DR6) of `tid`, stopped by a tracer that is not goat's
/// tracer thread (the guardian). Returns whether DR7 had anything set.
pub(super) fn clear_dr7(tid: i32) -> bool {
    let had = peek_dr(tid, 7).is_ok_and(|v| v & 0xff != 0);
    let _ = poke_dr(tid, 6, 0);
    had && poke_dr(tid, 7, 0).is_ok()
}

/// DR7's bits for one slot: local enable, then RW and LEN (Intel SDM vol.
/// 3B 17.2.4; LEN 10 is 8 bytes, 11 is 4).
fn dr7_bits(slot: usize, size: u8, kind: WatchKind) -> Option<u64> {
    let len: u64 = match size {
        1 => 0b00,
        2 => 0b01,
        4 => 0b11,
        8 => 0b10,
        _ => return None,
    };
    let rw: u64 = match kind {
        WatchKind::Write => 0b01,
        WatchKind::ReadWrite => 0b11,
    };
    Some((1 << (slot * 2)) | (((len << 2) | rw) << (16 + slot * 4)))
}

/// Whether `size` bytes at `addr` can be one debug register.
pub fn watchable(addr: u64, size: u64) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && addr.is_multiple_of(size)
}

impl HwWatch {
    fn dr7(&self) -> u64 {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .and_then(|w| dr7_bits(i, w.spec.size, w.spec.kind))
            })
            .fold(0, |a, b| a | b)
    }

    pub(super) fn any(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    pub(super) fn list(&self) -> Vec<WatchpointInfo> {
        self.slots.iter().flatten().cloned().collect()
    }

    /// Writes the current registers into `tid` (stopped) unless it has them.
    fn apply(&mut self, tid: i32) -> Result<(), Errno> {
        let want = if self.armed { self.dr7() } else { 0 };
        if self.applied.get(&tid).copied().unwrap_or(0) == want {
            return Ok(());
        }
        // Disabled first: the kernel checks each address against DR7 as
        // it is written.
        poke_dr(tid, 7, 0)?;
        self.applied.insert(tid, 0);
        for (i, w) in self.slots.iter().enumerate() {
            if let Some(w) = w {
                poke_dr(tid, i, w.spec.addr)?;
            }
        }
        poke_dr(tid, 7, want)?;
        self.applied.insert(tid, want);
        Ok(())
    }

    /// Which of our slots fired in `tid` (DR6), clearing DR6's condition
    /// bits (the kernel leaves that to the debugger).
    fn fired(&self, tid: i32) -> Option<u8> {
        let dr6 = peek_dr(tid, 6).ok()?;
        let slot = (0..SLOTS).find(|&i| dr6 & (1 << i) != 0 && self.slots[i].is_some())?;
        let _ = poke_dr(tid, 6, dr6 & !0xf);
        Some(slot as u8)
    }
}

impl Tracer {
    /// Gives `tid`, in a ptrace-stop, the watchpoints every thread has (a
    /// new clone at its first stop). A failure leaves a thread unwatched:
    /// said on stderr, as nothing better can be done from an event.
    pub(super) fn sync_debug_registers(&mut self, tid: i32) {
        if !self.hw.armed && self.hw.applied.get(&tid).is_none_or(|&v| v == 0) {
            return;
        }
        if let Err(e) = self.hw.apply(tid) {
            if e != Errno::ESRCH {
                crate::eprintln_quiet!("goat: cannot set the debug registers of thread {tid}: {e}");
            }
        }
    }

    /// Writes the current registers into every (stopped) thread.
    fn apply_everywhere(&mut self) -> Result<(), AttachError> {
        let tids: Vec<i32> = self.threads.keys().copied().collect();
        for tid in tids {
            match self.hw.apply(tid) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(AttachError::os("PTRACE_POKEUSER", e)),
            }
        }
        Ok(())
    }

    pub(super) fn add_watchpoint(
        &mut self,
        spec: WatchSpec,
    ) -> Result<WatchpointInfo, AttachError> {
        if dr7_bits(0, spec.size, spec.kind).is_none()
            || !watchable(spec.addr, u64::from(spec.size))
        {
            return Err(AttachError::WatchUnaligned {
                addr: spec.addr,
                size: spec.size,
            });
        }
        let slot = (0..SLOTS)
            .find(|&i| self.hw.slots[i].is_none())
            .ok_or(AttachError::WatchSlotsFull)?;
        let mut last = vec![0u8; usize::from(spec.size)];
        self.bps.read_bytes(self.pid, spec.addr, &mut last)?;
        let info = WatchpointInfo {
            id: spec.id.unwrap_or_else(|| self.bps.next_id()),
            slot: slot as u8,
            spec,
            hits: BTreeMap::new(),
            total: 0,
            last,
        };
        // Written into the threads at the next run (`arm_debug_registers`).
        self.hw.slots[slot] = Some(info.clone());
        Ok(info)
    }

    pub(super) fn remove_watchpoint(
        &mut self,
        id: u32,
    ) -> Result<Option<WatchpointInfo>, AttachError> {
        let Some(slot) = self
            .hw
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|w| w.id == id))
        else {
            return Ok(None);
        };
        Ok(self.hw.slots[slot].take())
    }

    /// Moves watchpoint `id` to `addr` (a stack the runtime copied).
    pub(super) fn move_watchpoint(
        &mut self,
        id: u32,
        addr: u64,
        stack_hi: u64,
    ) -> Result<bool, AttachError> {
        let Some(w) = self.hw.slots.iter_mut().flatten().find(|w| w.id == id) else {
            return Ok(false);
        };
        if !watchable(addr, u64::from(w.spec.size)) {
            return Err(AttachError::WatchUnaligned {
                addr,
                size: w.spec.size,
            });
        }
        // The frame moved with the variable: its CFA by the same distance.
        let cfa = w.spec.stack.as_ref().and_then(|st| {
            let moved = i128::from(addr) - i128::from(w.spec.addr);
            u64::try_from(i128::from(st.frame.cfa) + moved).ok()
        });
        w.spec.addr = addr;
        if let (Some(st), Some(cfa)) = (w.spec.stack.as_mut(), cfa) {
            st.stack_hi = stack_hi;
            st.frame.cfa = cfa;
        }
        Ok(true)
    }

    /// Writes the watchpoints into every (stopped) thread before a run; the
    /// guardian hears of it first. On failure none stays armed.
    pub(super) fn arm_debug_registers(&mut self) -> Result<(), AttachError> {
        if !self.hw.any() {
            return Ok(());
        }
        self.bps.tell_watching(true);
        self.hw.armed = true;
        // Every thread rewritten: an address may have moved under one DR7.
        self.hw.applied.retain(|_, v| *v != 0);
        for v in self.hw.applied.values_mut() {
            *v = u64::MAX;
        }
        if let Err(e) = self.apply_everywhere() {
            self.disarm_debug_registers();
            return Err(e);
        }
        Ok(())
    }

    /// Clears DR7 in every (stopped) thread after a run; the guardian hears
    /// of it once every one is clear.
    pub(super) fn disarm_debug_registers(&mut self) {
        if !self.hw.armed {
            return;
        }
        self.hw.armed = false;
        for tid in self.threads.keys().copied().collect::<Vec<_>>() {
            match self.hw.apply(tid) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => crate::eprintln_quiet!(
                    "goat: cannot clear the debug registers of thread {tid}: {e}"
                ),
            }
        }
        // Threads that exited meanwhile keep nothing.
        let live = &self.threads;
        self.hw
            .applied
            .retain(|t, v| *v != 0 && live.contains_key(t));
        if self.hw.applied.is_empty() {
            self.bps.tell_watching(false);
        }
    }

    /// Handles a SIGTRAP signal-delivery-stop if one of our watchpoints
    /// raised it: noted as a hit and turned into a signal-less stop.
    pub(super) fn watch_trap(&mut self, tid: i32) -> bool {
        if !self.hw.any() {
            return false;
        }
        let p = Pid::from_raw(tid);
        if ptrace::getsiginfo(p).map(|i| i.si_code) != Ok(TRAP_HWBKPT) {
            return false;
        }
        let Some(slot) = self.hw.fired(tid) else {
            return false;
        };
        let Ok(regs) = ptrace::getregs(p) else {
            return false;
        };
        let _ = ptrace::interrupt(p);
        let _ = ptrace::cont(p, None);
        self.threads.insert(tid, State::Running);
        self.bps.pending_trap.insert(tid, regs.rip);
        self.hw.hits.push((tid, slot));
        true
    }

    /// After a single-step's trap: a watched write made by that very
    /// instruction is a hit too (DR6 has both the step and the slot).
    pub(super) fn note_step_watch_hit(&mut self, tid: i32) {
        if !self.hw.any() {
            return;
        }
        if let Some(slot) = self.hw.fired(tid) {
            self.hw.hits.push((tid, slot));
        }
    }

    /// Whether `tid` has a watchpoint's condition bit in DR6 (a trap that
    /// may still be queued).
    pub(super) fn watch_fired(&self, tid: i32) -> bool {
        self.hw.any()
            && peek_dr(tid, 6).is_ok_and(|dr6| {
                (0..SLOTS).any(|i| dr6 & (1 << i) != 0 && self.hw.slots[i].is_some())
            })
    }

    /// The first unreported hit (every thread stopped): its old and new
    /// bytes, the new ones kept as the watchpoint's last.
    pub(super) fn take_watch_hit(&mut self) -> Option<WatchHit> {
        while !self.hw.hits.is_empty() {
            let (tid, slot) = self.hw.hits.remove(0);
            let pid = self.pid;
            let Some(w) = self.hw.slots[usize::from(slot)].as_mut() else {
                continue;
            };
            let mut new = vec![0u8; w.last.len()];
            if self.bps.read_bytes(pid, w.spec.addr, &mut new).is_err() {
                new.clear();
            }
            let old = std::mem::replace(&mut w.last, new.clone());
            let id = w.id;
            self.hw.hits.clear();
            return Some(WatchHit { id, tid, old, new });
        }
        None
    }

    /// Clears DR7 on every thread (stopped), before a detach: the kernel
    /// would leave the watchpoints armed in an untraced program.
    pub(super) fn clear_debug_registers(&mut self) {
        let had = self.hw.armed || !self.hw.applied.is_empty();
        self.hw.slots = Default::default();
        self.hw.armed = false;
        for tid in self.threads.keys().copied().collect::<Vec<_>>() {
            if self.hw.applied.get(&tid).is_some_and(|&v| v != 0) {
                if let Err(e) = poke_dr(tid, 7, 0) {
                    if e != Errno::ESRCH {
                        crate::eprintln_quiet!(
                            "goat: cannot clear the debug registers of thread {tid}: {e}"
                        );
                        continue;
                    }
                }
            }
            self.hw.applied.remove(&tid);
        }
        if had && self.hw.applied.values().all(|&v| v == 0) {
            self.bps.tell_watching(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr7_encodes_slot_kind_and_length() {
        // Slot 0, write, 8 bytes: L0, RW0=01, LEN0=10.
        assert_eq!(dr7_bits(0, 8, WatchKind::Write), Some(0b1001 << 16 | 1));
        // Slot 3, read-write, 4 bytes: L3, RW3=11, LEN3=11.
        assert_eq!(
            dr7_bits(3, 4, WatchKind::ReadWrite),
            Some(0xf << 28 | 1 << 6)
        );
        assert_eq!(
            dr7_bits(1, 2, WatchKind::Write),
            Some(0b0101 << 20 | 1 << 2)
        );
        assert_eq!(dr7_bits(0, 3, WatchKind::Write), None);
        assert!(watchable(0x1008, 8) && !watchable(0x1004, 8) && !watchable(0x1000, 16));
        assert_eq!(dr_offset(7), 848 + 56);
    }
}
