//! A goroutine's pending deferred calls: the `runtime._defer` list from
//! `g._defer`, innermost first, and the frame each belongs to.
//!
//! Only defers with a record are on the list: the compiler open-codes the
//! defers of a function that has at most 8 and none in a loop (it keeps
//! them in the frame, with a bit mask), so those are not seen (as in
//! Delve). Since Go 1.18 `fn` is a `func()` closure: the deferred call's
//! arguments are inside that closure, not after the record.

use std::collections::HashSet;

use super::layout::DeferOffsets;
use super::model::Frame;
use crate::process::{Memory, MemoryExt};

/// A longer list is garbage (or a loop the SP check missed).
const MAX_DEFERS: usize = 10_000;
/// Records of one range-over-func body read at most (Delve's bound is 10).
const MAX_RANGEFUNC: usize = 1000;

/// One deferred call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// The `runtime._defer` record.
    pub addr: u64,
    /// The deferring function's SP (for a range-over-func body's defers,
    /// that of the function holding the loop), which places it on a frame.
    pub sp: u64,
    /// The return address of the call that registered it (in the deferring
    /// function, after the defer statement's call).
    pub pc: u64,
    /// The closure (`funcval`) that will be called, and its code pointer
    /// (both 0 for a nil `fn`).
    pub closure: u64,
    pub fn_pc: u64,
}

/// The list, and why it ended early if it did (the records before the
/// fault are still listed).
#[derive(Debug, Default)]
pub struct Defers {
    pub calls: Vec<Deferred>,
    pub unreadable: Option<String>,
}

/// Reads the list whose head pointer (`g._defer`) is at `head_at`.
pub fn read(mem: &dyn Memory, o: &DeferOffsets, head_at: u64) -> Defers {
    let mut out = Defers::default();
    let mut seen = HashSet::new();
    let mut d = match mem.read_u64(head_at) {
        Ok(d) => d,
        Err(e) => {
            out.unreadable = Some(e.to_string());
            return out;
        }
    };
    while d != 0 {
        if out.calls.len() >= MAX_DEFERS || !seen.insert(d) {
            out.unreadable = Some(format!("the defer list loops or is too long at {d:#x}"));
            break;
        }
        let rec = match record(mem, o, d) {
            Ok(r) => r,
            Err(e) => {
                out.unreadable = Some(e);
                break;
            }
        };
        // The list goes outwards: a later record from a deeper SP is a
        // corrupt list (Delve's check).
        if out.calls.last().is_some_and(|p| rec.0.sp < p.sp) {
            out.unreadable = Some(format!("corrupted defer list: SP decreased at {d:#x}"));
            break;
        }
        let (rec, body, next) = rec;
        match body {
            // A range-over-func loop's defers stand in for the record.
            Some(first) => {
                let mut b = first;
                let mut n = 0;
                while b != 0 && n < MAX_RANGEFUNC && seen.insert(b) {
                    match record(mem, o, b) {
                        Ok((r, _, link)) => {
                            out.calls.push(Deferred { sp: rec.sp, ..r });
                            b = link;
                        }
                        Err(e) => {
                            out.unreadable = Some(e);
                            return out;
                        }
                    }
                    n += 1;
                }
            }
            None => out.calls.push(rec),
        }
        d = next;
    }
    out
}

/// The record at `d`: the call, the first record of its range-over-func
/// body when it is one, and `link`.
fn record(
    mem: &dyn Memory,
    o: &DeferOffsets,
    d: u64,
) -> Result<(Deferred, Option<u64>, u64), String> {
    let word = |off: u64| {
        let a = d
            .checked_add(off)
            .ok_or_else(|| format!("defer record at {d:#x} overflows"))?;
        mem.read_u64(a).map_err(|e| e.to_string())
    };
    let closure = word(o.fn_)?;
    let fn_pc = match closure {
        0 => 0,
        c => mem.read_u64(c).map_err(|e| e.to_string())?,
    };
    let rec = Deferred {
        addr: d,
        sp: word(o.sp)?,
        pc: word(o.pc)?,
        closure,
        fn_pc,
    };
    let body = match (o.rangefunc, o.head) {
        (Some(flag), Some(head)) if word(flag)? & 0xff != 0 => match word(head)? {
            0 => None,
            // An atomic.Pointer[_defer]: the pointer is its only word.
            h => Some(mem.read_u64(h).map_err(|e| e.to_string())?),
        },
        _ => None,
    };
    Ok((rec, body, word(o.link)?))
}

/// For each frame, the indices into `calls` of the defers it registered
/// (Delve's rule: a defer belongs to the first physical frame whose CFA is
/// above its SP; inlined frames share their caller's frame and take none).
pub fn by_frame(frames: &[Frame], calls: &[Deferred]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); frames.len()];
    let mut i = 0;
    for (n, d) in calls.iter().enumerate() {
        while let Some(f) = frames.get(i) {
            if f.inlined || d.sp >= f.fp {
                i += 1;
            } else {
                break;
            }
        }
        match out.get_mut(i) {
            Some(v) => v.push(n),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(sp: u64, fp: u64, inlined: bool) -> Frame {
        Frame {
            function: Arc::from("f"),
            file: Arc::from("f.go"),
            line: 1,
            pc: 0,
            offset: 0,
            inlined,
            fp,
            sp,
            args: String::new(),
        }
    }

    fn call(sp: u64) -> Deferred {
        Deferred {
            addr: 0,
            sp,
            pc: 0,
            closure: 0,
            fn_pc: 0,
        }
    }

    use crate::process::CapturedMemory;

    const O: DeferOffsets = DeferOffsets {
        sp: 8,
        pc: 16,
        fn_: 24,
        link: 32,
        rangefunc: Some(1),
        head: Some(40),
        heap: 0,
    };

    /// A `_defer` at `at` with this SP and link (no fn, not rangefunc).
    fn rec(m: &mut CapturedMemory, at: u64, sp: u64, link: u64) {
        let words = [0u64, sp, 0x401000, 0, link, 0];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        m.insert(at, &bytes);
    }

    #[test]
    fn hostile_defer_lists_end_with_a_reason() {
        let mut m = CapturedMemory::new();
        m.insert(0x100, &0x1000u64.to_le_bytes());
        // A loop: 0x1000 -> 0x2000 -> 0x1000.
        rec(&mut m, 0x1000, 0x500, 0x2000);
        rec(&mut m, 0x2000, 0x600, 0x1000);
        let d = read(&m, &O, 0x100);
        assert_eq!(d.calls.len(), 2);
        assert!(d.unreadable.unwrap().contains("loops"));
        // The SP going down the list: corrupt.
        rec(&mut m, 0x2000, 0x400, 0);
        let d = read(&m, &O, 0x100);
        assert_eq!(d.calls.len(), 1);
        assert!(d.unreadable.unwrap().contains("SP decreased"));
        // A link into unmapped memory: what was read, and why it stopped.
        rec(&mut m, 0x2000, 0x600, 0x9999_0000);
        let d = read(&m, &O, 0x100);
        assert_eq!(d.calls.len(), 2);
        assert!(d.unreadable.is_some());
    }

    #[test]
    fn defers_go_to_the_frame_whose_sp_they_hold() {
        let frames = [
            frame(0x100, 0x140, false),
            frame(0x140, 0x140, true),
            frame(0x140, 0x200, false),
            frame(0x200, 0x300, false),
        ];
        let calls = [
            call(0x100),
            call(0x140),
            call(0x140),
            call(0x250),
            call(0x900),
        ];
        assert_eq!(
            by_frame(&frames, &calls),
            vec![vec![0], vec![], vec![1, 2], vec![3]]
        );
    }
}
