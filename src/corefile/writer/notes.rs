//! The `PT_NOTE` contents of a Linux x86-64 core, encoded field by field
//! (little-endian, the kernel's struct layouts), and the `/proc` facts they
//! carry.

use crate::process::{procfs, Regs, Thread};
use crate::tracer::FpState;

use super::maps::Vma;

pub const NT_PRSTATUS: u32 = 1;
pub const NT_PRFPREG: u32 = 2;
pub const NT_PRPSINFO: u32 = 3;
pub const NT_AUXV: u32 = 6;
pub const NT_SIGINFO: u32 = 0x5349_4749;
pub const NT_FILE: u32 = 0x4649_4c45;
pub const NT_X86_XSTATE: u32 = 0x202;
/// The XSAVE layout (owner "LINUX"): where each extended state component
/// sits in the `NT_X86_XSTATE` buffers. AMD and Intel CPUs place them
/// differently (no MPX hole on AMD), so a reader cannot assume Intel's
/// offsets; the kernel (6.12+) writes this note for that reason.
pub const NT_X86_XSAVE_LAYOUT: u32 = 0x205;
/// goat's own note (owner "GOAT"): the clocks at the stop. Tools key notes
/// by owner and type; gdb (BFD) looks at unknown owners' notes by type alone,
/// so the type is one no core note uses ("GOAT" in ASCII): BFD, readelf and
/// Delve skip it.
pub const NT_GOAT_CLOCKS: u32 = 0x5441_4f47;
/// Layout version of the `NT_GOAT_CLOCKS` descriptor.
pub const GOAT_CLOCKS_VERSION: u32 = 1;

/// `sizeof(struct elf_prstatus)` on x86-64.
pub const PRSTATUS_SIZE: usize = 336;
/// `sizeof(struct elf_prpsinfo)` on x86-64.
pub const PRPSINFO_SIZE: usize = 136;
/// `sizeof(siginfo_t)`.
pub const SIGINFO_SIZE: usize = 128;
const PAGE: u64 = 4096;

/// Process-wide facts, read from `/proc/PID` while the target is stopped.
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub uid: u32,
    pub gid: u32,
    /// `/proc/PID/stat` state letter (R, S, D, T, …).
    pub state: u8,
    pub nice: i8,
    pub flags: u64,
    pub comm: String,
    /// `/proc/PID/cmdline` (NUL-separated).
    pub cmdline: Vec<u8>,
    /// `/proc/PID/auxv`.
    pub auxv: Vec<u8>,
    /// `CLOCK_MONOTONIC` and `CLOCK_REALTIME` (ns) at the stop: the "now"
    /// against which goroutines' wait times (the runtime's `nanotime`) are
    /// measured, which a core otherwise lacks.
    pub clocks: Option<(i64, i64)>,
}

fn clock_ns(id: nix::time::ClockId) -> Option<i64> {
    let ts = nix::time::clock_gettime(id).ok()?;
    Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec())
}

/// Per-thread facts for `NT_PRSTATUS`.
#[derive(Debug, Clone, Default)]
pub struct ThreadInfo {
    /// The id goat knows the thread by (for `/proc`).
    pub tid: i32,
    /// The id the core records: the process's own pid namespace's, as the
    /// kernel's cores do, so `m.procid` matches it when read back.
    pub core_tid: i32,
    pub regs: Regs,
    pub sigpend: u64,
    pub sighold: u64,
    /// User and system time, microseconds.
    pub utime_us: u64,
    pub stime_us: u64,
    pub fp: FpState,
}

fn ticks_to_us(ticks: u64) -> u64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks.saturating_mul(1_000_000) / hz
}

impl ProcessInfo {
    /// Reads `/proc/PID/{stat,status,comm,cmdline,auxv}`; what cannot be read
    /// stays zero/empty.
    pub fn read(pid: i32) -> ProcessInfo {
        let stat = procfs::stat(pid);
        let status = procfs::status(pid);
        let num = |f: fn(&procfs::Stat) -> i64| stat.as_ref().map_or(0, f);
        ProcessInfo {
            pid,
            ppid: num(|s| s.ppid.into()) as i32,
            pgrp: num(|s| s.pgrp.into()) as i32,
            sid: num(|s| s.session.into()) as i32,
            uid: status.as_ref().map_or(0, |s| s.ruid),
            gid: status.as_ref().map_or(0, |s| s.rgid),
            state: stat
                .as_ref()
                .and_then(|s| u8::try_from(s.state).ok())
                .unwrap_or(b'R'),
            nice: num(|s| s.nice) as i8,
            flags: num(|s| s.flags.into()) as u64,
            comm: procfs::comm(pid).unwrap_or_default().trim_end().to_string(),
            cmdline: procfs::cmdline_raw(pid).unwrap_or_default(),
            auxv: procfs::auxv_raw(pid).unwrap_or_default(),
            // The clock the live dump measures wait times against.
            clocks: crate::goruntime::monotonic_now(pid)
                .zip(clock_ns(nix::time::ClockId::CLOCK_REALTIME)),
        }
    }
}

impl ThreadInfo {
    /// Registers from the stop, signal masks and times from `/proc`.
    pub fn read(pid: i32, thread: &Thread, fp: FpState) -> ThreadInfo {
        let tid = thread.tid;
        let status = procfs::task_status(pid, tid);
        let stat = procfs::task_stat(pid, tid);
        let ticks = |f: fn(&procfs::Stat) -> u64| ticks_to_us(stat.as_ref().map_or(0, f));
        ThreadInfo {
            tid,
            core_tid: thread.go_tid(),
            regs: thread.regs,
            sigpend: status.as_ref().map_or(0, |s| s.sigpnd),
            sighold: status.as_ref().map_or(0, |s| s.sigblk),
            utime_us: ticks(|s| s.utime),
            stime_us: ticks(|s| s.stime),
            fp,
        }
    }
}

/// Appends one note: header, name (NUL, padded to 4), desc (padded to 4).
pub fn push_note(buf: &mut Vec<u8>, name: &str, ty: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    buf.extend_from_slice(&(namesz as u32).to_le_bytes());
    buf.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    buf.extend_from_slice(&ty.to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    pad4(buf);
    buf.extend_from_slice(desc);
    pad4(buf);
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_timeval(buf: &mut [u8], at: usize, us: u64) {
    put(buf, at, &(us / 1_000_000).to_le_bytes());
    put(buf, at + 8, &(us % 1_000_000).to_le_bytes());
}

/// `struct elf_prstatus` for one thread.
pub fn prstatus(t: &ThreadInfo, p: &ProcessInfo, cursig: i32) -> Vec<u8> {
    let mut b = vec![0u8; PRSTATUS_SIZE];
    put(&mut b, 0, &cursig.to_le_bytes()); // pr_info.si_signo
    put(&mut b, 12, &(cursig as i16).to_le_bytes()); // pr_cursig
    put(&mut b, 16, &t.sigpend.to_le_bytes());
    put(&mut b, 24, &t.sighold.to_le_bytes());
    put(&mut b, 32, &t.core_tid.to_le_bytes());
    put(&mut b, 36, &p.ppid.to_le_bytes());
    put(&mut b, 40, &p.pgrp.to_le_bytes());
    put(&mut b, 44, &p.sid.to_le_bytes());
    put_timeval(&mut b, 48, t.utime_us);
    put_timeval(&mut b, 64, t.stime_us);
    // pr_reg: user_regs_struct, 27 × u64 in the kernel's order.
    let regs: Vec<u8> = t
        .regs
        .to_words()
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    put(&mut b, 112, &regs);
    put(&mut b, 328, &1i32.to_le_bytes()); // pr_fpvalid
    b
}

/// `struct elf_prpsinfo`.
pub fn prpsinfo(p: &ProcessInfo) -> Vec<u8> {
    let mut b = vec![0u8; PRPSINFO_SIZE];
    let state = b"RSDTZW".iter().position(|&c| c == p.state);
    b[0] = state.unwrap_or(0) as u8;
    b[1] = if state.is_some() { p.state } else { b'.' };
    b[2] = u8::from(p.state == b'Z');
    b[3] = p.nice as u8;
    put(&mut b, 8, &p.flags.to_le_bytes());
    put(&mut b, 16, &p.uid.to_le_bytes());
    put(&mut b, 20, &p.gid.to_le_bytes());
    put(&mut b, 24, &p.pid.to_le_bytes());
    put(&mut b, 28, &p.ppid.to_le_bytes());
    put(&mut b, 32, &p.pgrp.to_le_bytes());
    put(&mut b, 36, &p.sid.to_le_bytes());
    let comm = p.comm.as_bytes();
    let n = comm.len().min(15);
    put(&mut b, 40, &comm[..n]);
    // psargs: the command line, arguments separated by spaces, NUL-terminated.
    let args: Vec<u8> = p
        .cmdline
        .strip_suffix(&[0])
        .unwrap_or(&p.cmdline)
        .iter()
        .map(|&c| if c == 0 { b' ' } else { c })
        .take(79)
        .collect();
    put(&mut b, 56, &args);
    b
}

/// `NT_FILE`: every file-backed mapping (start, end, offset in pages), then
/// the names.
pub fn file_note(vmas: &[Vma]) -> Vec<u8> {
    let files: Vec<&Vma> = vmas.iter().filter(|v| v.is_file()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(&(files.len() as u64).to_le_bytes());
    b.extend_from_slice(&PAGE.to_le_bytes());
    for v in &files {
        for w in [v.start, v.end, v.offset / PAGE] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    }
    for v in &files {
        b.extend_from_slice(v.path.as_deref().unwrap_or("").as_bytes());
        b.push(0);
    }
    b
}

/// Where, in the XSAVE buffer ptrace returns, the kernel puts the XCR0 of
/// user space (the first word of the software-reserved bytes; gdb reads it
/// there too).
const XCR0_OFFSET: usize = 464;

/// `NT_X86_XSAVE_LAYOUT`, as the kernel writes it: for each extended
/// component (2 and up) enabled in XCR0, `{u32 type, u32 size, u32 offset,
/// u32 flags}`, size and offset from CPUID leaf 0xD and flags 0 (the
/// kernel's `dump_xsave_layout_desc` writes 0, "reserved", whatever ECX
/// says: CPUs with AMX set its alignment bit there). XCR0 is read from the
/// thread's own XSAVE buffer; the CPUID values are this machine's, which
/// is the target's.
pub fn xsave_layout(xstate: &[u8]) -> Option<Vec<u8>> {
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects.
    #[allow(unused_unsafe)]
    let cpuid = |i| unsafe { std::arch::x86_64::__cpuid_count(0xd, i) };
    xsave_layout_with(xstate, |i| {
        let r = cpuid(i);
        (r.eax, r.ebx)
    })
}

/// [`xsave_layout`] with CPUID leaf 0xD's (size, offset) of component `i`
/// from `size_offset`.
fn xsave_layout_with(xstate: &[u8], size_offset: impl Fn(u32) -> (u32, u32)) -> Option<Vec<u8>> {
    let xcr0 = u64::from_le_bytes(xstate.get(XCR0_OFFSET..XCR0_OFFSET + 8)?.try_into().ok()?);
    // x87 and SSE state are always enabled; anything else is not an XCR0.
    if xcr0 & 3 != 3 {
        return None;
    }
    let mut b = Vec::new();
    for i in 2..63u32 {
        if xcr0 & (1 << i) == 0 {
            continue;
        }
        let (size, offset) = size_offset(i);
        for w in [i, size, offset, 0] {
            b.extend_from_slice(&w.to_le_bytes());
        }
    }
    (!b.is_empty()).then_some(b)
}

/// `NT_GOAT_CLOCKS`: version, 0, monotonic ns, realtime ns (little-endian).
pub fn clocks_note(monotonic: i64, realtime: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&GOAT_CLOCKS_VERSION.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&monotonic.to_le_bytes());
    b.extend_from_slice(&realtime.to_le_bytes());
    b
}

/// Every note, in the kernel's order: for the first thread `PRSTATUS`,
/// `PRPSINFO`, `SIGINFO`, `AUXV`, `FILE`, `FPREGSET`, `X86_XSTATE`; for each
/// other thread `PRSTATUS`, `FPREGSET`, `X86_XSTATE`; then the process's
/// `X86_XSAVE_LAYOUT`, and goat's own.
pub fn build_notes(p: &ProcessInfo, threads: &[ThreadInfo], vmas: &[Vma]) -> Vec<u8> {
    let mut buf = Vec::new();
    // A snapshot, not a crash: no signal caused it.
    let cursig = 0;
    for (i, t) in threads.iter().enumerate() {
        push_note(&mut buf, "CORE", NT_PRSTATUS, &prstatus(t, p, cursig));
        if i == 0 {
            push_note(&mut buf, "CORE", NT_PRPSINFO, &prpsinfo(p));
            let mut si = vec![0u8; SIGINFO_SIZE];
            put(&mut si, 0, &cursig.to_le_bytes());
            push_note(&mut buf, "CORE", NT_SIGINFO, &si);
            push_note(&mut buf, "CORE", NT_AUXV, &p.auxv);
            push_note(&mut buf, "CORE", NT_FILE, &file_note(vmas));
        }
        let fpregs =
            t.fp.fpregs
                .clone()
                .unwrap_or_else(|| vec![0u8; crate::tracer::FPREGS_SIZE]);
        push_note(&mut buf, "CORE", NT_PRFPREG, &fpregs);
        if let Some(x) = &t.fp.xstate {
            push_note(&mut buf, "LINUX", NT_X86_XSTATE, x);
        }
    }
    // Once per process, after every thread's notes, as the kernel does.
    if let Some(layout) = threads
        .iter()
        .find_map(|t| t.fp.xstate.as_deref())
        .and_then(xsave_layout)
    {
        push_note(&mut buf, "LINUX", NT_X86_XSAVE_LAYOUT, &layout);
    }
    if let Some((mono, real)) = p.clocks {
        push_note(&mut buf, "GOAT", NT_GOAT_CLOCKS, &clocks_note(mono, real));
    }
    buf
}

#[cfg(test)]
#[path = "notes_tests.rs"]
mod tests;
