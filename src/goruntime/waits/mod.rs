//! What each blocked goroutine waits on, and who could release it: the
//! library half of `goat why`. Read from the runtime's own records of a
//! stopped process or a core: a goroutine's `g.waiting` sudogs (channels,
//! selects; from 1.26 semaphores and `sync.Cond` too), the sudog a
//! semaphore wait keeps on its stack (older releases), the `pollDesc`
//! whose `rg`/`wg` holds the goroutine (network waits), `g.timer`
//! (sleeps), and the thread's registers (system calls).
//!
//! Every object a goroutine is said to wait on is checked against the
//! runtime's own back-pointer to that goroutine (`sudog.g`, `pollDesc.rg`,
//! a `notifyList`'s queue): a word that merely looks like a pointer never
//! names one. What cannot be read or checked is [`WaitsOn::Unreadable`],
//! with the reason.

mod chans;
mod io;
mod layout;
mod names;
mod stack;
mod sync;
mod syscalls;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use thiserror::Error;

use super::version::{G_LEAKED, G_SYSCALL, G_WAITING};
use super::{GoProgram, Goroutine, GoroutineBrief, LayoutOrigin, PcHasher, RuntimeLayout};
use crate::process::{Memory, MemoryExt, Thread};

pub use crate::process::procfs::{FdInfo, ProcFds, SocketAddrs};
pub use layout::WaitsLayout;
pub use names::name_of;
pub use sync::kind_from_frames as sync_kind_from_frames;

/// Why waits cannot be read at all.
#[derive(Debug, Error)]
pub enum WaitsError {
    #[error("the executable has no DWARF and goat has no table of go1.{minor}'s sudog, hchan and pollDesc offsets: rebuild without -ldflags=-w")]
    NoTable { minor: u32 },
    #[error("the executable's DWARF lacks {0}")]
    Missing(&'static str),
    #[error("the runtime layout from goat's table was not checked against the target")]
    Unchecked,
}

/// What every goroutine waits on, and the objects they wait on.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    pub by_goroutine: BTreeMap<u64, WaitsOn>,
    /// By `hchan` address.
    pub chans: BTreeMap<u64, ChanState>,
    /// By sync object address (a `sync.Mutex`, the `RWMutex`, ...).
    pub syncs: BTreeMap<u64, SyncState>,
    /// Addresses of the words Go's leak rule (1.26+) never follows while
    /// marking: each chan-waiting goroutine's `sudog.c` and each
    /// sync-waiting one's `sudog.elem` (`setSyncObjectsUntraceable`).
    /// The same words on every release (plain pointers before 1.26), so
    /// that the rule can be applied from outside to any of them.
    pub untraceable_slots: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChanOp {
    Send,
    Recv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncKind {
    Mutex,
    RWMutexRead,
    RWMutexWrite,
    WaitGroup,
    Cond,
    /// A runtime semaphore goat cannot place in a sync type.
    Semaphore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoMode {
    Read,
    Write,
}

/// Network I/O a goroutine waits for ([`WaitsOn::Io`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IoWait {
    pub fd: Option<i32>,
    pub mode: IoMode,
    /// The descriptor's deadline for this mode (the target's monotonic
    /// nanoseconds; -1: already expired); `None`: none set.
    pub deadline_ns: Option<i64>,
    pub local: Option<String>,
    pub peer: Option<String>,
}

/// What one goroutine waits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WaitsOn {
    /// Running, runnable, or otherwise not parked.
    NotBlocked,
    /// `chan`: the `hchan` address, 0 for a nil channel.
    Chan {
        chan: u64,
        op: ChanOp,
    },
    /// The select's cases; empty for `select {}`.
    Select {
        cases: Vec<(u64, ChanOp)>,
    },
    /// `object`: the sync value (`&mu`); `sema`: the runtime semaphore
    /// (or, for a `Cond`, the `notifyList`) the goroutine is queued on.
    Sync {
        object: u64,
        sema: u64,
        kind: SyncKind,
    },
    /// Boxed: the largest variant by far, and a million goroutines each
    /// hold a `WaitsOn` (80 bytes each unboxed, 48 boxed).
    Io(Box<IoWait>),
    /// `until_ns`: when its timer fires, on the target's monotonic clock.
    Sleep {
        until_ns: Option<i64>,
    },
    /// In a system call: its number (`orig_rax` of the thread), name, and
    /// the descriptor it was given, for calls whose first argument is one.
    Syscall {
        nr: Option<u64>,
        name: Option<&'static str>,
        fd: Option<i32>,
    },
    /// Parked by the runtime for its own work (GC workers, finalizers, ...).
    Runtime {
        reason: String,
    },
    Unreadable {
        why: String,
    },
}

/// A channel some goroutine waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChanState {
    pub addr: u64,
    /// The element type as Go names it (`int`, `*main.job`), when the
    /// runtime's type descriptor can be read.
    pub elem_type: Option<String>,
    pub len: u64,
    pub cap: u64,
    pub closed: bool,
    /// Goroutine ids queued to receive, then to send, in queue order.
    pub recv_waiters: Vec<u64>,
    pub send_waiters: Vec<u64>,
    /// The package variable holding this channel (`main.jobs`), when one
    /// does and the binary has symbols.
    pub name: Option<String>,
    /// Why the header or a queue could not be read whole.
    pub unreadable: Option<String>,
}

/// A sync object some goroutine waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub object: u64,
    /// What the first waiter found waits on it; for an `RWMutex`,
    /// `RWMutexWrite` when a writer waits.
    pub kind: SyncKind,
    /// `main.state.mu`: the package variable and field path, when the
    /// object is one.
    pub name: Option<String>,
    /// Goroutine ids waiting on it, ascending.
    pub waiters: Vec<u64>,
    /// The package variable pointing at it (`main.ready` for a `*Cond`),
    /// when one does and the binary has symbols.
    pub held_by: Option<String>,
    /// `Mutex` (and an `RWMutex`'s writer lock): the locked bit.
    pub locked: Option<bool>,
    /// `RWMutex`: readers holding it; `WaitGroup`: its counter.
    pub counter: Option<i64>,
    /// `RWMutex`: the id of the writer waiting for readers to leave.
    pub writer_waiting: Option<u64>,
}

/// The layout `read_waits` uses for `prog`: DWARF first, else the table
/// row of the release [`GoProgram::settle_layout`] found.
pub fn layout_for(prog: &GoProgram) -> Result<WaitsLayout, WaitsError> {
    if let Some(d) = prog.dwarf_types() {
        return WaitsLayout::from_dwarf(d).map_err(WaitsError::Missing);
    }
    let release = match prog.layout_origin() {
        LayoutOrigin::Table { fits: Some(v), .. } => *v,
        LayoutOrigin::Table { fits: None, .. } => return Err(WaitsError::Unchecked),
        LayoutOrigin::Dwarf => prog.version(),
    };
    WaitsLayout::from_table(release).ok_or(WaitsError::NoTable {
        minor: release.minor,
    })
}

/// What each of `goroutines` waits on, read from `mem` (a stopped process
/// at load bias `bias`, or a core). `threads` (may be empty) give system
/// calls their numbers; `fds` (a live process's descriptors) name
/// sockets. Never fails: a layout goat does not know makes every blocked
/// goroutine [`WaitsOn::Unreadable`], saying why.
pub fn read_waits(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    goroutines: &[Goroutine],
    threads: &[Thread],
    fds: Option<&dyn FdInfo>,
) -> Waits {
    let briefs: Vec<GoroutineBrief> = goroutines.iter().map(GoroutineBrief::of).collect();
    read_waits_of(prog, mem, bias, &briefs, threads, fds)
}

/// [`read_waits`] of goroutines as `goat why` keeps them.
pub fn read_waits_of(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    goroutines: &[GoroutineBrief],
    threads: &[Thread],
    fds: Option<&dyn FdInfo>,
) -> Waits {
    read_waits_shared(prog, mem, None, bias, goroutines, threads, fds)
}

/// Below this many goroutines a second thread costs more than it saves.
const PARALLEL_MIN: usize = 8192;

/// [`read_waits_of`]; `shared`: `mem` again, when it can be read from
/// several threads at once (a core), and then what each goroutine waits
/// on is read on as many (a million goroutines' sudogs, channels and
/// timers are seconds of small reads).
pub fn read_waits_shared(
    prog: &GoProgram,
    mem: &dyn Memory,
    shared: Option<&(dyn Memory + Sync)>,
    bias: u64,
    goroutines: &[GoroutineBrief],
    threads: &[Thread],
    fds: Option<&dyn FdInfo>,
) -> Waits {
    let layout = layout_for(prog);
    let mut waits = Waits::default();
    let w = match &layout {
        Ok(w) => *w,
        Err(e) => {
            for g in goroutines {
                let on = match is_blocked(g) {
                    true => WaitsOn::Unreadable { why: e.to_string() },
                    false => WaitsOn::NotBlocked,
                };
                waits.by_goroutine.insert(g.id, on);
            }
            return waits;
        }
    };
    let goids: Goids = goroutines.iter().map(|g| (g.gp, g.id)).collect();
    let ctx = Ctx::new(mem, prog.layout(), w, &goids);
    let threads_n = crate::ordered::threads_for(goroutines.len(), PARALLEL_MIN);
    let read = match shared.filter(|_| threads_n > 1) {
        Some(shared) => crate::ordered::fill_in_parts(goroutines, threads_n, |part, slots| {
            let ctx = Ctx::new(shared, prog.layout(), w, &goids);
            for (g, slot) in part.iter().zip(slots) {
                *slot = Some(ctx.read_one(g, threads, fds));
            }
        }),
        None => goroutines
            .iter()
            .map(|g| ctx.read_one(g, threads, fds))
            .collect(),
    };
    let mut slots = Vec::new();
    for (id, on, mut own) in read {
        waits.by_goroutine.insert(id, on);
        slots.append(&mut own);
    }
    // Each channel's state, on as many threads as the goroutines' waits.
    let types = prog.binary().pclntab().ok().and_then(|p| p.types());
    let parts = chans::waited_parts(&waits, threads_n);
    let states = match shared.filter(|_| threads_n > 1) {
        Some(shared) => crate::ordered::fill_in_parts(&parts, parts.len(), |mine, slots| {
            let ctx = Ctx::new(shared, prog.layout(), w, &goids);
            for (part, slot) in mine.iter().zip(slots) {
                *slot = Some(chans::states(&ctx, part, types, bias));
            }
        }),
        None => parts
            .iter()
            .map(|part| chans::states(&ctx, part, types, bias))
            .collect(),
    };
    for s in states.into_iter().flatten() {
        waits.chans.insert(s.addr, s);
    }
    sync::collect(&ctx, prog, bias, goroutines, &mut waits);
    name_holders(prog, mem, bias, &mut waits);
    waits.untraceable_slots = slots;
    waits
}

/// Each channel's and heap sync object's package variable, when one
/// points at it (`main.jobs`, `main.ready`).
fn name_holders(prog: &GoProgram, mem: &dyn Memory, bias: u64, waits: &mut Waits) {
    let targets = waits
        .chans
        .keys()
        .chain(waits.syncs.keys())
        .copied()
        .collect();
    let names = names::holders(prog, mem, bias, &targets);
    for (addr, c) in waits.chans.iter_mut() {
        c.name = names.get(addr).cloned();
    }
    for (addr, s) in waits.syncs.iter_mut() {
        s.held_by = names.get(addr).cloned();
    }
}

fn is_blocked(g: &GoroutineBrief) -> bool {
    matches!(g.status_code, G_WAITING | G_LEAKED | G_SYSCALL)
}

/// Goroutine id by `runtime.g` address.
type Goids = std::collections::HashMap<u64, u64, PcHasher>;

/// What the readers share: the target, the layouts, and each `g`'s id.
pub(super) struct Ctx<'a> {
    pub mem: &'a dyn Memory,
    pub rt: &'a RuntimeLayout,
    pub w: WaitsLayout,
    /// Goroutine id by `runtime.g` address.
    pub goids: &'a Goids,
    /// The sudogs of each channel wait queue walked so far, by (`hchan`,
    /// queue offset).
    pub queues: chans::QueueCache,
    /// The `notifyList`s looked at so far (`sync.Cond` before 1.26).
    pub notify_lists: sync::NotifyCache,
}

/// The sudogs met along one list, to tell a loop from its end: most lists
/// are a sudog or a few (a million goroutines each walk theirs), looked
/// through as they are; a long one gets a set.
#[derive(Default)]
pub(super) struct Seen(Option<std::collections::HashSet<u64, PcHasher>>);

impl Seen {
    /// Lists up to this long are searched instead of hashed.
    const SEARCHED: usize = 32;

    /// Whether `sg` is new, given the list so far (`walked`, which
    /// holds every sudog this was told of).
    pub fn insert(&mut self, sg: u64, walked: &[u64]) -> bool {
        if let Some(set) = &mut self.0 {
            return set.insert(sg);
        }
        if walked.contains(&sg) {
            return false;
        }
        if walked.len() >= Self::SEARCHED {
            let mut set: std::collections::HashSet<u64, PcHasher> =
                walked.iter().copied().collect();
            set.insert(sg);
            self.0 = Some(set);
        }
        true
    }
}

/// Most sudogs followed along one list (`g.waiting`, a wait queue): a
/// select has at most 65536 cases, and no process has more goroutines
/// than this waiting on one object.
pub(super) const MAX_LIST: usize = 1 << 20;

impl<'a> Ctx<'a> {
    fn new(mem: &'a dyn Memory, rt: &'a RuntimeLayout, w: WaitsLayout, goids: &'a Goids) -> Self {
        Ctx {
            mem,
            rt,
            w,
            goids,
            queues: Default::default(),
            notify_lists: Default::default(),
        }
    }

    /// What `g` waits on, and the words of its sudogs the leak rule does
    /// not follow (see [`Waits::untraceable_slots`]).
    fn read_one(
        &self,
        g: &GoroutineBrief,
        threads: &[Thread],
        fds: Option<&dyn FdInfo>,
    ) -> (u64, WaitsOn, Vec<u64>) {
        let on = self.waits_on(g, threads, fds);
        let mut slots = Vec::new();
        untraceable_slots(self, g, &on, &mut slots);
        (g.id, on, slots)
    }

    pub fn word(&self, addr: u64, what: &str) -> Result<u64, String> {
        self.mem
            .read_u64(addr)
            .map_err(|_| format!("cannot read {what} at {addr:#x}"))
    }

    /// `base + off`, or why not.
    pub fn at(base: u64, off: u64) -> Result<u64, String> {
        base.checked_add(off)
            .ok_or_else(|| format!("{base:#x}+{off:#x} overflows"))
    }

    /// The id of the goroutine whose `g` is at `gp`: from the list, else
    /// read from the `g`.
    pub fn goid(&self, gp: u64) -> Option<u64> {
        if let Some(id) = self.goids.get(&gp) {
            return Some(*id);
        }
        self.mem.read_u64(gp.checked_add(self.rt.g.goid)?).ok()
    }

    fn waits_on(
        &self,
        g: &GoroutineBrief,
        threads: &[Thread],
        fds: Option<&dyn FdInfo>,
    ) -> WaitsOn {
        match g.status_code {
            G_SYSCALL => return syscalls::waits_on(g, threads),
            G_WAITING | G_LEAKED => {}
            _ => return WaitsOn::NotBlocked,
        }
        let reason = g.wait_reason.as_deref().unwrap_or("");
        let r = match reason {
            "chan receive" | "chan receive (durable)" => chans::chan_wait(self, g.gp, ChanOp::Recv),
            "chan send" | "chan send (durable)" => chans::chan_wait(self, g.gp, ChanOp::Send),
            "chan receive (nil chan)" => Ok(WaitsOn::Chan {
                chan: 0,
                op: ChanOp::Recv,
            }),
            "chan send (nil chan)" => Ok(WaitsOn::Chan {
                chan: 0,
                op: ChanOp::Send,
            }),
            "select" | "select (durable)" => chans::select_wait(self, g.gp),
            "select (no cases)" => Ok(WaitsOn::Select { cases: Vec::new() }),
            "IO wait" => io::io_wait(self, g.gp, fds),
            "sleep" => self.sleep(g.gp),
            _ => match sync::kind_of(reason, g) {
                Some(kind) => sync::sync_wait(self, g.gp, kind),
                None => Ok(WaitsOn::Runtime {
                    reason: reason.to_string(),
                }),
            },
        };
        r.unwrap_or_else(|why| WaitsOn::Unreadable { why })
    }

    /// `time.Sleep`: the goroutine's own timer (`g.timer`) says when.
    fn sleep(&self, gp: u64) -> Result<WaitsOn, String> {
        let timer = self.word(Self::at(gp, self.w.g_timer)?, "g.timer")?;
        if timer == 0 {
            return Ok(WaitsOn::Sleep { until_ns: None });
        }
        let when = self.word(Self::at(timer, self.w.timer_when)?, "timer.when")?;
        Ok(WaitsOn::Sleep {
            until_ns: Some(when as i64),
        })
    }

    /// The sudogs of `g.waiting`, each checked to be the goroutine's own
    /// (`sudog.g == gp`), in list order.
    pub fn waiting_sudogs(&self, gp: u64) -> Result<Vec<u64>, String> {
        let mut sg = self.word(Self::at(gp, self.w.g_waiting)?, "g.waiting")?;
        let mut out = Vec::new();
        let mut seen = Seen::default();
        while sg != 0 {
            if out.len() >= MAX_LIST || !seen.insert(sg, &out) {
                return Err(format!("g.waiting of g {gp:#x} does not end"));
            }
            let owner = self.word(Self::at(sg, self.w.sudog.g)?, "sudog.g")?;
            if owner != gp {
                return Err(format!(
                    "sudog {sg:#x} on g {gp:#x}'s waiting list belongs to g {owner:#x}"
                ));
            }
            out.push(sg);
            sg = self.word(Self::at(sg, self.w.sudog.waitlink)?, "sudog.waitlink")?;
        }
        Ok(out)
    }
}

/// The words Go's leak rule hides from marking (see [`Waits`]) of `g`,
/// appended to `out`: found from what it was read to wait on, so that
/// releases whose wait reasons do not name sync waits (`semacquire`
/// before 1.20's) and whose semaphore sudogs are not in `g.waiting`
/// (before 1.26) get them too.
fn untraceable_slots(ctx: &Ctx<'_>, g: &GoroutineBrief, on: &WaitsOn, out: &mut Vec<u64>) {
    if !matches!(g.status_code, G_WAITING | G_LEAKED) {
        return;
    }
    match on {
        WaitsOn::Chan { .. } | WaitsOn::Select { .. } => {
            if let Ok(sgs) = ctx.waiting_sudogs(g.gp) {
                let off = ctx.w.sudog.c_traced;
                out.extend(sgs.iter().filter_map(|sg| sg.checked_add(off)));
            }
        }
        WaitsOn::Sync { .. } => {
            if let Ok(Some(sg)) = sync::own_sudog(ctx, g.gp) {
                out.extend(sg.checked_add(ctx.w.sudog.elem_traced));
            }
        }
        _ => {}
    }
}
