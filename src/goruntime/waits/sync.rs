//! Waits in package sync: which semaphore (or `notifyList`) the goroutine
//! is queued on, found through its sudog (`sudog.elem` = the semaphore's
//! address, `runtime/sema.go`), and the sync value that semaphore sits
//! in. From 1.26 the runtime points `g.waiting` at that sudog; before, the
//! sudog is found on the stack, where `semacquire1` keeps it across its
//! park, and a `Cond` (whose sudog names no address before 1.26) through
//! the `*Cond` that `Cond.Wait` keeps on its frame, checked by finding
//! the goroutine's sudog in that Cond's `notifyList`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{stack, Ctx, SyncKind, SyncState, Waits, WaitsOn, MAX_LIST};
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
    let sema = if kind == SyncKind::Cond {
        // Before 1.26 a Cond's sudog names no address: only `g.waiting`
        // (1.26+) can, and the stack is searched for the Cond instead.
        match waiting_sudog(ctx, gp)?.and_then(|sg| sudog_elem(ctx, sg)) {
            Some(sema) => sema,
            None => cond_from_stack(ctx, gp)?,
        }
    } else {
        semaphore(ctx, gp)?.ok_or("no sudog of its semaphore wait found")?
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

/// Whether `sg` is a sudog of the goroutine at `gp` naming an address.
fn owned_with_address(ctx: &Ctx<'_>, sg: u64, gp: u64) -> bool {
    let owner = sg
        .checked_add(ctx.w.sudog.g)
        .and_then(|a| ctx.mem.read_u64(a).ok());
    owner == Some(gp) && sudog_elem(ctx, sg).is_some()
}

/// `g.waiting` when it is the goroutine's own sudog naming an address.
fn waiting_sudog(ctx: &Ctx<'_>, gp: u64) -> Result<Option<u64>, String> {
    let waiting = ctx.word(Ctx::at(gp, ctx.w.g_waiting)?, "g.waiting")?;
    Ok((waiting != 0 && owned_with_address(ctx, waiting, gp)).then_some(waiting))
}

/// The sudog a goroutine waits in on a semaphore (one of its own, naming
/// an address): `g.waiting` (1.26+), else a stack word pointing at it.
pub fn own_sudog(ctx: &Ctx<'_>, gp: u64) -> Result<Option<u64>, String> {
    if let Some(sg) = waiting_sudog(ctx, gp)? {
        return Ok(Some(sg));
    }
    Ok(stack::words(ctx, gp)?.find(|&sg| owned_with_address(ctx, sg, gp)))
}

/// Before 1.26: the `notifyList` inside a `*Cond` on the stack whose
/// queue holds a sudog of this goroutine.
fn cond_from_stack(ctx: &Ctx<'_>, gp: u64) -> Result<u64, String> {
    let s = &ctx.w.sync;
    for w in stack::words(ctx, gp)? {
        let Some(list) = w.checked_add(s.cond_notify) else {
            continue;
        };
        if notify_list_holds(ctx, list, gp) {
            return Ok(list);
        }
    }
    Err("no sync.Cond on its stack queues it".to_string())
}

/// The goroutines (`g` addresses) a `notifyList`'s queue holds, by the
/// list's address, for the lists that passed [`walk_notify_list`]'s
/// checks, or `None` for one that looked like a list but failed them.
/// Every waiter of one Cond looks at the same list: walked once, not once
/// per waiter (a million waiters would be a million walks of a million
/// sudogs).
pub type NotifyCache = RefCell<HashMap<u64, Option<Rc<HashSet<u64>>>>>;

/// Whether the `notifyList` at `list` queues a sudog of `gp`.
fn notify_list_holds(ctx: &Ctx<'_>, list: u64, gp: u64) -> bool {
    if let Some(known) = ctx.notify_lists.borrow().get(&list) {
        return known.as_ref().is_some_and(|owners| owners.contains(&gp));
    }
    let Some(head) = list.checked_add(ctx.w.sync.notify_head) else {
        return false;
    };
    if !looks_like_a_list(ctx, head) {
        return false;
    }
    let owners = walk_notify_list(ctx, head).map(Rc::new);
    let holds = owners.as_ref().is_some_and(|o| o.contains(&gp));
    ctx.notify_lists.borrow_mut().insert(list, owners);
    holds
}

/// A first look at a stack word taken as a `notifyList`, a few reads
/// that almost every word that is not one fails: its `head` and `tail`
/// are sudogs of known goroutines, and the tail's `next` is nil.
fn looks_like_a_list(ctx: &Ctx<'_>, head: u64) -> bool {
    let read = |a: Option<u64>| a.and_then(|a| ctx.mem.read_u64(a).ok());
    let sudog_of_a_goroutine = |sg: u64| {
        sg != 0 && read(sg.checked_add(ctx.w.sudog.g)).is_some_and(|g| ctx.goids.contains_key(&g))
    };
    // `tail` follows `head` in every release's notifyList.
    let (Some(first), Some(last)) = (read(Some(head)), read(head.checked_add(8))) else {
        return false;
    };
    sudog_of_a_goroutine(first)
        && sudog_of_a_goroutine(last)
        && read(last.checked_add(ctx.w.sudog.next)) == Some(0)
}

/// The owners of the queue from `head`, or `None` when it is not a
/// `notifyList`'s: walked to its end, it must end at the list's `tail`.
/// A stack word that is not a `*Cond` can still land `head` on a word
/// that leads into a goroutine's queue (another sudog's `next`, seen once
/// on go1.19), and its `tail` would not be that queue's last sudog. A
/// goroutine waits on one Cond once: an owner seen twice is a loop.
fn walk_notify_list(ctx: &Ctx<'_>, head: u64) -> Option<HashSet<u64>> {
    let mut sg = ctx.mem.read_u64(head).ok()?;
    let mut owners = HashSet::new();
    let mut last = 0;
    while sg != 0 {
        if owners.len() >= MAX_LIST {
            return None;
        }
        let owner = ctx.mem.read_u64(sg.checked_add(ctx.w.sudog.g)?).ok()?;
        if !owners.insert(owner) {
            return None;
        }
        last = sg;
        sg = ctx.mem.read_u64(sg.checked_add(ctx.w.sudog.next)?).ok()?;
    }
    let tail = ctx.mem.read_u64(head.checked_add(8)?).ok()?;
    (tail == last).then_some(owners)
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
