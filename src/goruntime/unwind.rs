//! Walking a goroutine's stack the way the runtime's own unwinder does:
//! each function's frame size comes from its pcsp table, the return address
//! sits just below the caller's SP. No frame pointers needed, so this works on
//! any Go build and at any instruction (prologues included).

use std::collections::HashMap;

use thiserror::Error;

use crate::binary::{BinaryError, Func, Pclntab};
use crate::process::{Memory, MemoryExt, ReadFault};

/// `abi.FuncFlag` bits.
const FLAG_TOP_FRAME: u8 = 1;
const FLAG_SPWRITE: u8 = 2;

/// No goroutine stack is deeper than this many frames (a 1 GiB stack of
/// minimal 16-byte frames is 64M; the runtime's default max stack is 1 GB, but
/// traceback only ever shows 100): a bound on work for a corrupt stack.
const MAX_FRAMES: usize = 1 << 20;

/// One physical frame, in target (run-time) addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysFrame {
    pub pc: u64,
    pub sp: u64,
    /// The caller's SP: `sp + frame size + return address`.
    pub fp: u64,
    /// Link-time entry of the function.
    pub entry: u64,
    /// The PC is not a return address (innermost frame of a thread stopped by
    /// a signal or ptrace, or the frame interrupted by an injected call): it
    /// is used as is for symbolization, not backed up to the CALL.
    pub trap: bool,
}

impl PhysFrame {
    /// The PC to symbolize: a return address is backed up into its CALL
    /// instruction, exactly as the runtime's `symPC` does.
    pub fn sym_pc(&self, bias: u64) -> u64 {
        let pc = self.pc.wrapping_sub(bias);
        if !self.trap && pc > self.entry {
            pc - 1
        } else {
            pc
        }
    }
}

/// Where the walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRegs {
    pub pc: u64,
    pub sp: u64,
    pub trap: bool,
    /// The walk starts from a goroutine's `syscallpc/sp`: saved by
    /// `entersyscall` before the syscall function writes SP, so that
    /// function's SPWRITE flag does not matter (the runtime's `isSyscall`).
    pub syscall: bool,
}

/// The frames found, and why the walk stopped early if it did.
#[derive(Debug, Default)]
pub struct Unwound {
    pub frames: Vec<PhysFrame>,
    pub error: Option<UnwindError>,
}

/// Why a walk stopped before the outermost frame. The text is what a
/// goroutine's "unreadable" note says.
#[derive(Debug, Clone, Error)]
pub enum UnwindError {
    /// No function covers the PC.
    #[error("unknown pc {pc:#x}")]
    UnknownPc { pc: u64 },
    /// The function's frame size at the PC is unknown or impossible.
    #[error("{cause} at pc {pc:#x}")]
    FrameSize { cause: FrameSizeError, pc: u64 },
    /// SP plus the frame would pass 2^64.
    #[error("stack pointer {sp:#x} out of range")]
    SpOutOfRange { sp: u64 },
    /// The return address could not be read.
    #[error("{0}")]
    Read(ReadFault),
    /// A frame that returns to itself at the same SP: no progress.
    #[error("traceback stuck at pc {pc:#x}")]
    Stuck { pc: u64 },
}

/// Why a function's frame size at a PC is not known.
#[derive(Debug, Clone, Error)]
pub enum FrameSizeError {
    /// The pcsp table says the frame is smaller than nothing.
    #[error("negative frame size {0}")]
    Negative(i32),
    /// The pcsp table has no value for the PC (or cannot be read).
    #[error("no frame size: {0}")]
    Unknown(BinaryError),
}

/// What the unwinder needs of the function at one PC, remembered per PC:
/// most goroutines stand at the same few dozen PCs.
#[derive(Debug, Clone)]
pub struct PcFacts {
    entry: u64,
    /// A function without a pcsp table (an external one, like the race
    /// detector's): the runtime ends the walk before it, silently.
    external: bool,
    flag: u8,
    /// The frame size at this PC, or why it is unknown.
    frame_size: Result<u64, FrameSizeError>,
    injected_call: bool,
}

/// [`PcFacts`] by PC, for one thread's walks.
#[derive(Default)]
pub struct UnwindCache {
    by_pc: HashMap<u64, Option<PcFacts>, PcHasher>,
    /// The PC and facts of each frame of the last walk, by depth: a
    /// service's goroutines share stacks, so the frame at the same depth
    /// most often stands at the same PC, and one comparison here costs
    /// less than the hash look-up (a twentieth of decoding at 100k
    /// goroutines).
    last: Vec<Option<(u64, PcFacts)>>,
}

impl UnwindCache {
    /// The facts of link-time `pc`, the walk's `depth`th frame.
    fn facts(&mut self, tab: &Pclntab, pc: u64, depth: usize) -> Option<&PcFacts> {
        let hit = matches!(self.last.get(depth), Some(Some((at, _))) if *at == pc);
        if !hit {
            let f = self
                .by_pc
                .entry(pc)
                .or_insert_with(|| facts(tab, pc))
                .clone()?;
            if self.last.len() <= depth {
                self.last.resize(depth + 1, None);
            }
            self.last[depth] = Some((pc, f));
        }
        self.last.get(depth)?.as_ref().map(|(_, f)| f)
    }
}

/// Hashes PCs for the per-PC caches: one multiply, where SipHash cost more
/// than the unwinding it saved (the keys are addresses from the target,
/// but a flood of colliding PCs only slows goat down, bounded by the
/// number of frames).
#[derive(Default, Clone, Copy)]
pub struct PcHasher;

impl std::hash::BuildHasher for PcHasher {
    type Hasher = PcHash;
    fn build_hasher(&self) -> PcHash {
        PcHash(0)
    }
}

/// The hasher [`PcHasher`] builds.
pub struct PcHash(u64);

impl std::hash::Hasher for PcHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A word at a time: `goat why` keys maps by slices of ids.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing: the high bits, which hashbrown uses, mix all
        // of the PC's bits.
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn facts(tab: &Pclntab, link_pc: u64) -> Option<PcFacts> {
    let f = tab.find_func(link_pc)?;
    let frame_size = match f.sp_delta(link_pc) {
        Ok(d) => u64::try_from(d).map_err(|_| FrameSizeError::Negative(d)),
        Err(e) => Err(FrameSizeError::Unknown(e)),
    };
    // runtime.cgocallback writes SP but keeps a frame valid for unwinding
    // on both stacks it switches between, so the runtime's traceback
    // clears its SPWRITE flag: a Go callback on a thread C created
    // unwinds on to runtime.goexit.
    let flag = if f.name().is_ok_and(|n| n == "runtime.cgocallback") {
        f.flag() & !FLAG_SPWRITE
    } else {
        f.flag()
    };
    Some(PcFacts {
        entry: f.entry(),
        external: !f.has_sp_table(),
        flag,
        frame_size,
        injected_call: is_injected_call(&f),
    })
}

/// Unwinds from `start` over `mem` (which must hold the stack), with
/// `bias` = run-time address − link-time address of the executable.
pub fn unwind(
    mem: &dyn Memory,
    tab: &Pclntab,
    bias: u64,
    start: StartRegs,
    cache: &mut UnwindCache,
) -> Unwound {
    unwind_reusing(mem, tab, bias, start, cache, Vec::new())
}

/// [`unwind`] into `frames` (emptied first): a decoder passes the
/// previous goroutine's, so that a million walks do not each grow a
/// vector from nothing (reallocation was 1.6% of `goat why`'s CPU).
pub fn unwind_reusing(
    mem: &dyn Memory,
    tab: &Pclntab,
    bias: u64,
    start: StartRegs,
    cache: &mut UnwindCache,
    mut frames: Vec<PhysFrame>,
) -> Unwound {
    frames.clear();
    let mut out = Unwound {
        frames,
        error: None,
    };
    let (mut pc, mut sp, mut trap) = (start.pc, start.sp, start.trap);
    while out.frames.len() < MAX_FRAMES {
        let link_pc = pc.wrapping_sub(bias);
        let Some(f) = cache.facts(tab, link_pc, out.frames.len()) else {
            out.error = Some(UnwindError::UnknownPc { pc });
            break;
        };
        // Returned into a function without a frame table (external code):
        // the runtime ends the walk there, silently. Starting in one is
        // reported: no frame at all is not an answer.
        if f.external && !out.frames.is_empty() {
            break;
        }
        let delta = match &f.frame_size {
            Ok(d) => *d,
            Err(cause) => {
                out.error = Some(UnwindError::FrameSize {
                    cause: cause.clone(),
                    pc,
                });
                break;
            }
        };
        // Target bytes: an SP near 2^64 ends the walk, never wraps.
        let Some(fp) = sp.checked_add(delta).and_then(|v| v.checked_add(8)) else {
            out.error = Some(UnwindError::SpOutOfRange { sp });
            break;
        };
        out.frames.push(PhysFrame {
            pc,
            sp,
            fp,
            entry: f.entry,
            trap,
        });
        let innermost = out.frames.len() == 1;
        if f.flag & FLAG_TOP_FRAME != 0 {
            break;
        }
        // A function that writes SP arbitrarily (an assembly stack switch)
        // cannot be unwound through: the SP may already be another stack's.
        // The runtime's printed tracebacks stop there even at the innermost
        // frame (only its GC stack scan assumes an innermost one has not
        // written SP yet); a syscall's saved SP is from before the write.
        if f.flag & FLAG_SPWRITE != 0 && !(innermost && start.syscall) {
            break;
        }
        // fp >= 8: it is sp + delta + 8.
        let lr = match mem.read_u64(fp - 8) {
            Ok(lr) => lr,
            Err(e) => {
                out.error = Some(UnwindError::Read(e));
                break;
            }
        };
        if lr == 0 {
            break;
        }
        if lr == pc && fp == sp {
            out.error = Some(UnwindError::Stuck { pc });
            break;
        }
        // After an injected call (a signal turned into a panic, an async
        // preemption) the caller's PC is where it was interrupted, not a
        // return address.
        trap = f.injected_call;
        pc = lr;
        sp = fp;
    }
    out
}

fn is_injected_call(f: &Func<'_>) -> bool {
    matches!(
        f.name(),
        Ok("runtime.sigpanic" | "runtime.asyncPreempt" | "runtime.debugCallV2")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::Binary;
    use crate::process::CapturedMemory;

    /// A walk that starts inside an SP-writing function stops there, as the
    /// runtime's printed tracebacks do, unless it starts from a syscall's
    /// saved PC and SP.
    #[test]
    fn an_innermost_sp_writing_frame_ends_the_walk_unless_it_is_a_syscall() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut tried = 0;
        for ver in ["1.19", "1.21", "1.24", "1.27"] {
            let path = root.join(format!("tests/fixtures/bin/go{ver}-exe/states"));
            if !crate::require::require_fixture(&path) {
                continue;
            }
            tried += 1;
            let bin = Binary::open(&path).expect("the states fixture opens");
            let tab = bin.pclntab().expect("pclntab");
            let switch = tab
                .func_by_name("runtime.systemstack")
                .expect("systemstack");
            assert_ne!(
                switch.flag() & FLAG_SPWRITE,
                0,
                "go{ver}: systemstack writes SP"
            );
            let caller = tab.func_by_name("main.lockMutex").expect("main.lockMutex");
            // At systemstack's entry the return address is at SP.
            let sp = 0x6000_0000u64;
            let mut mem = CapturedMemory::new();
            mem.insert(sp, &(caller.entry() + 5).to_le_bytes());
            let walk = |syscall| {
                let start = StartRegs {
                    pc: switch.entry(),
                    sp,
                    trap: false,
                    syscall,
                };
                unwind(&mem, tab, 0, start, &mut UnwindCache::default())
            };
            let stopped = walk(false);
            assert_eq!(stopped.frames.len(), 1, "go{ver}");
            assert!(stopped.error.is_none(), "go{ver}: {:?}", stopped.error);
            let through = walk(true);
            assert_eq!(
                through.frames.get(1).map(|f| f.entry),
                Some(caller.entry()),
                "go{ver}"
            );
        }
        assert!(tried > 0, "no fixture binaries; run scripts/build-fixtures");
    }
}
