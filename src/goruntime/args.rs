//! The argument list of a frame, printed as the runtime's `printArgs` does:
//! driven by the compiler's `FUNCDATA_ArgInfo` program, reading the spilled
//! argument words from the frame's argument area, with `?` after words the
//! liveness info says may be stale.
//!
//! The program and liveness depend only on the PC, so they are resolved once
//! per PC into an [`ArgsPlan`]; only the argument words are read per frame.

use crate::ascii::Put;
use crate::binary::{Binary, Func};
use crate::process::{Memory, MemoryExt, ReadFault};

const FUNCDATA_ARG_INFO: u8 = 5;
const FUNCDATA_ARG_LIVE_INFO: u8 = 6;
const PCDATA_ARG_LIVE_INDEX: u32 = 3;

const END_SEQ: u8 = 0xff;
const START_AGG: u8 = 0xfe;
const END_AGG: u8 = 0xfd;
const DOTDOTDOT: u8 = 0xfc;
const OFFSET_TOO_LARGE: u8 = 0xfb;
/// `abi.TraceArgsMaxLen`: the program is never longer.
const MAX_LEN: usize = 10 * 2 + 1 + 10 * 2;

/// How to print the arguments of one function at one PC.
#[derive(Debug, Clone, Default)]
pub struct ArgsPlan {
    program: Vec<u8>,
    /// Bit `slot` set: the spill slot may be stale at this PC (printed `?`).
    stale: u64,
    /// Offsets below this are always live.
    start_offset: u8,
}

impl ArgsPlan {
    /// The plan of physical function `f` at link-time `sym_pc`; an empty
    /// plan (nothing printed) when the function has no argument info.
    pub fn new(bin: &Binary, f: &Func<'_>, sym_pc: u64) -> ArgsPlan {
        let Some(addr) = f.funcdata(FUNCDATA_ARG_INFO) else {
            return ArgsPlan::default();
        };
        // The program ends with END_SEQ well before MAX_LEN; near the end of
        // the file-backed data a shorter read still holds it.
        let program = (1..=MAX_LEN)
            .rev()
            .find_map(|len| bin.read_static(addr, len))
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let live_info = f.funcdata(FUNCDATA_ARG_LIVE_INFO);
        let live_idx = f
            .pcdata(PCDATA_ARG_LIVE_INDEX, sym_pc)
            .ok()
            .flatten()
            .unwrap_or(-1);
        let start_offset = live_info
            .and_then(|a| bin.read_static(a, 1))
            .map_or(0xff, |b| b[0]);
        let mut stale = 0u64;
        if let (Some(info), true) = (live_info, live_idx > 0) {
            for slot in 0..64u64 {
                let at = info
                    .checked_add(live_idx as u64)
                    .and_then(|a| a.checked_add(slot / 8));
                if at
                    .and_then(|at| bin.read_static(at, 1))
                    .is_some_and(|b| b[0] & (1 << (slot % 8)) == 0)
                {
                    stale |= 1 << slot;
                }
            }
        }
        ArgsPlan {
            program,
            stale,
            start_offset,
        }
    }

    /// The text between the parentheses, reading argument words at `argp`,
    /// appended to `out` as bytes (ASCII only): a UTF-8 check per word was
    /// a tenth of a large dump's decoding, so callers check many frames'
    /// text at once.
    pub fn format_into(&self, mem: &dyn Memory, argp: u64, out: &mut Vec<u8>) {
        let mut start = true;
        let mut slot = 0u32;
        let mut i = 0;
        let comma = |out: &mut Vec<u8>, start: bool| {
            if !start {
                out.put(", ");
            }
        };
        while let Some(&op) = self.program.get(i) {
            i += 1;
            match op {
                END_SEQ => break,
                START_AGG => {
                    comma(out, start);
                    out.push(b'{');
                    start = true;
                    continue;
                }
                END_AGG => out.push(b'}'),
                DOTDOTDOT => {
                    comma(out, start);
                    out.put("...");
                }
                OFFSET_TOO_LARGE => {
                    comma(out, start);
                    out.push(b'_');
                }
                off => {
                    comma(out, start);
                    let Some(&size) = self.program.get(i) else {
                        break;
                    };
                    i += 1;
                    let arg_at = argp
                        .checked_add(u64::from(off))
                        .ok_or(ReadFault { addr: argp, len: 8 });
                    match arg_at.and_then(|a| mem.read_u64(a)) {
                        Ok(mut x) => {
                            if size < 8 {
                                let shift = 64 - u32::from(size) * 8;
                                x = (x << shift) >> shift;
                            }
                            out.hex(x);
                            let tracked = off >= self.start_offset;
                            if tracked && slot < 64 && self.stale & (1 << slot) != 0 {
                                out.push(b'?');
                            }
                        }
                        Err(_) => out.push(b'?'),
                    }
                    if off >= self.start_offset {
                        slot += 1;
                    }
                }
            }
            start = false;
        }
    }
}
