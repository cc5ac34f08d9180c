//! Whether a running Go program's garbage collector is marking
//! (`runtime.gcphase == _GCmark`), so that a copy made while it runs can
//! wait the mark out instead of copying its writes in the final stop.
//!
//! A mark writes to every `g` it scans and shrinks stacks. One that met a
//! live copy of a million goroutines left 0.2–0.5 GB written for the final
//! stop, which then paused the program 50–180 ms instead of 6–9 ms. The
//! runtime forces a collection every two minutes, and its mark lasted
//! 1.5–3.8 s there, so about one copy in twenty met one. A mark ends on its
//! own: waiting it out and copying its writes while the program runs keeps
//! the stop short.
//!
//! The address is the symbol `runtime.gcphase`; in a stripped binary it is
//! the first RIP-relative dword that `runtime.gcMarkDone` compares with 1
//! (`if !(gcphase == _GCmark && …)` opens it in every release from 1.19 to
//! 1.27), checked to lie in `.bss`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iced_x86::{Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use crate::binary::Binary;
use crate::process::{Memory, MemoryExt};

/// `_GCmark` in `runtime/mgc.go` (`_GCoff` 0, `_GCmarktermination` 2), the
/// same in every release goat reads.
const GC_MARK: u32 = 1;
/// Longest code decoded in `gcMarkDone` before giving up (it is 2–3 KB).
const MAX_SEARCHED_BYTES: u64 = 16 << 10;
/// How often a wait looks at the phase again.
const LOOK_EVERY: Duration = Duration::from_millis(5);
/// How often a sampling watch looks while the copy runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// A copy waits for marks at most this long in all: a mark of a million
/// goroutines lasted up to 3.8 s here. A program that is still marking
/// after that gets its final stop anyway, as it would without the wait.
const MARK_PATIENCE: Duration = Duration::from_secs(10);
/// And for at most this many marks: a program collecting back to back
/// starts a new one as soon as the last ended.
const MAX_MARK_WAITS: usize = 3;

/// Where a process keeps its GC phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPhase {
    /// Run-time address of `runtime.gcphase` (a `uint32`).
    addr: u64,
}

impl GcPhase {
    /// The phase of live process `pid`, from its executable
    /// (`/proc/PID/exe`) and mappings; `None` where it cannot be found.
    pub fn of_process(pid: i32) -> Option<GcPhase> {
        // Opened through `/proc/PID/exe` (the running file even if it was
        // replaced); the mappings name it by its path.
        let bin = Binary::open(&crate::process::procfs::exe_path(pid)).ok()?;
        let named = crate::process::procfs::exe(pid).ok()?;
        let mappings = crate::process::read_mappings(pid);
        let bias = super::load_bias(&mappings, &named, bin.link_base()).ok()?;
        Self::in_binary(&bin, bias)
    }

    /// The phase of a process running `bin` at load bias `bias`.
    pub fn in_binary(bin: &Binary, bias: u64) -> Option<GcPhase> {
        let link = bin
            .symbol("runtime.gcphase")
            .or_else(|| gcphase_from_code(bin))?;
        Some(GcPhase {
            addr: link.checked_add(bias)?,
        })
    }

    /// Whether the collector is marking now. An unreadable phase counts as
    /// not marking: the copy then goes on as it would without this.
    pub fn marking(&self, mem: &dyn Memory) -> bool {
        mem.read_u32(self.addr).is_ok_and(|p| p == GC_MARK)
    }

    /// Waits until the collector is not marking, at most until `deadline`.
    /// Returns whether it waited at all and the mark ended.
    pub fn wait_for_mark_end(&self, mem: &dyn Memory, deadline: Instant) -> MarkWait {
        if !self.marking(mem) {
            return MarkWait::NotMarking;
        }
        let started = Instant::now();
        let ended = crate::poll::poll_until_deadline(deadline, LOOK_EVERY, LOOK_EVERY, || {
            (!self.marking(mem)).then_some(())
        });
        match ended {
            Some(()) => MarkWait::Ended(started.elapsed()),
            None => MarkWait::StillMarking(started.elapsed()),
        }
    }
}

/// A copy's watch on the target's marks: looked at between the copy's
/// passes and, for a live process, every few milliseconds on a thread of
/// its own (a mark of 3.5 s can begin and end within a copy of 4.5 s),
/// and asked before the final stop whether to copy again.
#[derive(Debug)]
pub struct MarkWatch {
    phase: GcPhase,
    /// Whether a look found a mark since the copy last took a round for one:
    /// a mark that ended since has left its writes to copy all the same.
    seen: Arc<AtomicBool>,
    /// The sampling thread, and what stops it.
    sampler: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
    /// Waits and rounds for marks so far, and when the patience ends.
    rounds: usize,
    deadline: Option<Instant>,
    /// The marks met, for `--stats`.
    pub marks: Vec<MarkWait>,
}

/// What a copy does next, before its final stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Copy what a mark wrote, while the program runs, then ask again.
    CopyAgain,
    /// Stop the program.
    FinalStop,
}

impl MarkWatch {
    /// A watch that looks only when told to ([`Self::look`]).
    pub fn new(phase: GcPhase) -> MarkWatch {
        MarkWatch {
            phase,
            seen: Arc::new(AtomicBool::new(false)),
            sampler: None,
            rounds: 0,
            deadline: None,
            marks: Vec::new(),
        }
    }

    /// A watch that also looks at live process `pid`'s phase every
    /// [`SAMPLE_EVERY`] until it is dropped.
    pub fn sampling(phase: GcPhase, pid: i32) -> MarkWatch {
        let mut watch = MarkWatch::new(phase);
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (watch.seen.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("goat-gc-watch".into())
            .spawn(move || {
                let mem = crate::process::ProcessMemory::new(pid);
                while !stopped.load(Ordering::Relaxed) {
                    if phase.marking(&mem) {
                        seen.store(true, Ordering::Relaxed);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            });
        // No thread: the looks between passes still see most marks.
        watch.sampler = spawned.ok().map(|h| (stop, h));
        watch
    }

    /// Notes whether the collector is marking now (between passes).
    pub fn look(&mut self, mem: &dyn Memory) {
        if self.phase.marking(mem) {
            self.seen.store(true, Ordering::Relaxed);
        }
    }

    /// Before the final stop: a mark under way is waited out, and a mark
    /// met (now or at an earlier look) is answered with
    /// [`Next::CopyAgain`], within [`MARK_PATIENCE`] and
    /// [`MAX_MARK_WAITS`]; else [`Next::FinalStop`].
    pub fn before_final_stop(&mut self, mem: &dyn Memory) -> Next {
        let next = self.decide(mem);
        if next == Next::FinalStop {
            self.stop_sampling();
        }
        next
    }

    fn decide(&mut self, mem: &dyn Memory) -> Next {
        if self.rounds >= MAX_MARK_WAITS {
            return Next::FinalStop;
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + MARK_PATIENCE);
        let wait = self.phase.wait_for_mark_end(mem, deadline);
        let met = match wait {
            MarkWait::NotMarking if !self.seen.load(Ordering::Relaxed) => return Next::FinalStop,
            // Ended since the last look.
            MarkWait::NotMarking => MarkWait::Ended(Duration::ZERO),
            MarkWait::StillMarking(_) => {
                self.marks.push(wait);
                return Next::FinalStop;
            }
            MarkWait::Ended(_) => wait,
        };
        self.marks.push(met);
        self.seen.store(false, Ordering::Relaxed);
        self.rounds += 1;
        Next::CopyAgain
    }
}

impl MarkWatch {
    fn stop_sampling(&mut self) {
        if let Some((stop, h)) = self.sampler.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
    }
}

impl Drop for MarkWatch {
    fn drop(&mut self) {
        self.stop_sampling();
    }
}

/// What a wait for the end of a mark found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkWait {
    /// No mark was under way.
    NotMarking,
    /// One was, and it ended after this long.
    Ended(Duration),
    /// One was, and still is at the deadline, this long after.
    StillMarking(Duration),
}

/// `--stats`' words for the marks a copy met before its final stop, from
/// a leading "; "; empty when it met none.
pub fn marks_note(marks: &[MarkWait]) -> String {
    let parts: Vec<String> = marks
        .iter()
        .filter_map(|m| match m {
            MarkWait::NotMarking => None,
            MarkWait::Ended(d) if d.is_zero() => {
                Some("a mark had ended by goat's look, and its writes were copied again".into())
            }
            MarkWait::Ended(d) => Some(format!(
                "waited {:.2} s for a mark to end, then copied its writes again",
                d.as_secs_f64()
            )),
            MarkWait::StillMarking(d) => Some(format!(
                "waited {:.2} s and a mark went on: its writes were read in the final stop",
                d.as_secs_f64()
            )),
        })
        .collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!(
            "; the garbage collector marked during the copy: {}",
            parts.join("; ")
        ),
    }
}

/// `runtime.gcphase` from `runtime.gcMarkDone`'s code: the first
/// `CMP dword [rip+X], 1`, with X in `.bss`.
fn gcphase_from_code(bin: &Binary) -> Option<u64> {
    let tab = bin.pclntab().ok()?;
    let entry = tab.func_by_name("runtime.gcMarkDone")?.entry();
    let (entry, end) = tab.func_bounds(entry)?;
    let len = end.checked_sub(entry)?.min(MAX_SEARCHED_BYTES);
    let code = bin.read_static(entry, usize::try_from(len).ok()?)?;
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    while dec.can_decode() {
        let insn = dec.decode();
        let compares_dword_with_one = insn.mnemonic() == Mnemonic::Cmp
            && insn.op_count() == 2
            && insn.op0_kind() == OpKind::Memory
            && insn.memory_base() == Register::RIP
            && insn.memory_size() == iced_x86::MemorySize::UInt32
            && matches!(
                insn.op1_kind(),
                OpKind::Immediate8to32 | OpKind::Immediate32
            )
            && insn.immediate(1) == 1;
        if compares_dword_with_one {
            let addr = insn.ip_rel_memory_address();
            return bin.in_bss(addr).then_some(addr);
        }
    }
    None
}

#[cfg(test)]
mod tests;
