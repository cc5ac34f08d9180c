//! Waits in package sync: which semaphore (or `notifyList`) the goroutine
//! is queued on, found through its sudog (`sudog.elem` = the semaphore's
//! address, `runtime/sema.go`), and the sync value that semaphore sits
//! in. From 1.26 the runtime points `g.waiting` at that sudog; before, the
//! sudog is found on the stack, where `semacquire1` keeps it across its
//! park, and a `Cond` (whose sudog names no address before 1.26) through
//! the `*Cond` that `Cond.Wait` keeps on its frame, checked by finding
//! the goroutine's sudog in that Cond's `notifyList`.

use std::collections::HashSet;

use super::{stack, Ctx, SyncKind, SyncState, Waits, WaitsOn};
use crate::goruntime::{GoProgram, GoroutineBrief};
use crate::process::MemoryExt;

/// `rwmutexMaxReaders` (`sync/rwmutex.go`): a writer subtracts it from
/// `readerCount` to announce itself.
const RW_MAX_READERS: i64 = 1 << 30;

/// The sync kind of a wait: the wait reason's (1.20+ name most), else,
/// for `semacquire`, the innermost sync method on the stack.
pub fn kind_of(reason: &str, g: &GoroutineBrief) -> Option<SyncKind> {
    Some(match reason {
        "sync.Mutex.Lock" => SyncKind::Mutex,
        "sync.RWMutex.RLock" => SyncKind::RWMutexRead,
        "sync.RWMutex.Lock" => SyncKind::RWMutexWrite,
        "sync.WaitGroup.Wait" | "sync.WaitGroup.Wait (durable)" => SyncKind::WaitGroup,
        "sync.Cond.Wait" => SyncKind::Cond,
        "semacquire" => g.stack.sync_kind.unwrap_or(SyncKind::Semaphore),
        _ => return None,
    })
}

/// The innermost sync method among `functions` (a stack's, innermost
/// first).
pub fn kind_from_frames<'a>(mut functions: impl Iterator<Item = &'a str>) -> Option<SyncKind> {
    functions.find_map(|function| {
        let name = function
            .strip_prefix("sync.")
            .or_else(|| function.strip_prefix("internal/sync."))?;
        Some(match name {
            "(*RWMutex).RLock" => SyncKind::RWMutexRead,
            "(*RWMutex).Lock" => SyncKind::RWMutexWrite,
            "(*WaitGroup).Wait" => SyncKind::WaitGroup,
            "(*Cond).Wait" => SyncKind::Cond,
            n if n.starts_with("(*Mutex).") => SyncKind::Mutex,
            _ => return None,
        })
    })
}

pub fn sync_wait(ctx: &Ctx<'_>, gp: u64, kind: SyncKind) -> Result<WaitsOn, String> {
    let sema = match semaphore(ctx, gp)? {
        Some(sema) => sema,
        None if kind == SyncKind::Cond => cond_from_stack(ctx, gp)?,
        None => return Err("no sudog of its semaphore wait found".to_string()),
    };
    let s = &ctx.w.sync;
    let off = match kind {
        SyncKind::Mutex => s.mutex_sema,
        SyncKind::RWMutexRead => s.rw_reader_sem,
        SyncKind::RWMutexWrite => s.rw_writer_sem,
        SyncKind::WaitGroup => s.wg_sema,
        SyncKind::Cond => s.cond_notify,
        SyncKind::Semaphore => 0,
    };
    let object = sema
        .checked_sub(off)
        .ok_or_else(|| format!("semaphore {sema:#x} is below its {kind:?}'s offset"))?;
    Ok(WaitsOn::Sync { object, sema, kind })
}

/// The address in the goroutine's own sudog (`elem`): see [`own_sudog`].
fn semaphore(ctx: &Ctx<'_>, gp: u64) -> Result<Option<u64>, String> {
    Ok(own_sudog(ctx, gp)?.and_then(|sg| sudog_elem(ctx, sg)))
}

fn sudog_elem(ctx: &Ctx<'_>, sg: u64) -> Option<u64> {
    let elem = ctx.mem.read_u64(sg.checked_add(ctx.w.sudog.elem)?).ok()?;
    (elem != 0).then_some(elem)
}

/// The sudog a goroutine waits in on a semaphore (one of its own, naming
/// an address): `g.waiting` (1.26+), else a stack word pointing at it.
pub fn own_sudog(ctx: &Ctx<'_>, gp: u64) -> Result<Option<u64>, String> {
    let own = |sg: u64| -> Option<u64> {
        let owner = ctx.mem.read_u64(sg.checked_add(ctx.w.sudog.g)?).ok()?;
        (owner == gp && sudog_elem(ctx, sg).is_some()).then_some(sg)
    };
    let waiting = ctx.word(Ctx::at(gp, ctx.w.g_waiting)?, "g.waiting")?;
    if waiting != 0 {
        if let Some(sg) = own(waiting) {
            return Ok(Some(sg));
        }
    }
    Ok(stack::words(ctx, gp)?.into_iter().find_map(own))
}

/// Most sudogs read while looking for a goroutine's `Cond` on its
/// stack, over every candidate: bounds the work garbage can cause. A
/// real Cond's queue is walked whole unless it is longer than this.
const COND_BUDGET: usize = 1 << 16;

/// Before 1.26: the `notifyList` inside a `*Cond` on the stack whose
/// queue holds a sudog of this goroutine.
fn cond_from_stack(ctx: &Ctx<'_>, gp: u64) -> Result<u64, String> {
    let s = &ctx.w.sync;
    let mut budget = COND_BUDGET;
    for w in stack::words(ctx, gp)? {
        let Some(list) = w.checked_add(s.cond_notify) else {
            continue;
        };
        if notify_list_holds(ctx, list, gp, &mut budget) {
            return Ok(list);
        }
        if budget == 0 {
            break;
        }
    }
    Err("no sync.Cond on its stack queues it".to_string())
}

/// Whether the `notifyList` at `list` queues a sudog of `gp`, reading at
/// most `budget` sudogs (what is read is taken off it). A queue walked to
/// its end must end at the list's `tail`: a stack word that is not a
/// `*Cond` can still land `head` on a word that leads into gp's queue
/// (another sudog's `next`, seen once on go1.19), and its `tail` would
/// not be that queue's last sudog.
fn notify_list_holds(ctx: &Ctx<'_>, list: u64, gp: u64, budget: &mut usize) -> bool {
    let Some(head) = list.checked_add(ctx.w.sync.notify_head) else {
        return false;
    };
    let Ok(mut sg) = ctx.mem.read_u64(head) else {
        return false;
    };
    let (mut queued, mut last) = (false, 0);
    let mut seen = HashSet::new();
    while sg != 0 && *budget > 0 && seen.insert(sg) {
        *budget -= 1;
        let owner = sg
            .checked_add(ctx.w.sudog.g)
            .and_then(|a| ctx.mem.read_u64(a).ok());
        match owner {
            Some(owner) => queued |= owner == gp,
            None => return false,
        }
        last = sg;
        match sg
            .checked_add(ctx.w.sudog.next)
            .and_then(|a| ctx.mem.read_u64(a).ok())
        {
            Some(next) => sg = next,
            None => return false,
        }
    }
    if !queued {
        return false;
    }
    if sg != 0 {
        // Longer than the budget (or a loop): queued, its end unseen.
        return true;
    }
    // `tail` follows `head` in every release's notifyList.
    head.checked_add(8)
        .and_then(|t| ctx.mem.read_u64(t).ok())
        .is_some_and(|tail| tail == last)
}

/// The state of every sync object some goroutine waits on.
pub fn collect(
    ctx: &Ctx<'_>,
    prog: &GoProgram,
    bias: u64,
    goroutines: &[GoroutineBrief],
    waits: &mut Waits,
) {
    for g in goroutines {
        let Some(WaitsOn::Sync { object, kind, .. }) = waits.by_goroutine.get(&g.id) else {
            continue;
        };
        let (object, kind) = (*object, *kind);
        let entry = waits.syncs.entry(object).or_insert_with(|| {
            let mut st = SyncState {
                object,
                kind,
                name: super::name_of(prog, bias, object),
                waiters: Vec::new(),
                held_by: None,
                locked: None,
                counter: None,
                writer_waiting: None,
            };
            read_state(ctx, &mut st);
            st
        });
        entry.waiters.push(g.id);
        if kind == SyncKind::RWMutexWrite {
            entry.kind = kind;
            entry.writer_waiting = Some(g.id);
        }
    }
    for st in waits.syncs.values_mut() {
        st.waiters.sort_unstable();
    }
}

/// The object's own words: a mutex's locked bit, an RWMutex's readers, a
/// WaitGroup's counter.
fn read_state(ctx: &Ctx<'_>, st: &mut SyncState) {
    let s = &ctx.w.sync;
    let read_u32 = |off: u64| {
        st.object
            .checked_add(off)
            .and_then(|a| ctx.mem.read_u32(a).ok())
    };
    match st.kind {
        SyncKind::Mutex => st.locked = read_u32(0).map(|v| v & 1 != 0),
        SyncKind::RWMutexRead | SyncKind::RWMutexWrite => {
            st.locked = read_u32(0).map(|v| v & 1 != 0);
            // With a writer announced (`readerCount` < 0), the readers
            // still holding it are the ones it waits to leave
            // (`readerWait`, the word after); readers arriving later
            // queue behind the writer.
            st.counter = read_u32(s.rw_reader_count).and_then(|v| {
                let n = i64::from(v as i32);
                if n >= 0 {
                    return Some(n);
                }
                let wait = read_u32(s.rw_reader_count.checked_add(4)?)?;
                Some(i64::from(wait as i32).min(n + RW_MAX_READERS))
            });
        }
        SyncKind::WaitGroup => {
            st.counter = st
                .object
                .checked_add(s.wg_state)
                .and_then(|a| ctx.mem.read_u64(a).ok())
                .map(|v| i64::from((v >> 32) as i32));
        }
        SyncKind::Cond | SyncKind::Semaphore => {}
    }
}
