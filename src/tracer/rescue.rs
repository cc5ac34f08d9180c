//! A way back for a thread that runs an injected syscall (`inject.rs`), for
//! the case where the tracer dies while the thread holds borrowed
//! registers.
//!
//! When a tracer dies, the kernel lets its tracees run on exactly as they
//! are: a thread whose `rip`, `rax` and arguments were set for `clone`
//! would run that clone (a copy of the program, untraced, that goes on
//! running the program's code) and then carry on with the wrong registers.
//! Before borrowing a thread, goat therefore writes a way back into the
//! free part of that thread's own stack, below its stack pointer, and
//! borrows it so that running on untraced leads there:
//!
//! - `rip` is a `syscall; ret` sequence already in the target's text, and
//!   `rsp` points at the address of a `mov $15, %eax; syscall` sequence
//!   (`rt_sigreturn`) followed by a signal frame holding the thread's own
//!   registers, signal mask and FPU/AVX state. After the syscall, `ret`
//!   goes to `rt_sigreturn`, which puts every register back as the
//!   kernel does after a signal handler.
//! - a snapshot copy is not cloned by such a thread but by a reaper thread
//!   it makes (`reaper.rs`), which exits, or waits for the copy, however
//!   the tracer dies.
//!
//! While the tracer lives none of this runs: it stops the thread after the
//! syscall and puts the saved registers back itself, leaving only bytes
//! below the stack pointer, which nothing reads. No code is ever written.
//!
//! The frame goes only where the free stack is known: for a Go thread, the
//! bounds of the goroutine (or g0 or signal) stack it runs on, read through
//! the `g` the runtime keeps at `%fs:-8`, which must contain the stack
//! pointer; for a main thread, its `[stack]` mapping. Elsewhere, or when
//! the state cannot be read or would not fit the kernel's checks (a thread
//! that has used AMX tiles, whose room in a signal frame depends on a
//! per-task permission goat cannot read), there is no way back, and the
//! callers choose another thread or a mode that needs no injection.

use std::fs::File;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;

use crate::process::{procfs, read_mappings};

/// What the target's text has to offer, found once per tracer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gadgets {
    /// `syscall; ret` (`0f 05 c3`).
    pub syscall_ret: u64,
    /// `mov $15, %eax` (or `%rax`); `syscall`: `rt_sigreturn`.
    pub sigreturn: u64,
    /// Go's thread exit that loops on itself (`runtime·clone`'s "keep
    /// exiting": `mov $N, %edi; mov $60, %eax; syscall; jmp` back), see
    /// `reaper.rs`; `None` in text without one.
    pub exit_loop: Option<ExitLoop>,
}

/// The thread-exit loop of [`Gadgets::exit_loop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExitLoop {
    /// Its first instruction: a thread that jumps here exits.
    pub start: u64,
    /// Its `syscall`: a thread that runs any syscall here exits after it.
    pub syscall: u64,
}

/// A way back to write: `bytes` at `at`.
pub(super) struct Plan {
    pub bytes: Vec<u8>,
    pub at: u64,
    /// The lowest address of the thread's stack (`stack_floor`).
    pub floor: u64,
    pub way: WayBack,
    pub syscall_ret: u64,
}

/// Where a borrowed thread's registers point when it has a way back.
#[derive(Debug, Clone, Copy)]
pub(super) struct WayBack {
    /// The borrowed `rsp`: the `rt_sigreturn` frame.
    pub rsp: u64,
}

const SYSRET: &[u8] = &[0x0f, 0x05, 0xc3];
const SIGRETURN: [&[u8]; 2] = [
    &[0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05],
    &[0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05],
];
/// `mov $imm32, %edi` (5 bytes, `bf` and any immediate), then this:
/// `mov $60, %eax; syscall; jmp -14` (back to the `mov %edi`).
const EXIT_LOOP_TAIL: &[u8] = &[0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf2];

/// The exit loop in `text` (mapped at `base`), if any.
fn find_exit_loop(text: &[u8], base: u64) -> Option<ExitLoop> {
    let i = text
        .windows(5 + EXIT_LOOP_TAIL.len())
        .position(|w| w[0] == 0xbf && &w[5..] == EXIT_LOOP_TAIL)?;
    let start = base.checked_add(i as u64)?;
    Some(ExitLoop {
        start,
        syscall: start.checked_add(10)?,
    })
}
/// Executable mappings larger than this are not searched (Go's runtime
/// and libc's syscall stubs sit in ordinary-sized text).
const MAX_TEXT: u64 = 512 << 20;

/// Finds the three sequences in the target's executable mappings.
pub(super) fn find_gadgets(pid: i32) -> Option<Gadgets> {
    let mem = procfs::open_mem(pid, false).ok()?;
    let (mut sysret, mut sigret, mut exit_loop) = (None, None, None);
    for m in read_mappings(pid).iter().filter(|m| m.executable) {
        let Some(len) = m.end.checked_sub(m.start).filter(|&l| l <= MAX_TEXT) else {
            continue;
        };
        let mut text = vec![0u8; len as usize];
        if mem.read_exact_at(&mut text, m.start).is_err() {
            continue;
        }
        let at = |pat: &[u8]| {
            text.windows(pat.len())
                .position(|w| w == pat)
                .and_then(|i| m.start.checked_add(i as u64))
        };
        sysret = sysret.or_else(|| at(SYSRET));
        sigret = sigret.or_else(|| SIGRETURN.iter().find_map(|p| at(p)));
        exit_loop = exit_loop.or_else(|| find_exit_loop(&text, m.start));
        if exit_loop.is_some() && sysret.is_some() && sigret.is_some() {
            break;
        }
    }
    Some(Gadgets {
        syscall_ret: sysret?,
        sigreturn: sigret?,
        exit_loop,
    })
}

/// The red zone of the System V ABI, and as much again: bytes below the
/// stack pointer that code may still be using.
const BELOW_SP: u64 = 256;
/// Free stack left below the frame, for a signal delivered to the thread
/// while it runs the way back.
pub(super) const FLOOR_MARGIN: u64 = 512;
/// `struct rt_sigframe`: return address, `ucontext`, `siginfo`.
pub(super) const SIGFRAME: u64 = 8 + UCONTEXT + 128;
/// `struct ucontext`: flags, link, `stack_t`, `sigcontext`, `sigset_t`.
const UCONTEXT: u64 = 8 + 8 + 24 + 256 + 8;
const UC_FP_XSTATE: u64 = 1;
const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
/// An invalid `ss_flags`: `rt_sigreturn` then leaves the thread's
/// alternate signal stack as it is (it ignores the error), which goat
/// cannot read to restore.
const SS_FLAGS_KEEP: u32 = 3;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of the software-reserved bytes of the FXSAVE area: XCR0 in
/// ptrace's copy, `struct _fpx_sw_bytes` in a signal frame.
const SW_RESERVED: usize = 464;
const FXSAVE_AND_HEADER: usize = 512 + 64;
/// AMX tile config and data: their room depends on a per-task permission
/// a signal frame's size check would compare against. On a CPU with AMX
/// the kernel enables them in XCR0 for every task, so ptrace's copy of
/// every thread's state is laid out with room for them.
const XFEATURE_AMX: u64 = (1 << 17) | (1 << 18);
/// Where the XSAVE header's XSTATE_BV (the components in use) sits.
const XSTATE_BV: usize = 512;

const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;
const EINTR: i64 = -4;

/// The registers a signal frame restores: `saved` as the thread would
/// resume with them if it had only been stopped. A thread stopped inside
/// a syscall that the kernel would restart (it returned `-ERESTART*`) is
/// set to run that syscall again, as the kernel does on resume;
/// `rt_sigreturn` itself never restarts anything. A restart through
/// `restart_syscall` cannot be: that one returns `-EINTR` instead, which
/// the callers of such syscalls (timed sleeps and waits) take as an early
/// wake-up.
fn resumed_regs(saved: &libc::user_regs_struct) -> libc::user_regs_struct {
    let mut r = *saved;
    if saved.orig_rax as i64 >= 0 {
        match saved.rax as i64 {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rax = saved.orig_rax;
                r.rip = saved.rip.wrapping_sub(2);
            }
            ERESTART_RESTARTBLOCK => r.rax = EINTR as u64,
            _ => {}
        }
    }
    r
}

/// A signal frame that restores `saved`, laid out below `saved.rsp`.
/// `None` if the FPU state is not one a signal frame can carry.
pub(super) fn build(
    saved: &libc::user_regs_struct,
    xstate: &[u8],
    sigmask: u64,
    g: &Gadgets,
) -> Option<Plan> {
    if xstate.len() < FXSAVE_AND_HEADER || xstate.len() > 64 << 10 {
        return None;
    }
    let xcr0 = u64::from_le_bytes(xstate[SW_RESERVED..SW_RESERVED + 8].try_into().ok()?);
    let in_use = u64::from_le_bytes(xstate[XSTATE_BV..XSTATE_BV + 8].try_into().ok()?);
    let (xstate, xcr0) = without_tiles(xstate, xcr0, in_use, cpuid_size_offset)?;
    let xlen = xstate.len() as u64;
    let top = saved.rsp.checked_sub(BELOW_SP)?;
    let fp = top.checked_sub(xlen + 4)? & !63;
    let frame = fp.checked_sub(SIGFRAME)? & !15;
    let end = fp + xlen + 4;
    let mut buf = vec![0u8; (end - frame) as usize];
    let mut put = |addr: u64, bytes: &[u8]| {
        let at = (addr - frame) as usize;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(
        frame,
        &sigframe(&resumed_regs(saved), sigmask, fp, g.sigreturn),
    );
    // The FPU state as ptrace gave it, with the software bytes a signal
    // frame carries instead of ptrace's XCR0, and the closing magic.
    let mut x = xstate.to_vec();
    let mut sw = [0u8; 48];
    sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    sw[4..8].copy_from_slice(&((xlen + 4) as u32).to_le_bytes());
    sw[8..16].copy_from_slice(&xcr0.to_le_bytes());
    sw[16..20].copy_from_slice(&(xlen as u32).to_le_bytes());
    x[SW_RESERVED..SW_RESERVED + 48].copy_from_slice(&sw);
    put(fp, &x);
    put(fp + xlen, &FP_XSTATE_MAGIC2.to_le_bytes());
    let way = WayBack { rsp: frame };
    Some(Plan {
        bytes: buf,
        at: frame,
        floor: 0,
        way,
        syscall_ret: g.syscall_ret,
    })
}

/// A frame that runs `close(fd)` on the way back of `plan` (see
/// `inject.rs`'s `ThenClose`), below it: its address, which the borrowed
/// thread's stack pointer is set to, and its bytes. `None` if it does not
/// fit above the stack's floor.
pub(super) fn close_frame(
    plan: &Plan,
    saved: &libc::user_regs_struct,
    fd: u64,
    sigreturn: u64,
) -> Option<(u64, Vec<u8>)> {
    let at = plan.at.checked_sub(SIGFRAME + 16)? & !15;
    if !fits(at, plan.floor) {
        return None;
    }
    // SAFETY: user_regs_struct is plain integers; all-zero is valid.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    r.rip = plan.syscall_ret;
    r.rax = SYS_CLOSE;
    r.rdi = fd;
    // Its `ret` pops the way back's own `pretcode`.
    r.rsp = plan.way.rsp;
    r.eflags = 0x202;
    r.cs = saved.cs;
    r.ss = saved.ss;
    Some((at, sigframe(&r, u64::MAX, 0, sigreturn).to_vec()))
}

/// Where, in a [`close_frame`] at `at`, the descriptor to close is.
pub(super) fn close_frame_fd_word(at: u64) -> u64 {
    // pretcode, then the ucontext's sigcontext, whose ninth word is rdi.
    at + 8 + crate::process::regs::UCONTEXT_SIGCONTEXT + 8 * 8
}

pub(super) const SYS_CLOSE: u64 = 3;

/// CPUID leaf 0xD's (size, offset) of XSAVE component `i` on this CPU, the
/// target's.
fn cpuid_size_offset(i: u32) -> (u32, u32) {
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects.
    #[allow(unused_unsafe)]
    let r = unsafe { std::arch::x86_64::__cpuid_count(0xd, i) };
    (r.eax, r.ebx)
}

/// The XSAVE state a signal frame carries, and the features it names:
/// where XCR0 enables AMX tiles that the thread does not use, the state
/// ends with the last other component and the tiles are left out, as the
/// kernel lays out the frame of a task without tile permission (a larger
/// `xstate_size` than that task's fails `rt_sigreturn`'s check). `None`
/// for a thread whose tiles are in use.
fn without_tiles(
    xstate: &[u8],
    xcr0: u64,
    in_use: u64,
    size_offset: impl Fn(u32) -> (u32, u32),
) -> Option<(&[u8], u64)> {
    if xcr0 & XFEATURE_AMX == 0 {
        return Some((xstate, xcr0));
    }
    if in_use & XFEATURE_AMX != 0 {
        return None;
    }
    let features = xcr0 & !XFEATURE_AMX;
    let end = (2..63u32)
        .filter(|i| features & (1 << i) != 0)
        .map(|i| {
            let (size, offset) = size_offset(i);
            u64::from(offset) + u64::from(size)
        })
        .max()
        .unwrap_or(FXSAVE_AND_HEADER as u64)
        .max(FXSAVE_AND_HEADER as u64);
    let end = usize::try_from(end).ok()?;
    Some((xstate.get(..end)?, features))
}

/// An `rt_sigframe` up to its `siginfo`: the `pretcode` a `ret` pops
/// (`rt_sigreturn`), then a `ucontext` whose registers are `r`, whose
/// signal mask is `sigmask` and whose FPU state is at `fp` (0: none, and
/// `rt_sigreturn` then resets the FPU state). `rt_sigreturn` finds it at
/// the stack pointer less 8, once the `ret` has popped `pretcode`.
pub(super) fn sigframe(
    r: &libc::user_regs_struct,
    sigmask: u64,
    fp: u64,
    pretcode: u64,
) -> [u8; SIGFRAME as usize] {
    let mut buf = [0u8; SIGFRAME as usize];
    let mut put = |at: u64, bytes: &[u8]| {
        let at = at as usize;
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(0, &pretcode.to_le_bytes());
    let uc = 8;
    let mut flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    if fp != 0 {
        flags |= UC_FP_XSTATE;
    }
    put(uc, &flags.to_le_bytes());
    // uc_stack: ss_sp, ss_flags, ss_size.
    put(uc + 16 + 8, &SS_FLAGS_KEEP.to_le_bytes());
    let sc = uc + crate::process::regs::UCONTEXT_SIGCONTEXT;
    let gprs = crate::process::Regs::from_user_regs(r).sigcontext_gprs();
    for (i, v) in gprs.iter().enumerate() {
        put(sc + 8 * i as u64, &v.to_le_bytes());
    }
    // cs, gs, fs, ss (16 bits each), then err, trapno, oldmask, cr2.
    put(sc + 144, &(r.cs as u16).to_le_bytes());
    put(sc + 150, &(r.ss as u16).to_le_bytes());
    put(sc + 184, &fp.to_le_bytes());
    put(uc + 296, &sigmask.to_le_bytes());
    buf
}

/// The lowest address of the stack thread `tid` runs on, if known, and
/// mapped: m0's g0 stack, say, is 64 KiB of the main thread's `[stack]`
/// by the runtime's count, of which the kernel has mapped only what the
/// thread has touched so far (and a write through `/proc/PID/mem` does
/// not grow it).
pub(super) fn stack_floor(
    pid: i32,
    tid: i32,
    regs: &libc::user_regs_struct,
    mem: &File,
) -> Option<u64> {
    let floor = go_stack_floor(regs, mem).or_else(|| main_stack_floor(pid, tid, regs.rsp))?;
    let mapped = read_mappings(pid)
        .into_iter()
        .find(|m| (m.start..m.end).contains(&regs.rsp))?;
    Some(floor.max(mapped.start))
}

/// Through the `g` Go keeps at `%fs:-8` (internally linked binaries): its
/// first two words are the bounds of the stack it runs on.
fn go_stack_floor(regs: &libc::user_regs_struct, mem: &File) -> Option<u64> {
    let word = |addr: u64| {
        let mut b = [0u8; 8];
        mem.read_exact_at(&mut b, addr).ok()?;
        Some(u64::from_le_bytes(b))
    };
    let g = word(regs.fs_base.checked_sub(8)?)?;
    let lo = word(g)?;
    let hi = word(g.checked_add(8)?)?;
    let plausible = lo < hi && hi - lo <= 1 << 30 && (lo..=hi).contains(&regs.rsp);
    plausible.then_some(lo)
}

/// A main thread's `[stack]` mapping (C programs; Go's m0 on its g0).
fn main_stack_floor(pid: i32, tid: i32, rsp: u64) -> Option<u64> {
    if pid != tid {
        return None;
    }
    read_mappings(pid)
        .iter()
        .find(|m| m.path.as_deref() == Some("[stack]") && (m.start..m.end).contains(&rsp))
        .map(|m| m.start)
}

/// Whether a frame laid out by [`build`] at `start` leaves the margin
/// above the stack's floor.
pub(super) fn fits(start: u64, floor: u64) -> bool {
    floor
        .checked_add(FLOOR_MARGIN)
        .is_some_and(|min| start >= min)
}

/// The signals thread `tid` blocks (`SigBlk` of its status).
pub(super) fn blocked_signals(pid: i32, tid: i32) -> Option<u64> {
    procfs::task_status(pid, tid).map(|s| s.sigblk)
}

/// Writes the frame into the target (through `/proc/PID/mem`).
pub(super) fn write(mem: &File, at: u64, bytes: &[u8]) -> Result<(), Errno> {
    mem.write_all_at(bytes, at)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> libc::user_regs_struct {
        // SAFETY: user_regs_struct is plain integers; all-zero is valid.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        r.rsp = 0x7fff_0000_1000;
        r.rip = 0x40_1000;
        r.rax = 7;
        r.orig_rax = u64::MAX;
        r.cs = 0x33;
        r.ss = 0x2b;
        r.eflags = 0x246;
        r
    }

    fn xstate(len: usize, xcr0: u64) -> Vec<u8> {
        let mut x = vec![0xaa; len];
        x[SW_RESERVED..SW_RESERVED + 8].copy_from_slice(&xcr0.to_le_bytes());
        x
    }

    const G: Gadgets = Gadgets {
        syscall_ret: 0x1000,
        sigreturn: 0x2000,
        exit_loop: None,
    };

    #[test]
    fn finds_go_s_thread_exit_loop() {
        // runtime·clone's end in go1.19 and go1.27: call r12, then the loop.
        let text = [
            0x41, 0xff, 0xd4, 0xbf, 0x6f, 0, 0, 0, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf2,
        ];
        let l = find_exit_loop(&text, 0x40_0000).unwrap();
        assert_eq!((l.start, l.syscall), (0x40_0003, 0x40_000d));
        assert_eq!(&text[13..15], &[0x0f, 0x05]);
        // runtime·exitThread's exit is followed by int3, not a loop.
        let thread_exit = [
            0xbf, 0, 0, 0, 0, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05, 0xcd, 0x03,
        ];
        assert_eq!(find_exit_loop(&thread_exit, 0), None);
        assert_eq!(find_exit_loop(&text[..16], 0), None);
    }

    fn u64_at(buf: &[u8], start: u64, addr: u64) -> u64 {
        let i = (addr - start) as usize;
        u64::from_le_bytes(buf[i..i + 8].try_into().unwrap())
    }

    #[test]
    fn a_frame_restores_the_registers_below_the_stack_pointer() {
        let r = regs();
        let Plan {
            bytes: buf,
            at: start,
            way,
            ..
        } = build(&r, &xstate(2432, 0x2e7), 0x1234, &G).unwrap();
        let end = start + buf.len() as u64;
        assert!(
            end <= r.rsp - BELOW_SP,
            "the frame stays below the red zone"
        );
        assert_eq!(u64_at(&buf, start, way.rsp), G.sigreturn);
        let sc = way.rsp + 48;
        assert_eq!(u64_at(&buf, start, sc + 13 * 8), 7, "rax");
        assert_eq!(u64_at(&buf, start, sc + 15 * 8), r.rsp);
        assert_eq!(u64_at(&buf, start, sc + 16 * 8), r.rip);
        let fp = u64_at(&buf, start, sc + 184);
        assert_eq!(fp % 64, 0, "XRSTOR needs 64-byte alignment");
        let i = (fp - start) as usize;
        assert_eq!(&buf[i + 464..i + 468], &FP_XSTATE_MAGIC1.to_le_bytes());
        assert_eq!(&buf[i + 2432..i + 2436], &FP_XSTATE_MAGIC2.to_le_bytes());
        assert_eq!(u64_at(&buf, start, way.rsp + 8 + 296), 0x1234, "mask");
    }

    #[test]
    fn a_close_on_the_way_back_runs_then_returns_into_it() {
        let r = regs();
        let plan = Plan {
            floor: 0x7ffe_ffff_0000,
            ..build(&r, &xstate(2432, 0x2e7), 0, &G).unwrap()
        };
        let (at, bytes) = close_frame(&plan, &r, 7, G.sigreturn).unwrap();
        assert!(at + bytes.len() as u64 <= plan.at, "below the way back");
        assert_eq!(at % 16, 0);
        let word = |addr: u64| u64_at(&bytes, at, addr);
        assert_eq!(word(at), G.sigreturn, "pretcode");
        assert_eq!(word(close_frame_fd_word(at)), 7, "rdi");
        let sc = at + 8 + crate::process::regs::UCONTEXT_SIGCONTEXT;
        assert_eq!(word(sc + 13 * 8), SYS_CLOSE, "rax");
        assert_eq!(
            word(sc + 15 * 8),
            plan.way.rsp,
            "rsp: the way back's pretcode"
        );
        assert_eq!(word(sc + 16 * 8), plan.syscall_ret, "rip");
        assert_eq!(word(sc + 184), 0, "no FPU state: the way back has it");
        // No room above the floor.
        let cramped = Plan {
            floor: plan.at - 600,
            ..build(&r, &xstate(2432, 0x2e7), 0, &G).unwrap()
        };
        assert!(close_frame(&cramped, &r, 7, G.sigreturn).is_none());
    }

    #[test]
    fn an_interrupted_syscall_is_run_again() {
        let mut r = regs();
        r.orig_rax = 202; // futex
        r.rax = ERESTARTSYS as u64;
        let back = resumed_regs(&r);
        assert_eq!((back.rax, back.rip), (202, r.rip - 2));
        r.rax = ERESTART_RESTARTBLOCK as u64;
        let back = resumed_regs(&r);
        assert_eq!((back.rax as i64, back.rip), (EINTR, r.rip));
        // Finished, or not in a syscall: as it is.
        r.rax = 0;
        assert_eq!(resumed_regs(&r).rax, 0);
        r.orig_rax = u64::MAX;
        r.rax = ERESTARTSYS as u64;
        assert_eq!(resumed_regs(&r).rip, r.rip);
    }

    /// A CPU with AVX-512 and AMX: XCR0 0x602e7, ptrace's buffer 11008
    /// bytes, PKRU (9) the last component before the tiles, at 2688.
    fn amx_size_offset(i: u32) -> (u32, u32) {
        match i {
            9 => (8, 2688),
            17 => (64, 2752),
            18 => (8192, 2816),
            _ => (64, 576 + 64 * i),
        }
    }

    #[test]
    fn tiles_not_in_use_are_left_out_of_the_frame() {
        let amx = 0x2e7 | XFEATURE_AMX;
        let x = xstate(11008, amx);
        let (kept, features) = without_tiles(&x, amx, 0x2e7, amx_size_offset).unwrap();
        assert_eq!((kept.len(), features), (2696, 0x2e7));
        // A thread using its tiles keeps no way back.
        assert!(without_tiles(&x, amx, amx, amx_size_offset).is_none());
        // No AMX: as it is.
        let (kept, features) = without_tiles(&x, 0x2e7, 0x2e7, amx_size_offset).unwrap();
        assert_eq!((kept.len(), features), (11008, 0x2e7));
        // A buffer shorter than its own layout says is refused, not cut.
        assert!(without_tiles(&x[..1000], amx, 0x7, amx_size_offset).is_none());
    }

    #[test]
    fn a_frame_on_an_amx_cpu_names_no_tiles() {
        let mut x = xstate(11008, 0x2e7 | XFEATURE_AMX);
        x[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0x7u64.to_le_bytes());
        let p = build(&regs(), &x, 0, &G).expect("a way back");
        let sc = p.way.rsp + 48;
        let fp = u64_at(&p.bytes, p.at, sc + 184);
        let i = (fp - p.at) as usize;
        let sw =
            |k: usize| u32::from_le_bytes(p.bytes[i + 464 + k..i + 468 + k].try_into().unwrap());
        let len = sw(16) as usize;
        assert!(len < 11008, "the tiles' 8 KiB are left out: {len}");
        assert_eq!(sw(4) as usize, len + 4, "extended size");
        assert_eq!(u64::from(sw(8)) | (u64::from(sw(12)) << 32), 0x2e7);
        assert_eq!(
            &p.bytes[i + len..i + len + 4],
            &FP_XSTATE_MAGIC2.to_le_bytes()
        );
    }

    #[test]
    fn no_frame_for_tile_state_or_a_stack_pointer_near_zero() {
        let mut tiles = xstate(2432, 0x2e7 | (1 << 18));
        tiles[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&(0x7u64 | (1 << 18)).to_le_bytes());
        assert!(build(&regs(), &tiles, 0, &G).is_none());
        assert!(build(&regs(), &xstate(2432, 0x7)[..500], 0, &G).is_none());
        let mut r = regs();
        r.rsp = 1000;
        assert!(build(&r, &xstate(2432, 0x7), 0, &G).is_none());
    }
}
