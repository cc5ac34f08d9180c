//! A thread caught inside a signal handler (Go's `sigtramp`, on the M's
//! signal stack) says nothing about where its goroutine was: the goroutine's
//! own registers are in the `ucontext` the kernel pushed for the handler.
//! Async preemption (SIGURG) and profiling signals make this common for a
//! spinning goroutine, whose `g.sched` is empty while it runs.

use crate::binary::Pclntab;
use crate::process::regs::{SIGCONTEXT_RIP_WORD, SIGCONTEXT_RSP_WORD, UCONTEXT_SIGCONTEXT};
use crate::process::{Memory, MemoryExt, Regs};

use super::unwind::{unwind, StartRegs, UnwindCache};

/// Offsets in the x86-64 `struct ucontext` (see `process::regs`).
const UC_RSP: u64 = UCONTEXT_SIGCONTEXT + SIGCONTEXT_RSP_WORD * 8;
const UC_RIP: u64 = UCONTEXT_SIGCONTEXT + SIGCONTEXT_RIP_WORD * 8;

/// The Go functions the kernel enters a signal handler through.
fn is_signal_trampoline(name: &str) -> bool {
    matches!(name, "runtime.sigtramp" | "runtime.cgoSigtramp")
}

/// Where the thread was when the signal it is handling arrived: the `pc`
/// and `sp` saved in the signal frame above Go's `sigtramp`, if the thread
/// is in one. `mem` must hold the signal stack from `regs.rsp` up.
pub fn interrupted_at(
    mem: &dyn Memory,
    tab: &Pclntab,
    bias: u64,
    regs: &Regs,
) -> Option<(u64, u64)> {
    let start = StartRegs {
        pc: regs.rip,
        sp: regs.rsp,
        trap: true,
        syscall: false,
    };
    let unwound = unwind(mem, tab, bias, start, &mut UnwindCache::default());
    let tramp = unwound.frames.iter().find(|f| {
        tab.find_func(f.sym_pc(bias))
            .and_then(|f| f.name().ok())
            .is_some_and(is_signal_trampoline)
    })?;
    // The kernel calls the handler with the frame's return address (the
    // restorer) at sp: the ucontext starts right above, at the caller's SP.
    let uc = tramp.fp;
    let pc = mem.read_u64(uc.checked_add(UC_RIP)?).ok()?;
    let sp = mem.read_u64(uc.checked_add(UC_RSP)?).ok()?;
    Some((pc, sp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::Binary;
    use crate::process::CapturedMemory;

    #[test]
    fn reads_the_interrupted_registers_above_sigtramp() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut tried = 0;
        for ver in ["1.19", "1.27"] {
            let path = root.join(format!("tests/fixtures/bin/go{ver}-exe/states"));
            if !crate::require::require_fixture(&path) {
                continue;
            }
            let bin = Binary::open(&path).expect("the states fixture opens");
            tried += 1;
            let tab = bin.pclntab().expect("pclntab");
            let tramp = tab.func_by_name("runtime.sigtramp").expect("sigtramp");
            let user = tab.func_by_name("main.lockMutex").expect("main.lockMutex");
            // Signal stack: the restorer address, then the ucontext.
            let (sig_sp, user_sp) = (0x7000_0000u64, 0x6000_0000u64);
            let mut mem = CapturedMemory::new();
            let mut frame = vec![0u8; 8 + 512];
            frame[8 + UC_RSP as usize..][..8].copy_from_slice(&user_sp.to_le_bytes());
            frame[8 + UC_RIP as usize..][..8].copy_from_slice(&(user.entry() + 3).to_le_bytes());
            mem.insert(sig_sp, &frame);
            let regs = Regs {
                rip: tramp.entry(),
                rsp: sig_sp,
                ..Regs::default()
            };
            assert_eq!(
                interrupted_at(&mem, tab, 0, &regs),
                Some((user.entry() + 3, user_sp)),
                "go{ver}"
            );
            // Not in a handler: nothing to read.
            let elsewhere = Regs {
                rip: user.entry(),
                rsp: user_sp,
                ..Regs::default()
            };
            mem.insert(user_sp, &[0u8; 8]);
            assert_eq!(interrupted_at(&mem, tab, 0, &elsewhere), None, "go{ver}");
        }
        assert!(tried > 0, "no fixture binaries; run scripts/build-fixtures");
    }
}
