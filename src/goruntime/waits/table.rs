//! The offsets of [`WaitsLayout`] for the releases goat is tested against
//! (1.19, 1.21–1.27), for binaries without DWARF. Each row is checked
//! against DWARF by `tests::table_matches_dwarf`; a release not listed
//! here needs DWARF.

use super::super::version::GoVersion;
use super::layout::{ChanOffsets, PollOffsets, SudogOffsets, SyncOffsets, WaitsLayout};

/// Package sync's layout on x86-64, unchanged from 1.19 to 1.27 (1.24
/// moved `Mutex`'s fields into `internal/sync.Mutex`, at the same place).
pub const SYNC: SyncOffsets = SyncOffsets {
    mutex_sema: 4,
    rw_writer_sem: 8,
    rw_reader_sem: 12,
    rw_reader_count: 16,
    wg_state: 0,
    wg_sema: 8,
    cond_notify: 16,
    notify_head: 16,
};

/// `sudog` until 1.25: plain pointers.
const SUDOG_PLAIN: SudogOffsets = SudogOffsets {
    g: 0,
    next: 8,
    elem: 24,
    elem_traced: 24,
    waitlink: 64,
    c: 80,
    c_traced: 80,
};

/// `sudog` from 1.26: `elem` and `c` are `maybeTraceablePtr {vp, vu}`.
const SUDOG_TRACEABLE: SudogOffsets = SudogOffsets {
    g: 0,
    next: 8,
    elem: 32,
    elem_traced: 24,
    waitlink: 72,
    c: 96,
    c_traced: 88,
};

/// `hchan` until 1.22; 1.23 added `timer` before `elemtype`.
const CHAN_UNTIL_1_22: ChanOffsets = ChanOffsets {
    qcount: 0,
    dataqsiz: 8,
    closed: 28,
    elemtype: 32,
    recvq: 56,
    sendq: 72,
};
const CHAN_FROM_1_23: ChanOffsets = ChanOffsets {
    elemtype: 40,
    recvq: 64,
    sendq: 80,
    ..CHAN_UNTIL_1_22
};

fn poll(rg: u64, rd: u64, wd: u64) -> PollOffsets {
    PollOffsets {
        fd: 8,
        rg,
        wg: rg + 8,
        rd,
        wd,
        self_: wd + 8,
    }
}

/// The offsets for `version`, when goat knows them.
pub fn offsets(version: GoVersion) -> Option<WaitsLayout> {
    if version.major != 1 {
        return None;
    }
    // (g.waiting, g.timer, timer.when, pollDesc rg/rd/wd)
    let (g_waiting, g_timer, timer_when, poll) = match version.minor {
        19 => (328, 368, 8, poll(24, 136, 224)),
        21 | 22 => (312, 352, 8, poll(32, 144, 232)),
        23 | 24 => (320, 360, 16, poll(32, 160, 264)),
        25 => (312, 352, 24, poll(32, 168, 280)),
        26 | 27 => (320, 360, 24, poll(32, 168, 280)),
        _ => return None,
    };
    let traceable = version.minor >= 26;
    Some(WaitsLayout {
        g_waiting,
        g_timer,
        timer_when,
        sudog: if traceable {
            SUDOG_TRACEABLE
        } else {
            SUDOG_PLAIN
        },
        chan: if version.minor >= 23 {
            CHAN_FROM_1_23
        } else {
            CHAN_UNTIL_1_22
        },
        poll,
        sync: SYNC,
        untraceable_sudogs: traceable,
    })
}
