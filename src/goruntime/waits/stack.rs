//! The words near the top of a parked goroutine's stack: where the
//! runtime's blocking functions keep, across their park, the pointers
//! goat needs and the runtime records nowhere else (before 1.26, a
//! semaphore's sudog; a `sync.Cond`; a network wait's `pollDesc`). Each
//! candidate is checked by its caller against the object's own record of
//! the goroutine, so a stale or coincidental word names nothing.
//!
//! The words are read lazily, innermost first: the word sought sits in
//! the first few frames, and a million parked goroutines read whole
//! would be gigabytes of copying for nothing.

use std::collections::HashSet;

use super::Ctx;
use crate::process::MemoryExt;

/// Bytes scanned above the saved SP: the blocking runtime frames and
/// their sync or net callers sit within a few KiB of it.
const SCAN_BYTES: u64 = 16 * 1024;
/// Bytes read at first; the rest of [`SCAN_BYTES`] only if the caller
/// looks further (a blocking runtime frame and its caller fit in it).
const FIRST_READ: u64 = 1024;
/// Below this no Go object lives (the zero page and then some).
const MIN_POINTER: u64 = 0x1000;

/// The distinct pointer-like words of a parked goroutine's stack, from
/// its saved SP up (innermost frames first), without the words that
/// point into that stack itself: a sudog, a `Cond` another goroutine
/// signals and a `pollDesc` never live there, and the saved frame
/// pointers and addresses of locals are most of a stack's words.
pub struct Words<'c> {
    ctx: &'c Ctx<'c>,
    stack: (u64, u64),
    /// The next byte to read, and where the scan ends.
    next: u64,
    end: u64,
    block: Vec<u8>,
    at: usize,
    seen: HashSet<u64>,
}

/// The words of the parked goroutine at `gp` (see [`Words`]).
pub fn words<'c>(ctx: &'c Ctx<'c>, gp: u64) -> Result<Words<'c>, String> {
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
    let mut words = Words {
        ctx,
        stack: (lo, hi),
        next: sp,
        end: hi.min(sp.saturating_add(SCAN_BYTES)),
        block: Vec::new(),
        at: 0,
        seen: HashSet::new(),
    };
    // The first read failing is the stack being unreadable; a later one
    // only ends the scan early.
    if !words.read_block() {
        return Err(format!("cannot read its stack at {sp:#x}"));
    }
    Ok(words)
}

impl Words<'_> {
    /// Reads the next block: [`FIRST_READ`] bytes at first, then the rest.
    fn read_block(&mut self) -> bool {
        let want = if self.block.is_empty() {
            FIRST_READ
        } else {
            SCAN_BYTES
        };
        let to = self.end.min(self.next.saturating_add(want));
        let Ok(len) = usize::try_from(to.saturating_sub(self.next)) else {
            return false;
        };
        if len == 0 {
            return false;
        }
        match self.ctx.mem.read_vec(self.next, len) {
            Ok(bytes) => {
                self.block = bytes;
                self.at = 0;
                self.next = to;
                true
            }
            Err(_) => false,
        }
    }
}

impl Iterator for Words<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            if self.at + 8 > self.block.len() && !self.read_block() {
                return None;
            }
            let mut w = [0u8; 8];
            w.copy_from_slice(self.block.get(self.at..self.at + 8)?);
            self.at += 8;
            let v = u64::from_le_bytes(w);
            let in_own_stack = (self.stack.0..self.stack.1).contains(&v);
            if v >= MIN_POINTER && v % 8 == 0 && !in_own_stack && self.seen.insert(v) {
                return Some(v);
            }
        }
    }
}
