//! Which package variables a function's code takes the address of.
//!
//! Go records no owner for a `sync.Mutex`, and a goroutine that locked a
//! package variable's mutex holds no pointer to it: its code names the
//! variable (`LEAQ main.state(SB)`, a RIP-relative operand). So "may hold
//! main.state.mu" is answered from the code of the frames a goroutine
//! stands in: any of them that addresses the variable is a candidate.

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderOptions};

use crate::binary::Binary;

/// Longest function decoded (bytes): Go's largest functions are a few
/// hundred KiB; a bogus bound read from a hostile binary stops here.
const MAX_FUNC_BYTES: u64 = 4 << 20;

/// Functions decoded at most (each once): the frames of a program's
/// goroutines stand in a few thousand functions.
const MAX_FUNCS: usize = 100_000;

/// The RIP-relative addresses each function's code uses, decoded once.
#[derive(Default)]
pub struct CodeRefs {
    /// By link-time entry: sorted, deduplicated targets (link-time).
    by_entry: HashMap<u64, Vec<u64>>,
}

impl CodeRefs {
    /// Whether the function containing link-time `pc` addresses anything
    /// in link-time `[start, end)`.
    pub fn addresses(&mut self, bin: &Binary, pc: u64, start: u64, end: u64) -> bool {
        let Some(targets) = self.targets(bin, pc) else {
            return false;
        };
        let i = targets.partition_point(|t| *t < start);
        targets.get(i).is_some_and(|t| *t < end)
    }

    fn targets(&mut self, bin: &Binary, pc: u64) -> Option<&Vec<u64>> {
        let (entry, end) = bin.pclntab().ok()?.func_bounds(pc)?;
        if !self.by_entry.contains_key(&entry) {
            if self.by_entry.len() >= MAX_FUNCS {
                return None;
            }
            let targets = decode(bin, entry, end).unwrap_or_default();
            self.by_entry.insert(entry, targets);
        }
        self.by_entry.get(&entry)
    }
}

fn decode(bin: &Binary, entry: u64, end: u64) -> Option<Vec<u64>> {
    let len = end.checked_sub(entry)?.min(MAX_FUNC_BYTES);
    let code = bin.read_static(entry, usize::try_from(len).ok()?)?;
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while dec.can_decode() {
        let insn = dec.decode();
        if insn.is_ip_rel_memory_operand() {
            out.push(insn.ip_rel_memory_address());
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}
