//! Finding the runtime's globals in a binary stripped of its symbol table
//! (`-ldflags=-s`): Go keeps its pclntab and ELF section headers, so goat
//! looks for `runtime.allgs` and `runtime.waitReasonStrings` by what they
//! hold, in the target's memory.

use super::layout::RuntimeLayout;
use crate::binary::Binary;
use crate::process::{Memory, MemoryExt};

/// Run-time addresses of the globals a dump reads.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    /// `runtime.allgs`, a `[]*g`.
    pub allgs: u64,
    /// `runtime.waitReasonStrings` and its length.
    pub wait_reasons: Option<(u64, u64)>,
}

/// Sections are read in pieces this large.
const CHUNK: u64 = 1 << 20;
/// No Go runtime has a .bss or .data section larger than this we would scan.
const MAX_SCAN: u64 = 256 << 20;
/// `waitReasonStrings[1]` in every release goat supports.
const FIRST_WAIT_REASON: &[u8] = b"GC assist marking";

/// The globals at `bias`, from symbols or DWARF when the layout has them,
/// else found by scanning the target's `.bss` and `.data`.
pub fn locate(
    bin: &Binary,
    layout: &RuntimeLayout,
    mem: &dyn Memory,
    bias: u64,
) -> Option<Globals> {
    let allgs = match layout.allgs {
        Some(a) => a.wrapping_add(bias),
        None => scan(bin, ".bss", mem, bias, |words| is_allgs(words, layout, mem))?,
    };
    let wait_reasons = match layout.wait_reasons {
        Some((a, n)) => Some((a.wrapping_add(bias), n)),
        None => scan(bin, ".data", mem, bias, |words| is_wait_reasons(words, mem))
            .map(|a| (a, count_wait_reasons(mem, a))),
    };
    Some(Globals {
        allgs,
        wait_reasons,
    })
}

/// The first 8-aligned address in section `name` where `test` holds; `test`
/// sees the words from there on (at least 4).
fn scan(
    bin: &Binary,
    name: &str,
    mem: &dyn Memory,
    bias: u64,
    mut test: impl FnMut(&[u64]) -> bool,
) -> Option<u64> {
    let (start, end) = bin.section_range(name)?;
    let (start, end) = (
        start.wrapping_add(bias),
        end.wrapping_add(bias)
            .min(start.wrapping_add(bias) + MAX_SCAN),
    );
    let mut at = start & !7;
    while at < end {
        // Overlap chunks by a few words so a candidate never straddles two.
        let len = (end - at).min(CHUNK + 32);
        let bytes = mem.read_vec(at, len as usize).ok()?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        for i in 0..words.len().saturating_sub(4) {
            if test(&words[i..]) {
                return Some(at + i as u64 * 8);
            }
        }
        at += CHUNK;
    }
    None
}

/// A slice header `(ptr, len, cap)` whose first element is goroutine 1
/// with a sane stack: `allgs`, whose first entry is the main goroutine.
fn is_allgs(w: &[u64], layout: &RuntimeLayout, mem: &dyn Memory) -> bool {
    let (ptr, len, cap) = (w[0], w[1], w[2]);
    if ptr == 0 || ptr % 8 != 0 || len == 0 || len > cap || cap > 1 << 24 {
        return false;
    }
    let Ok(g) = mem.read_u64(ptr) else {
        return false;
    };
    if g == 0 || g % 8 != 0 {
        return false;
    }
    let o = &layout.g;
    let field = |off: u64| mem.read_u64(g + off).ok();
    let (Some(goid), Some(lo), Some(hi)) = (field(o.goid), field(o.stack_lo), field(o.stack_hi))
    else {
        return false;
    };
    goid == 1 && lo < hi && hi - lo <= 1 << 30
}

/// Two string headers: `""` then `"GC assist marking"`.
fn is_wait_reasons(w: &[u64], mem: &dyn Memory) -> bool {
    if w[1] != 0 || w[3] != FIRST_WAIT_REASON.len() as u64 || w[2] == 0 {
        return false;
    }
    mem.read_vec(w[2], FIRST_WAIT_REASON.len())
        .is_ok_and(|b| b == FIRST_WAIT_REASON)
}

/// How many string headers from `addr` on look like wait reasons (short,
/// printable). The array's true end is unknown without symbols; an entry or
/// two too many is harmless, as no goroutine waits with such a reason.
fn count_wait_reasons(mem: &dyn Memory, addr: u64) -> u64 {
    let mut n = 1;
    while n < 256 {
        let at = addr + n * 16;
        let (Ok(ptr), Ok(len)) = (mem.read_u64(at), mem.read_u64(at + 8)) else {
            break;
        };
        if len == 0 || len > 64 {
            break;
        }
        let printable = mem
            .read_vec(ptr, len as usize)
            .is_ok_and(|b| b.iter().all(|c| (0x20..0x7f).contains(c)));
        if !printable {
            break;
        }
        n += 1;
    }
    n
}
