//! The argument list of a frame, printed as the runtime's `printArgs` does:
//! driven by the compiler's `FUNCDATA_ArgInfo` program, reading the spilled
//! argument words from the frame's argument area, with `?` after words the
//! liveness info says may be stale.

use std::fmt::Write;

use crate::binary::{Binary, Func};
use crate::target::{Memory, MemoryExt};

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

/// Formats the arguments of physical frame `f` whose argument area starts at
/// `argp` (run-time address), symbolized at link-time `sym_pc`.
pub fn format_args(bin: &Binary, f: &Func<'_>, mem: &dyn Memory, argp: u64, sym_pc: u64) -> String {
    let Some(prog) = f.funcdata(FUNCDATA_ARG_INFO).and_then(|a| {
        bin.read_static(a, MAX_LEN)
            .or_else(|| bin.read_static(a, 1))
    }) else {
        return String::new();
    };
    let live_info = f.funcdata(FUNCDATA_ARG_LIVE_INFO);
    let live_idx = f
        .pcdata(PCDATA_ARG_LIVE_INDEX, sym_pc)
        .ok()
        .flatten()
        .unwrap_or(-1);
    let start_offset = live_info
        .and_then(|a| bin.read_static(a, 1))
        .map_or(0xff, |b| b[0]);
    let is_live = |off: u8, slot: u8| -> bool {
        let Some(info) = live_info else { return true };
        if live_idx <= 0 || off < start_offset {
            return true;
        }
        let at = info + live_idx as u64 + u64::from(slot / 8);
        bin.read_static(at, 1)
            .is_none_or(|b| b[0] & (1 << (slot % 8)) != 0)
    };

    let mut out = String::new();
    let mut start = true;
    let mut slot = 0u8;
    let mut i = 0;
    let comma = |out: &mut String, start: bool| {
        if !start {
            out.push_str(", ");
        }
    };
    while let Some(&op) = prog.get(i) {
        i += 1;
        match op {
            END_SEQ => break,
            START_AGG => {
                comma(&mut out, start);
                out.push('{');
                start = true;
                continue;
            }
            END_AGG => out.push('}'),
            DOTDOTDOT => {
                comma(&mut out, start);
                out.push_str("...");
            }
            OFFSET_TOO_LARGE => {
                comma(&mut out, start);
                out.push('_');
            }
            off => {
                comma(&mut out, start);
                let Some(&size) = prog.get(i) else { break };
                i += 1;
                match mem.read_u64(argp + u64::from(off)) {
                    Ok(mut x) => {
                        if size < 8 {
                            let shift = 64 - u32::from(size) * 8;
                            x = (x << shift) >> shift;
                        }
                        let _ = write!(out, "{x:#x}");
                        if !is_live(off, slot) {
                            out.push('?');
                        }
                    }
                    Err(_) => out.push('?'),
                }
                if off >= start_offset {
                    slot = slot.wrapping_add(1);
                }
            }
        }
        start = false;
    }
    out
}
