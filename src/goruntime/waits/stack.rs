//! The words near the top of a parked goroutine's stack: where the
//! runtime's blocking functions keep, across their park, the pointers
//! goat needs and the runtime records nowhere else (before 1.26, a
//! semaphore's sudog; a `sync.Cond`; a network wait's `pollDesc`). Each
//! candidate is checked by its caller against the object's own record of
//! the goroutine, so a stale or coincidental word names nothing.

use super::Ctx;
use crate::process::MemoryExt;

/// Bytes scanned above the saved SP: the blocking runtime frames and
/// their sync or net callers sit within a few KiB of it.
const SCAN_BYTES: u64 = 16 * 1024;
/// Below this no Go object lives (the zero page and then some).
const MIN_POINTER: u64 = 0x1000;

/// The distinct pointer-like words of the parked goroutine at `gp`, from
/// its saved SP up (innermost frames first).
pub fn words(ctx: &Ctx<'_>, gp: u64) -> Result<Vec<u64>, String> {
    let g = &ctx.rt.g;
    let read = |off: u64, what: &str| ctx.word(Ctx::at(gp, off)?, what);
    let sp = read(g.sched_sp, "g.sched.sp")?;
    let lo = read(g.stack_lo, "g.stack.lo")?;
    let hi = read(g.stack_hi, "g.stack.hi")?;
    if !(lo..hi).contains(&sp) || sp % 8 != 0 {
        return Err(format!(
            "its saved SP {sp:#x} is not in its stack [{lo:#x}, {hi:#x})"
        ));
    }
    let end = hi.min(sp.saturating_add(SCAN_BYTES));
    let len = usize::try_from(end - sp).map_err(|_| "stack too large".to_string())?;
    let bytes = ctx
        .mem
        .read_vec(sp, len)
        .map_err(|_| format!("cannot read its stack at {sp:#x}"))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for chunk in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let v = u64::from_le_bytes(w);
        if v >= MIN_POINTER && v % 8 == 0 && seen.insert(v) {
            out.push(v);
        }
    }
    Ok(out)
}
