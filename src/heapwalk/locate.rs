//! Where the heap's roots of bookkeeping are (`runtime.mheap_`,
//! `runtime.firstmoduledata`, `runtime.allfin`, `runtime.gcController`)
//! in an executable without DWARF. By symbol when the symbol table is
//! there (`-ldflags=-w`); in a stripped binary (`-s -w`), `mheap_` from
//! the code that hands it to `(*mheap).alloc` and the module data from the
//! pclntab, which Go keeps whatever the flags.

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind, Register};

use crate::binary::Binary;

use super::HeapError;

/// Link-time addresses of the runtime globals the walker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addresses {
    pub mheap: u64,
    pub firstmoduledata: u64,
    /// The finalizer blocks' list head: by symbol only.
    pub allfin: Option<u64>,
    /// By symbol only: the runtime's own heap counters, for comparison.
    pub gc_controller: Option<u64>,
}

/// Longest function decoded while looking for `mheap_` (bytes):
/// `allocLarge` is a few hundred bytes in every release.
const MAX_SEARCHED_BYTES: u64 = 64 << 10;

pub(super) fn locate(bin: &Binary) -> Result<Addresses, HeapError> {
    let mheap = match bin.symbol("runtime.mheap_") {
        Some(a) => a,
        None => mheap_from_code(bin).ok_or(HeapError::Missing(
            "runtime.mheap_ (no symbol, and (*mcache).allocLarge does not pass it to (*mheap).alloc as goat expects)",
        ))?,
    };
    let firstmoduledata = bin
        .symbol("runtime.firstmoduledata")
        .or_else(|| bin.pclntab().ok()?.moduledata())
        .ok_or(HeapError::Missing("runtime.firstmoduledata"))?;
    Ok(Addresses {
        mheap,
        firstmoduledata,
        allfin: bin.symbol("runtime.allfin"),
        gc_controller: bin.symbol("runtime.gcController"),
    })
}

/// `mheap_`'s address from `runtime.(*mcache).allocLarge`, which calls
/// `mheap_.alloc(npages, spc)`: the receiver goes in RAX, set by
/// `LEAQ runtime.mheap_(SB), AX` before the call. The address must lie in
/// `.bss` or `.noptrbss`, where the linker puts `mheap_`.
pub(super) fn mheap_from_code(bin: &Binary) -> Option<u64> {
    let tab = bin.pclntab().ok()?;
    let caller = tab.func_by_name("runtime.(*mcache).allocLarge")?.entry();
    let callee = tab.func_by_name("runtime.(*mheap).alloc")?.entry();
    let (entry, end) = tab.func_bounds(caller)?;
    let len = end.checked_sub(entry)?.min(MAX_SEARCHED_BYTES);
    let code = bin.read_static(entry, usize::try_from(len).ok()?)?;
    let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut in_rax = None;
    while dec.can_decode() {
        let insn = dec.decode();
        if insn.code() == Code::Lea_r64_m
            && insn.op0_register() == Register::RAX
            && insn.is_ip_rel_memory_operand()
        {
            in_rax = Some(insn.ip_rel_memory_address());
        } else if insn.mnemonic() == Mnemonic::Call {
            if insn.op0_kind() == OpKind::NearBranch64 && insn.near_branch64() == callee {
                return in_rax.filter(|a| bin.in_bss(*a));
            }
            // A call clobbers RAX.
            in_rax = None;
        } else if writes_rax(&insn) {
            in_rax = None;
        }
    }
    None
}

/// Whether `insn` may change RAX: any instruction whose first operand is
/// RAX or a part of it, but those that only read it.
fn writes_rax(insn: &iced_x86::Instruction) -> bool {
    if insn.op_count() == 0 || insn.op0_kind() != OpKind::Register {
        return false;
    }
    let part = matches!(
        insn.op0_register(),
        Register::RAX | Register::EAX | Register::AX | Register::AL | Register::AH
    );
    part && !matches!(
        insn.mnemonic(),
        Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push
    )
}
