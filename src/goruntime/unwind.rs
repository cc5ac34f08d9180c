//! Walking a goroutine's stack the way the runtime's own unwinder does:
//! each function's frame size comes from its pcsp table, the return address
//! sits just below the caller's SP. No frame pointers needed, so this works on
//! any Go build and at any instruction (prologues included).

use std::collections::HashMap;

use crate::binary::{Func, Pclntab};
use crate::process::{Memory, MemoryExt};

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
#[derive(Debug, Clone, Copy)]
pub struct StartRegs {
    pub pc: u64,
    pub sp: u64,
    pub trap: bool,
}

/// The frames found, and why the walk stopped early if it did.
#[derive(Debug, Default)]
pub struct Unwound {
    pub frames: Vec<PhysFrame>,
    pub error: Option<String>,
}

/// What the unwinder needs of the function at one PC, remembered per PC:
/// most goroutines stand at the same few dozen PCs.
#[derive(Debug, Clone)]
pub struct PcFacts {
    entry: u64,
    flag: u8,
    /// The frame size at this PC, or why it is unknown.
    frame_size: Result<u64, String>,
    injected_call: bool,
}

pub type UnwindCache = HashMap<u64, Option<PcFacts>>;

fn facts(tab: &Pclntab, link_pc: u64) -> Option<PcFacts> {
    let f = tab.find_func(link_pc)?;
    let frame_size = match f.sp_delta(link_pc) {
        Ok(d) if d >= 0 => Ok(d as u64),
        Ok(d) => Err(format!("negative frame size {d}")),
        Err(e) => Err(format!("no frame size: {e}")),
    };
    Some(PcFacts {
        entry: f.entry(),
        flag: f.flag(),
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
    let mut out = Unwound::default();
    let (mut pc, mut sp, mut trap) = (start.pc, start.sp, start.trap);
    while out.frames.len() < MAX_FRAMES {
        let link_pc = pc.wrapping_sub(bias);
        let Some(f) = cache
            .entry(link_pc)
            .or_insert_with(|| facts(tab, link_pc))
            .clone()
        else {
            out.error = Some(format!("unknown pc {pc:#x}"));
            break;
        };
        let delta = match f.frame_size {
            Ok(d) => d,
            Err(e) => {
                out.error = Some(format!("{e} at pc {pc:#x}"));
                break;
            }
        };
        // Target bytes: an SP near 2^64 ends the walk, never wraps.
        let Some(fp) = sp.checked_add(delta).and_then(|v| v.checked_add(8)) else {
            out.error = Some(format!("stack pointer {sp:#x} out of range"));
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
        // cannot be unwound through; the runtime stops there too.
        if f.flag & FLAG_SPWRITE != 0 && !innermost {
            break;
        }
        // fp >= 8: it is sp + delta + 8.
        let lr = match mem.read_u64(fp - 8) {
            Ok(lr) => lr,
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        };
        if lr == 0 {
            break;
        }
        if lr == pc && fp == sp {
            out.error = Some(format!("traceback stuck at pc {pc:#x}"));
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
