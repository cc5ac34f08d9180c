//! Channel waits: the `hchan` of each sudog on `g.waiting`, the side of
//! the channel each select case is queued on, and each channel's state
//! and wait queues (`runtime/chan.go`: `hchan`, `waitq`).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use super::{ChanOp, ChanState, Ctx, Waits, WaitsOn, MAX_LIST};
use crate::goruntime::GoroutineBrief;
use crate::process::MemoryExt;

/// Wait queues already walked: see [`super::Ctx::queues`].
pub type QueueCache = RefCell<HashMap<(u64, u64), Rc<HashSet<u64>>>>;

/// A plain channel operation: the one sudog on `g.waiting`.
pub fn chan_wait(ctx: &Ctx<'_>, gp: u64, op: ChanOp) -> Result<WaitsOn, String> {
    let sgs = ctx.waiting_sudogs(gp)?;
    let [sg] = sgs[..] else {
        return Err(format!(
            "{} sudogs on g.waiting for one channel operation",
            sgs.len()
        ));
    };
    let chan = ctx.word(Ctx::at(sg, ctx.w.sudog.c)?, "sudog.c")?;
    if chan == 0 {
        return Err(format!("sudog {sg:#x} names no channel"));
    }
    Ok(WaitsOn::Chan { chan, op })
}

/// A select: one sudog per case, each queued on its channel's `recvq` or
/// `sendq`, which says the case's direction. Each queue is walked once
/// per reading (many goroutines may select on one channel).
pub fn select_wait(ctx: &Ctx<'_>, gp: u64) -> Result<WaitsOn, String> {
    let mut cases = Vec::new();
    for sg in ctx.waiting_sudogs(gp)? {
        let chan = ctx.word(Ctx::at(sg, ctx.w.sudog.c)?, "sudog.c")?;
        let op = if queued(ctx, chan, ctx.w.chan.recvq)?.contains(&sg) {
            ChanOp::Recv
        } else if queued(ctx, chan, ctx.w.chan.sendq)?.contains(&sg) {
            ChanOp::Send
        } else {
            return Err(format!(
                "select case sudog {sg:#x} is in neither queue of channel {chan:#x}"
            ));
        };
        cases.push((chan, op));
    }
    Ok(WaitsOn::Select { cases })
}

/// The sudogs of the queue at `chan + off`, as a set, remembered.
fn queued(ctx: &Ctx<'_>, chan: u64, off: u64) -> Result<Rc<HashSet<u64>>, String> {
    if let Some(set) = ctx.queues.borrow().get(&(chan, off)) {
        return Ok(set.clone());
    }
    let set: Rc<HashSet<u64>> = Rc::new(queue(ctx, chan, off)?.0.into_iter().collect());
    ctx.queues.borrow_mut().insert((chan, off), set.clone());
    Ok(set)
}

/// The sudogs of the wait queue at `chan + off`, in order, and why the
/// walk stopped early if it did.
fn queue(ctx: &Ctx<'_>, chan: u64, off: u64) -> Result<(Vec<u64>, Option<String>), String> {
    let mut sg = ctx.word(Ctx::at(chan, off)?, "waitq.first")?;
    let mut out = Vec::new();
    let mut seen = super::Seen::default();
    while sg != 0 {
        if out.len() >= MAX_LIST || !seen.insert(sg, &out) {
            return Ok((
                out,
                Some(format!("the wait queue of {chan:#x} does not end")),
            ));
        }
        out.push(sg);
        match Ctx::at(sg, ctx.w.sudog.next).and_then(|a| ctx.word(a, "sudog.next")) {
            Ok(next) => sg = next,
            Err(why) => return Ok((out, Some(why))),
        }
    }
    Ok((out, None))
}

/// The goroutine ids of a queue's sudogs.
fn waiter_ids(ctx: &Ctx<'_>, sudogs: &[u64]) -> Vec<u64> {
    sudogs
        .iter()
        .filter_map(|sg| {
            let gp = ctx.mem.read_u64(sg.checked_add(ctx.w.sudog.g)?).ok()?;
            ctx.goid(gp)
        })
        .collect()
}

/// The state of every channel some goroutine waits on.
pub fn collect(ctx: &Ctx<'_>, goroutines: &[GoroutineBrief], waits: &mut Waits) {
    let mut addrs = BTreeSet::new();
    for g in goroutines {
        match waits.by_goroutine.get(&g.id) {
            Some(WaitsOn::Chan { chan, .. }) if *chan != 0 => {
                addrs.insert(*chan);
            }
            Some(WaitsOn::Select { cases }) => addrs.extend(cases.iter().map(|c| c.0)),
            _ => {}
        }
    }
    for addr in addrs {
        waits.chans.insert(addr, state(ctx, addr));
    }
}

/// The channel's element type as Go names it (`int`, `*main.job`), from
/// `hchan.elemtype`; `types` is the module's link-time types range.
pub fn elem_type(ctx: &Ctx<'_>, addr: u64, types: (u64, u64), bias: u64) -> Option<String> {
    let typ = ctx
        .word(Ctx::at(addr, ctx.w.chan.elemtype).ok()?, "hchan.elemtype")
        .ok()?;
    crate::values::type_name_at(ctx.mem, types, bias, typ).ok()
}

fn state(ctx: &Ctx<'_>, addr: u64) -> ChanState {
    let mut s = ChanState {
        addr,
        elem_type: None,
        len: 0,
        cap: 0,
        closed: false,
        recv_waiters: Vec::new(),
        send_waiters: Vec::new(),
        name: None,
        unreadable: None,
    };
    let c = &ctx.w.chan;
    let header = (|| -> Result<(), String> {
        s.len = ctx.word(Ctx::at(addr, c.qcount)?, "hchan.qcount")?;
        s.cap = ctx.word(Ctx::at(addr, c.dataqsiz)?, "hchan.dataqsiz")?;
        let closed = ctx
            .mem
            .read_u32(Ctx::at(addr, c.closed)?)
            .map_err(|_| "cannot read hchan.closed".to_string())?;
        s.closed = closed != 0;
        Ok(())
    })();
    let mut why = header.err();
    for (off, out) in [
        (c.recvq, &mut s.recv_waiters),
        (c.sendq, &mut s.send_waiters),
    ] {
        match queue(ctx, addr, off) {
            Ok((sgs, partial)) => {
                *out = waiter_ids(ctx, &sgs);
                why = why.or(partial);
            }
            Err(e) => why = why.or(Some(e)),
        }
    }
    s.unreadable = why;
    s
}
