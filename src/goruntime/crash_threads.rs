//! The thread stacks a `GOTRACEBACK=crash` dump prints besides the
//! goroutines: `goroutine 0 gp=.. m=N mp=.. [idle]:`, one per M that the
//! crash's SIGQUIT caught on its system stack (`g0`).
//!
//! How the runtime prints them (`sighandler` in signal_unix.go, the same
//! from go1.19 to go1.27): when it crashes, every M in turn takes a SIGQUIT
//! (`crashing` counts them) and prints the goroutine the signal
//! interrupted, `goroutineheader(gp)` and `tracebacktrap(sigpc, sigsp)`.
//! An M that was running a goroutine prints that goroutine again, which
//! the list of every goroutine already holds; an M in the scheduler, or
//! idle in `notesleep`, was on its `g0`, whose id is 0 and status idle.
//! Such a thread is still inside the handler when the kernel writes the
//! core (it sleeps there until the crash ends the process), and the
//! interrupted registers are in the signal frame above `sigtramp`
//! (`signal_frame.rs`): the same start the runtime's `tracebacktrap` had.

use super::collect::Capture;
use super::decode::{Caches, Decoder};
use super::decoded::GoroutineView;
use super::model::{Goroutine, MachineRef};
use super::signal_frame::interrupted_at;
use super::unwind::StartRegs;
use crate::process::{Memory, MemoryExt, Regs};

/// Signal handlers one inside another that are looked through: the crash
/// nests two (SIGQUIT, then SIGABRT); the bound is for hostile stacks.
const MAX_NESTED_SIGNALS: usize = 4;

/// More Ms than any program has (the runtime's own limit is 10000 by
/// default): bounds the walk of `allm`, whatever the core holds.
const MAX_MS: usize = 100_000;

impl Decoder<'_> {
    /// The `goroutine 0 [idle]` stacks of a core the runtime wrote as it
    /// crashed (its `crashing` count is not 0), in `allm` order; none for
    /// any other core or process, or where what they need cannot be read
    /// (a binary without symbols, a damaged `allm`).
    pub fn crash_g0s(&self, cap: &Capture, mem: &dyn Memory) -> Vec<Goroutine> {
        let global = |name: &str| self.bin.symbol(name)?.checked_add(self.bias);
        let crashing = global("runtime.crashing").and_then(|a| mem.read_u32(a).ok());
        if crashing.is_none_or(|c| c == 0) {
            return Vec::new();
        }
        let Some(mut m) = global("runtime.allm").and_then(|a| mem.read_u64(a).ok()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut cache = Caches::default();
        let mut seen = 0;
        while m != 0 && seen < MAX_MS {
            seen += 1;
            if let Some(g) = self.g0_block(cap, mem, m, &mut cache) {
                out.push(g);
            }
            let next = m.checked_add(self.layout.m.alllink);
            m = next.and_then(|a| mem.read_u64(a).ok()).unwrap_or(0);
        }
        out
    }

    /// M `m`'s `goroutine 0` block, if its thread was interrupted on its
    /// `g0` stack.
    fn g0_block(
        &self,
        cap: &Capture,
        mem: &dyn Memory,
        m: u64,
        cache: &mut Caches,
    ) -> Option<Goroutine> {
        let o = &self.layout.m;
        let field = |off: u64| mem.read_u64(m.checked_add(off)?).ok();
        let procid = field(o.procid)?;
        let thread = cap
            .threads
            .iter()
            .find(|t| u64::try_from(t.go_tid()).ok() == Some(procid))?;
        let g0 = self.read_g(mem, field(o.g0)?)?;
        let (lo, hi) = g0.stack;
        // The thread that ends the crash is in a second handler (SIGABRT,
        // raised from inside the first): the frame that interrupted the
        // g0 is the outer one.
        let mut at = interrupted_at(mem, self.tab, self.bias, &thread.regs)?;
        for _ in 0..MAX_NESTED_SIGNALS {
            if (lo..hi).contains(&at.1) {
                break;
            }
            let regs = Regs {
                rip: at.0,
                rsp: at.1,
                ..thread.regs
            };
            match interrupted_at(mem, self.tab, self.bias, &regs) {
                Some(outer) => at = outer,
                None => break,
            }
        }
        let (pc, sp) = at;
        if !(lo..hi).contains(&sp) {
            // Interrupted on a goroutine's stack: that goroutine is listed.
            return None;
        }
        cache.frames.clear();
        let start = StartRegs {
            pc,
            sp,
            trap: true,
            syscall: false,
        };
        let (elided, unreadable) = self.unwind_into(mem, start, hi, cache);
        let header = Goroutine {
            id: g0.goid,
            gp: g0.addr,
            status_code: g0.status,
            scan: false,
            status: self.version.status_name(g0.status).to_string(),
            wait_reason: None,
            wait_minutes: None,
            locked: false,
            m: Some(MachineRef {
                id: field(o.id)? as i64,
                mp: m,
                tid: i64::from(thread.tid),
            }),
            synctest_group: None,
            frames: Vec::new(),
            elided,
            created_by: None,
            unreadable,
        };
        let view = GoroutineView {
            header: &header,
            frames: Some(&cache.frames),
            walk: None,
        };
        Some(view.to_goroutine())
    }
}
