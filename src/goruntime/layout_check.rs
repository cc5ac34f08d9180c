//! Checking a runtime layout taken from goat's table (a binary without
//! DWARF) against the goroutines the target really holds, before anything
//! is printed with it. The table is keyed by the version string, which a
//! vendor toolchain may not tell truthfully (`go1.25-20250209-RC00` built
//! from a patched runtime); a wrong offset read on would print a plausible
//! wrong dump.
//!
//! The check reads a sample of `allgs` and requires what every goroutine of
//! every release satisfies: `allgs[0]` is goroutine 1; a live goroutine has
//! a unique id, a status the runtime uses, a stack of sane bounds holding
//! its saved SP, a saved PC in the text, and `gopc` just after a call of
//! `runtime.newproc` (the `go` statement that made it). The last one tells
//! apart releases whose `g` differs only past the fields stacks need.

use std::collections::HashSet;

use super::discover::{self, Globals};
use super::layout::RuntimeLayout;
use super::version::{G_DEAD, G_DEAD_EXTRA, G_SCAN};
use crate::binary::{Binary, BinaryError};
use crate::process::{Memory, MemoryExt};

/// Goroutines read to check a layout: enough that a few changing under
/// a running target do not decide, few enough to take well under a
/// millisecond.
const SAMPLE: u64 = 64;
/// `allgs` longer than this is not a goroutine list.
const MAX_ALLGS: u64 = 1 << 26;
/// Share of sampled live goroutines that must pass: a running target may
/// change a few while they are read.
const PASS_PERCENT: usize = 90;
/// `E8 rel32`: the `CALL runtime.newproc` before a goroutine's `gopc`.
const CALL_REL32: u8 = 0xe8;
const CALL_LEN: u64 = 5;

/// What the check saw when a layout fits.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub globals: Globals,
    /// `len(allgs)` when it was read.
    pub goroutines: u64,
}

/// Where the checks look in the executable: the text range and
/// `runtime.newproc`, at run-time addresses.
pub(super) struct Code<'a> {
    pub bin: &'a Binary,
    pub bias: u64,
    text: (u64, u64),
    newproc: u64,
}

/// Why the executable gives no place to check a layout against.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error("the function table has no runtime.newproc")]
    NoNewproc,
    #[error("the executable has no .text section")]
    NoText,
    #[error("the text overflows at its load bias {bias:#x}")]
    Overflow { bias: u64 },
}

impl<'a> Code<'a> {
    pub fn new(bin: &'a Binary, bias: u64) -> Result<Code<'a>, CodeError> {
        let tab = bin.pclntab()?;
        let newproc = tab
            .func_by_name("runtime.newproc")
            .ok_or(CodeError::NoNewproc)?
            .entry();
        let (lo, hi) = bin.section_range(".text").ok_or(CodeError::NoText)?;
        let at = |a: u64| a.checked_add(bias).ok_or(CodeError::Overflow { bias });
        Ok(Code {
            bin,
            bias,
            text: (at(lo)?, at(hi)?),
            newproc: at(newproc)?,
        })
    }

    fn in_text(&self, pc: u64) -> bool {
        (self.text.0..self.text.1).contains(&pc)
    }

    /// Whether the instruction before `pc` is a `CALL runtime.newproc`.
    fn after_newproc_call(&self, pc: u64) -> bool {
        let Some(call) = pc
            .checked_sub(CALL_LEN)
            .and_then(|a| a.checked_sub(self.bias))
        else {
            return false;
        };
        let Some(bytes) = self.bin.read_static(call, CALL_LEN as usize) else {
            return false;
        };
        if bytes[0] != CALL_REL32 {
            return false;
        }
        let rel = i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        pc.checked_add_signed(i64::from(rel)) == Some(self.newproc)
    }
}

/// Whether `layout` fits the goroutines in `mem`; why not, if it does not.
pub(super) fn check(layout: &RuntimeLayout, code: &Code, mem: &dyn Memory) -> Result<Fit, String> {
    let globals = discover::locate(code.bin, layout, mem, code.bias)
        .ok_or("no goroutine list (runtime.allgs) fits it")?;
    let ptr = mem
        .read_u64(globals.allgs)
        .map_err(|e| format!("runtime.allgs is unreadable: {e}"))?;
    let len = mem
        .read_u64(globals.allgs.wrapping_add(8))
        .map_err(|e| format!("runtime.allgs is unreadable: {e}"))?;
    if len == 0 || len > MAX_ALLGS {
        return Err(format!("runtime.allgs holds {len} goroutines"));
    }
    let step = len.div_ceil(SAMPLE).max(1);
    let mut ids = HashSet::new();
    let (mut live, mut passed, mut first_failure) = (0usize, 0usize, None);
    for (n, i) in (0..len).step_by(step as usize).enumerate() {
        let g = i
            .checked_mul(8)
            .and_then(|o| ptr.checked_add(o))
            .ok_or("runtime.allgs overflows")?;
        let g = mem
            .read_u64(g)
            .map_err(|e| format!("allgs[{i}] is unreadable: {e}"))?;
        let verdict = goroutine(layout, code, mem, g, &mut ids);
        if n == 0 {
            // The main goroutine is the first made, in every release.
            match &verdict {
                Some(Ok(1)) => {}
                Some(Ok(id)) => return Err(format!("allgs[0] is goroutine {id}, not 1")),
                Some(Err(why)) => return Err(format!("allgs[0]: {why}")),
                None => return Err("allgs[0] is dead, not goroutine 1".into()),
            }
        }
        match verdict {
            None => {}
            Some(Ok(_)) => {
                live += 1;
                passed += 1;
            }
            Some(Err(why)) => {
                live += 1;
                first_failure.get_or_insert(format!("goroutine at {g:#x}: {why}"));
            }
        }
    }
    if passed * 100 < live * PASS_PERCENT {
        let why = first_failure.unwrap_or_default();
        return Err(format!("{passed} of {live} sampled goroutines fit ({why})"));
    }
    Ok(Fit {
        globals,
        goroutines: len,
    })
}

/// The id of the live goroutine at `g` if it fits the layout; `None` for a
/// dead one (its fields are stale or never set); why it does not fit.
fn goroutine(
    layout: &RuntimeLayout,
    code: &Code,
    mem: &dyn Memory,
    g: u64,
    ids: &mut HashSet<u64>,
) -> Option<Result<u64, String>> {
    let o = &layout.g;
    let field = |off: u64| -> Result<u64, String> {
        let at = g.checked_add(off).ok_or("the g overflows")?;
        mem.read_u64(at).map_err(|e| format!("unreadable: {e}"))
    };
    let status = match g.checked_add(o.atomicstatus).map(|a| mem.read_u32(a)) {
        Some(Ok(s)) => s & !G_SCAN,
        Some(Err(e)) => return Some(Err(format!("unreadable: {e}"))),
        None => return Some(Err("the g overflows".into())),
    };
    if status == G_DEAD || status == G_DEAD_EXTRA {
        return None;
    }
    Some((|| {
        // 5 and 7 are unused in every release; 10 and 11 are 1.26's.
        if status > G_DEAD_EXTRA || status == 5 || status == 7 {
            return Err(format!("status {status} is not one the runtime uses"));
        }
        let id = field(o.goid)?;
        if id == 0 || id >= 1 << 48 || !ids.insert(id) {
            return Err(format!("goroutine id {id} is zero, huge or repeated"));
        }
        let (lo, hi) = (field(o.stack_lo)?, field(o.stack_hi)?);
        let size = hi.saturating_sub(lo);
        if !(2048..=1 << 30).contains(&size) || !size.is_power_of_two() {
            return Err(format!("stack [{lo:#x}, {hi:#x}) is not a goroutine stack"));
        }
        let gopc = field(o.gopc)?;
        if !code.after_newproc_call(gopc) {
            return Err(format!(
                "gopc {gopc:#x} is not after a call of runtime.newproc"
            ));
        }
        // Runnable and waiting goroutines are parked: their saved state is
        // where they will resume.
        if status == 1 || status == 4 {
            let (sp, pc) = (field(o.sched_sp)?, field(o.sched_pc)?);
            if !(lo..=hi).contains(&sp) || !code.in_text(pc) {
                return Err(format!(
                    "saved sp {sp:#x} or pc {pc:#x} is outside its stack or the text"
                ));
            }
        }
        Ok(id)
    })())
}
