//! Where the runtime and package sync keep what `read_waits` follows: the
//! blocked goroutine's `g.waiting` and `g.timer`, `sudog`, `hchan`,
//! `runtime.timer`, `pollDesc`, and the semaphores inside sync's types.
//! From DWARF when the binary has it; else from [`super::table`], one row
//! per release goat was tested against, checked against DWARF by
//! `tests::table_matches_dwarf`. Without either goat refuses, rather than
//! follow a guessed offset.

use crate::binary::dwarf::DwarfTypes;

use super::super::version::GoVersion;
use super::table;

/// Offsets inside `runtime.sudog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudogOffsets {
    pub g: u64,
    pub next: u64,
    /// The word holding the element's address (1.26+: `elem.vu`, the
    /// source of truth of a `maybeTraceablePtr`).
    pub elem: u64,
    /// The word the garbage collector follows (`elem.vp` in 1.26+; the
    /// pointer itself before).
    pub elem_traced: u64,
    pub waitlink: u64,
    /// As `elem`, for the channel (`c.vu` in 1.26+).
    pub c: u64,
    pub c_traced: u64,
}

/// Offsets inside `runtime.hchan` (a `waitq`'s `first` is its word 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChanOffsets {
    pub qcount: u64,
    pub dataqsiz: u64,
    pub closed: u64,
    pub elemtype: u64,
    pub recvq: u64,
    pub sendq: u64,
}

/// Offsets inside `runtime.pollDesc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOffsets {
    pub fd: u64,
    pub rg: u64,
    pub wg: u64,
    pub rd: u64,
    pub wd: u64,
    /// `self`: the descriptor's own address, which makes a word that
    /// points at one self-checking.
    pub self_: u64,
}

/// Offsets inside package sync's types (and the runtime's `notifyList`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOffsets {
    /// `Mutex.sema` (1.24+: `Mutex.mu.sema`); `Mutex.state` is word 0.
    pub mutex_sema: u64,
    pub rw_writer_sem: u64,
    pub rw_reader_sem: u64,
    pub rw_reader_count: u64,
    /// `WaitGroup.state` (1.19: `state1`): counter in the high half.
    pub wg_state: u64,
    /// `WaitGroup.sema` (1.19: `state2`, on 64-bit targets).
    pub wg_sema: u64,
    pub cond_notify: u64,
    /// `notifyList.head`: the first waiting sudog.
    pub notify_head: u64,
}

/// Everything `read_waits` needs beyond [`super::super::RuntimeLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitsLayout {
    pub g_waiting: u64,
    pub g_timer: u64,
    pub timer_when: u64,
    pub sudog: SudogOffsets,
    pub chan: ChanOffsets,
    pub poll: PollOffsets,
    pub sync: SyncOffsets,
    /// Go 1.26+: the runtime's leak rule hides `sudog.elem`/`sudog.c`
    /// from its marking (`setSyncObjectsUntraceable`).
    pub untraceable_sudogs: bool,
}

impl WaitsLayout {
    /// From DWARF; `Err` names the first field it lacks.
    pub fn from_dwarf(d: &DwarfTypes) -> Result<WaitsLayout, &'static str> {
        let f = |ty: &'static str, path: &'static str| d.field_offset(ty, path).ok_or(path);
        let either = |ty: &'static str, a: &'static str, b: &'static str| {
            d.field_offset(ty, a)
                .or_else(|| d.field_offset(ty, b))
                .ok_or(a)
        };
        let s = "runtime.sudog";
        let traceable = d.field_offset(s, "elem.vu").is_some();
        let sudog = SudogOffsets {
            g: f(s, "g")?,
            next: f(s, "next")?,
            elem: either(s, "elem.vu", "elem")?,
            elem_traced: either(s, "elem.vp", "elem")?,
            waitlink: f(s, "waitlink")?,
            c: either(s, "c.maybeTraceablePtr.vu", "c")?,
            c_traced: either(s, "c.maybeTraceablePtr.vp", "c")?,
        };
        let h = "runtime.hchan";
        let chan = ChanOffsets {
            qcount: f(h, "qcount")?,
            dataqsiz: f(h, "dataqsiz")?,
            closed: f(h, "closed")?,
            elemtype: f(h, "elemtype")?,
            recvq: f(h, "recvq")?,
            sendq: f(h, "sendq")?,
        };
        let p = "runtime.pollDesc";
        let poll = PollOffsets {
            fd: f(p, "fd")?,
            rg: f(p, "rg")?,
            wg: f(p, "wg")?,
            rd: f(p, "rd")?,
            wd: f(p, "wd")?,
            self_: f(p, "self")?,
        };
        // Package sync's types are in DWARF only when the program uses
        // them; their layout is the same in every release goat reads, so
        // the table's stands in for what DWARF lacks.
        let fixed = table::SYNC;
        let or = |v: Option<u64>, dflt: u64| v.unwrap_or(dflt);
        let sync = SyncOffsets {
            mutex_sema: or(
                d.field_offset("sync.Mutex", "sema")
                    .or_else(|| d.field_offset("sync.Mutex", "mu.sema")),
                fixed.mutex_sema,
            ),
            rw_writer_sem: or(
                d.field_offset("sync.RWMutex", "writerSem"),
                fixed.rw_writer_sem,
            ),
            rw_reader_sem: or(
                d.field_offset("sync.RWMutex", "readerSem"),
                fixed.rw_reader_sem,
            ),
            rw_reader_count: or(
                d.field_offset("sync.RWMutex", "readerCount"),
                fixed.rw_reader_count,
            ),
            wg_state: or(
                d.field_offset("sync.WaitGroup", "state")
                    .or_else(|| d.field_offset("sync.WaitGroup", "state1")),
                fixed.wg_state,
            ),
            wg_sema: or(
                d.field_offset("sync.WaitGroup", "sema")
                    .or_else(|| d.field_offset("sync.WaitGroup", "state2")),
                fixed.wg_sema,
            ),
            cond_notify: or(d.field_offset("sync.Cond", "notify"), fixed.cond_notify),
            notify_head: or(
                d.field_offset("runtime.notifyList", "head"),
                fixed.notify_head,
            ),
        };
        Ok(WaitsLayout {
            g_waiting: f("runtime.g", "waiting")?,
            g_timer: f("runtime.g", "timer")?,
            timer_when: f("runtime.timer", "when")?,
            sudog,
            chan,
            poll,
            sync,
            untraceable_sudogs: traceable,
        })
    }

    /// From goat's table, for a binary without DWARF.
    pub fn from_table(version: GoVersion) -> Option<WaitsLayout> {
        table::offsets(version)
    }
}
