//! Channel waits: the `hchan` of each sudog on `g.waiting`, the side of
//! the channel each select case is queued on, and each channel's state
//! and wait queues (`runtime/chan.go`: `hchan`, `waitq`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use super::{ChanOp, ChanState, Ctx, Waits, WaitsOn, MAX_LIST};
use crate::goruntime::PcHasher;
use crate::process::MemoryExt;

/// Wait queues already walked: see [`super::Ctx::queues`].
pub type QueueCache = RefCell<HashMap<(u64, u64), Rc<QueueSet>>>;

/// A wait queue's sudogs, looked up by a cheap hash: a select's case is
/// looked for in a queue of 400,000 sudogs, which SipHash made slow.
type QueueSet = HashSet<u64, PcHasher>;

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
fn queued(ctx: &Ctx<'_>, chan: u64, off: u64) -> Result<Rc<QueueSet>, String> {
    if let Some(set) = ctx.queues.borrow().get(&(chan, off)) {
        return Ok(set.clone());
    }
    let set: Rc<QueueSet> = Rc::new(queue(ctx, chan, off)?.sudogs.into_iter().collect());
    ctx.queues.borrow_mut().insert((chan, off), set.clone());
    Ok(set)
}

/// A wait queue as walked: its sudogs in order, each one's `sudog.g` at
/// the same place (0 where it cannot be read), and why the walk stopped
/// early if it did.
struct Queue {
    sudogs: Vec<u64>,
    gs: Vec<u64>,
    why: Option<String>,
}

/// The wait queue at `chan + off`. A sudog's `g` and `next` come from one
/// read: the 400,000 receivers of one channel were 800,000 reads of a
/// core, a second of `goat why`'s waits.
fn queue(ctx: &Ctx<'_>, chan: u64, off: u64) -> Result<Queue, String> {
    let mut sg = ctx.word(Ctx::at(chan, off)?, "waitq.first")?;
    let mut q = Queue {
        sudogs: Vec::new(),
        gs: Vec::new(),
        why: None,
    };
    let mut seen = super::Seen::default();
    while sg != 0 {
        if q.sudogs.len() >= MAX_LIST || !seen.insert(sg, &q.sudogs) {
            q.why = Some(format!("the wait queue of {chan:#x} does not end"));
            return Ok(q);
        }
        q.sudogs.push(sg);
        let (gp, next) = sudog_g_and_next(ctx, sg);
        q.gs.push(gp.unwrap_or(0));
        match next {
            Ok(next) => sg = next,
            Err(why) => {
                q.why = Some(why);
                return Ok(q);
            }
        }
    }
    Ok(q)
}

/// `sudog.g` (if it can be read) and `sudog.next` (or why not) of the
/// sudog at `sg`: one read of the words between them where it succeeds.
fn sudog_g_and_next(ctx: &Ctx<'_>, sg: u64) -> (Option<u64>, Result<u64, String>) {
    let (g_off, next_off) = (ctx.w.sudog.g, ctx.w.sudog.next);
    let low = g_off.min(next_off);
    let mut both = [0u8; 32];
    let span = (g_off.max(next_off) - low).saturating_add(8);
    if let (Some(from), Some(buf)) = (sg.checked_add(low), both.get_mut(..span as usize)) {
        if ctx.mem.read(from, buf).is_ok() {
            let word = |off: u64| {
                let at = (off - low) as usize;
                u64::from_le_bytes(buf[at..at + 8].try_into().unwrap_or_default())
            };
            return (Some(word(g_off)), Ok(word(next_off)));
        }
    }
    let gp = sg.checked_add(g_off).and_then(|a| ctx.mem.read_u64(a).ok());
    let next = Ctx::at(sg, next_off).and_then(|a| ctx.word(a, "sudog.next"));
    (gp, next)
}

/// The goroutine ids of a queue's sudogs, from their `sudog.g`s.
fn waiter_ids(ctx: &Ctx<'_>, gs: &[u64]) -> Vec<u64> {
    gs.iter()
        .filter(|gp| **gp != 0)
        .filter_map(|gp| ctx.goid(*gp))
        .collect()
}

/// Every channel some goroutine waits on, in `threads` parts of about
/// equal work: a channel's queues are walked sudog by sudog, so a channel
/// counts for the goroutines waiting on it (one channel of a million
/// goroutines' service had 400,000, the next 200,000 one each).
pub fn waited_parts(waits: &Waits, threads: usize) -> Vec<Vec<u64>> {
    let mut waiting: BTreeMap<u64, usize> = BTreeMap::new();
    for on in waits.by_goroutine.values() {
        match on {
            WaitsOn::Chan { chan, .. } if *chan != 0 => {
                *waiting.entry(*chan).or_default() += 1;
            }
            WaitsOn::Select { cases } => {
                for c in cases {
                    *waiting.entry(c.0).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    // The busiest first, each to the part with the least work so far.
    let mut by_work: Vec<(usize, u64)> = waiting.into_iter().map(|(c, n)| (n, c)).collect();
    by_work.sort_unstable_by(|a, b| b.cmp(a));
    let mut parts: Vec<(usize, Vec<u64>)> = vec![(0, Vec::new()); threads.max(1)];
    for (n, chan) in by_work {
        if let Some(least) = parts.iter_mut().min_by_key(|p| p.0) {
            least.0 = least.0.saturating_add(n.saturating_add(1));
            least.1.push(chan);
        }
    }
    parts.into_iter().map(|p| p.1).collect()
}

/// The state of each of `chans`, with its element type named when the
/// module's link-time types range `types` is known.
pub fn states(
    ctx: &Ctx<'_>,
    chans: &[u64],
    types: Option<(u64, u64)>,
    bias: u64,
) -> Vec<ChanState> {
    chans
        .iter()
        .map(|&addr| {
            let mut s = state(ctx, addr);
            s.elem_type = types.and_then(|t| elem_type(ctx, addr, t, bias));
            s
        })
        .collect()
}

/// The channel's element type as Go names it (`int`, `*main.job`), from
/// `hchan.elemtype`; `types` is the module's link-time types range.
fn elem_type(ctx: &Ctx<'_>, addr: u64, types: (u64, u64), bias: u64) -> Option<String> {
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
            Ok(q) => {
                *out = waiter_ids(ctx, &q.gs);
                why = why.or(q.why);
            }
            Err(e) => why = why.or(Some(e)),
        }
    }
    s.unreadable = why;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The channel 10 goroutines wait on is a part's whole work; the five
    /// with one waiter each, the other's. Nil channels are no work.
    #[test]
    fn parts_share_the_waiters_not_the_channels() {
        let mut waits = Waits::default();
        let chan = |chan| WaitsOn::Chan {
            chan,
            op: ChanOp::Recv,
        };
        for id in 1..=10 {
            waits.by_goroutine.insert(id, chan(0xa000));
        }
        for (id, c) in (11..).zip([0xb000, 0xc000, 0xd000, 0xe000]) {
            waits.by_goroutine.insert(id, chan(c));
        }
        let cases = vec![(0xf000, ChanOp::Send), (0xa000, ChanOp::Recv)];
        waits.by_goroutine.insert(20, WaitsOn::Select { cases });
        waits.by_goroutine.insert(21, chan(0));
        let mut parts = waited_parts(&waits, 2);
        parts.iter_mut().for_each(|p| p.sort_unstable());
        parts.sort();
        assert_eq!(
            parts,
            [vec![0xa000], vec![0xb000, 0xc000, 0xd000, 0xe000, 0xf000]]
        );
        assert_eq!(waited_parts(&waits, 1)[0].len(), 6);
        assert_eq!(
            waited_parts(&Waits::default(), 4).concat(),
            Vec::<u64>::new()
        );
    }
}
