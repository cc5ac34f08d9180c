//! The final stop's capture made from the running copy's plan, when the
//! goroutine list is the one the plan read: only the goroutines whose `g`
//! was written since are decided again, and only ranges the copy does not
//! hold whole are looked at. A million goroutines cost the full capture
//! (`collect::capture_with`) 35-60 ms of the stop in passes over every
//! goroutine; this path's stop work grows with what changed instead.
//!
//! It asks for the same ranges as a stop capture and gets the same bytes,
//! for the reasons the full path does (see the parent module): a decision
//! is reused only where the `g`'s bytes are unchanged since it was made,
//! and a range is served from the copy only where one refreshed span holds
//! it whole. The list of ranges a stop capture would have asked for, which
//! `assemble` keeps and the test hook compares, is built from the plan
//! after the target runs again ([`Deferred::asked`]).
//!
//! Anything off the common case (the list changed, a run of `g`s not held,
//! the byte budget reached) gives `None`, and the full capture runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{overlaps, Asked, Finished, InStop, Precopy, Spans};
use crate::goruntime::capture_plan::{GSaid, Plan};
use crate::goruntime::collect::{
    self, running_want, said_of, Capture, Fetch, ThreadSps, Wants, CAPTURE_BUDGET,
};
use crate::process::{CapturedMemory, Memory, MemoryExt, Target};

/// What the running copy's plan adds up to, kept up to date as goroutines
/// are decided again: what the stop needs without a pass over all of them.
#[derive(Debug, Default)]
pub(super) struct Ready {
    /// Indices of the plan's goroutines, by `g` address: the goroutines a
    /// written page holds are found by a search per page, not a pass.
    order: Vec<u32>,
    /// Whether the `allgs` array and every merged run of `g`s are held
    /// whole by one span each.
    list_held: bool,
    runs_held: bool,
    /// Ms named by live goroutines, and by how many.
    ms: BTreeMap<u64, u32>,
    /// Goroutines on a thread (their ranges depend on its registers).
    running: BTreeSet<u32>,
    /// Parked goroutines whose stack range no single span holds.
    unheld: BTreeSet<u32>,
    /// Goroutines whose `g` could not be read.
    unread: BTreeSet<u32>,
    /// The parked goroutines' stack bytes.
    parked_bytes: u64,
}

impl Ready {
    /// Adds (`sign` 1) or takes away (-1) what goroutine `i` saying `said`
    /// contributes; `held(range)` says whether a parked goroutine's stack
    /// range is held whole (asked only when adding).
    fn count(&mut self, i: u32, said: &GSaid, sign: i8, held: impl FnOnce((u64, usize)) -> bool) {
        let m = match said {
            GSaid::Parked { m, stack } => {
                if let Some(r) = *stack {
                    let n = r.1 as u64;
                    match sign > 0 {
                        true => self.parked_bytes = self.parked_bytes.saturating_add(n),
                        false => self.parked_bytes = self.parked_bytes.saturating_sub(n),
                    }
                    if sign > 0 && !held(r) {
                        self.unheld.insert(i);
                    }
                }
                *m
            }
            GSaid::Running(f) => {
                flip(&mut self.running, i, sign);
                f.m
            }
            GSaid::Unread => {
                flip(&mut self.unread, i, sign);
                0
            }
            GSaid::Dead => 0,
        };
        if sign < 0 {
            self.unheld.remove(&i);
        }
        if m != 0 {
            let c = self.ms.entry(m).or_insert(0);
            match sign > 0 {
                true => *c = c.saturating_add(1),
                false => *c = c.saturating_sub(1),
            }
            if *c == 0 {
                self.ms.remove(&m);
            }
        }
    }

    /// Goroutine `i` now says `said`.
    fn set(&mut self, plan: &mut Plan, i: u32, said: GSaid, spans: &Spans) {
        let Some(slot) = plan.said.get_mut(i as usize) else {
            return;
        };
        let old = std::mem::replace(slot, said);
        self.count(i, &old, -1, |_| true);
        let new = &plan.said[i as usize];
        self.count(i, new, 1, |r| spans.holds(r));
    }

    /// Indices of the goroutines whose `g` overlaps one of `ranges`
    /// (sorted, disjoint `[start, end)`), ascending.
    fn gs_in(&self, gs: &[u64], gsize: u64, ranges: &[(u64, u64)]) -> Vec<u32> {
        let mut hit = Vec::new();
        for &(s, e) in ranges {
            // g + gsize > s, i.e. g >= s - gsize + 1.
            let low = s.saturating_sub(gsize.saturating_sub(1));
            let from = self.order.partition_point(|&i| gs[i as usize] < low);
            hit.extend(
                self.order[from..]
                    .iter()
                    .take_while(|&&i| gs[i as usize] < e)
                    .copied(),
            );
        }
        hit.sort_unstable();
        hit.dedup();
        hit
    }
}

fn flip(set: &mut BTreeSet<u32>, i: u32, sign: i8) {
    match sign > 0 {
        true => set.insert(i),
        false => set.remove(&i),
    };
}

/// What the stop decided, for building the list of ranges a stop capture
/// would have asked for once the target runs again.
#[derive(Debug)]
pub(super) struct Deferred {
    list: (u64, usize),
    runs: Vec<(u64, usize)>,
    m_asks: Asked,
    said: Vec<GSaid>,
    /// The running goroutines' ranges (signal stack, stack).
    wants: BTreeMap<u32, Wants>,
    /// Stack ranges read in the stop, by goroutine, and whether they
    /// could be; every other stack range is held by the copy.
    stack_ok: HashMap<u32, bool>,
    signal_asks: Asked,
    wait_asks: Asked,
}

impl Deferred {
    /// The ranges asked for, in a stop capture's order
    /// (`collect::capture_with`): the list, the runs of `g`s, the Ms, the
    /// stacks in list order, the signal stacks, the wait reasons.
    pub(super) fn asked(&self) -> Asked {
        let mut a = Vec::with_capacity(self.said.len() + self.runs.len() + 16);
        a.push((self.list, true));
        a.extend(self.runs.iter().map(|&r| (r, true)));
        a.extend_from_slice(&self.m_asks);
        a.extend(self.stack_asks().map(|(_, ask)| ask));
        a.extend_from_slice(&self.signal_asks);
        a.extend_from_slice(&self.wait_asks);
        a
    }

    /// The stacks asked for, in list order (the decode's), each with its
    /// goroutine's place in the list and whether it could be read.
    pub(super) fn stack_asks(&self) -> impl Iterator<Item = (usize, ((u64, usize), bool))> + '_ {
        self.said.iter().enumerate().filter_map(|(i, s)| {
            let k = i as u32;
            let r = match s {
                GSaid::Parked { stack: Some(r), .. } => *r,
                GSaid::Running(_) => self.wants.get(&k).and_then(|w| w.1)?,
                _ => return None,
            };
            Some((i, (r, self.stack_ok.get(&k).copied().unwrap_or(true))))
        })
    }
}

/// [`InStop`] as a [`Fetch`] that lists what it was asked, for the few
/// reads made through `collect`'s own helpers (signal stacks, wait
/// reasons).
struct Listing<'a, 'b> {
    stop: &'a mut InStop<'b>,
    asked: Asked,
}

impl Fetch for Listing<'_, '_> {
    fn fetch(
        &mut self,
        mem: &mut CapturedMemory,
        ranges: &[(u64, usize)],
        _seen: &mut dyn FnMut(u64, &[u8]),
    ) -> Vec<bool> {
        let ok = self.stop.resolve(mem, ranges, |_, _| false);
        self.asked
            .extend(ranges.iter().copied().zip(ok.iter().copied()));
        ok
    }
}

impl Precopy<'_> {
    /// While the target runs, after the round: decides again the
    /// goroutines whose `g` the round re-read (so that the stop finds only
    /// what was written after it), copies the stacks they now name, and
    /// sums the plan up ([`Ready`]). Leaves no [`Ready`] when the plan
    /// cannot serve (the `allgs` array itself was written).
    pub(super) fn prepare_ready(&mut self, mem: &dyn Memory) {
        self.ready = None;
        let n = self.plan.gs.len();
        if n == 0 || self.plan.said.len() != n || u32::try_from(n).is_err() {
            return;
        }
        let (la, ll) = self.plan.list;
        let Some(list_end) = la.checked_add(ll as u64) else {
            return;
        };
        if overlaps(&self.refreshed, la, list_end) {
            return;
        }
        let gsize = self.layout.g.size;
        let gs = &self.plan.gs;
        let mut by_addr: Vec<(u64, u32)> = gs.iter().zip(0u32..).map(|(&g, i)| (g, i)).collect();
        by_addr.sort_unstable();
        let mut ready = Ready {
            order: by_addr.into_iter().map(|(_, i)| i).collect(),
            ..Ready::default()
        };
        self.held_from_running_asks(&mut ready);
        // Decided again from the refreshed copy: the plan then holds what
        // the copy's bytes say, and only later writes need the stop.
        let again = ready.gs_in(&self.plan.gs, gsize, &self.refreshed);
        let mut gbuf = vec![0u8; gsize as usize];
        let said: Vec<GSaid> = again
            .iter()
            .map(|&i| {
                said_of(
                    &self.copy.mem,
                    self.layout,
                    self.plan.gs[i as usize],
                    &mut gbuf,
                )
            })
            .collect();
        // The stacks they name now, copied before they are counted (held).
        let want: Vec<(u64, usize)> = said
            .iter()
            .filter_map(|s| match s {
                GSaid::Parked { stack, .. } => *stack,
                _ => None,
            })
            .collect();
        if !want.is_empty() {
            let mut copy = std::mem::take(&mut self.copy.mem);
            self.copy_in(&mut copy, mem, &want, &mut |_, _| {});
            self.copy.mem = copy;
        }
        for (&i, said) in again.iter().zip(said) {
            ready.set(&mut self.plan, i, said, &self.spans);
        }
        // What the plan was decided from is the copy as it is now, but for
        // the stacks just read (no `g` lies there, but a hostile list may
        // say otherwise): the stop decides again only what overlaps those.
        // Looked for here, while the target runs: after a garbage
        // collection every stack is new (shrunk or moved) and was just
        // read, and a million ranges to sort and search again in the stop
        // took 80 ms of it.
        let read = super::runs_of(&want);
        self.refreshed = match ready.gs_in(&self.plan.gs, gsize, &read).is_empty() {
            true => Vec::new(),
            false => read,
        };
        ready.list_held = ll == 0 || self.spans.holds(self.plan.list);
        ready.runs_held = self.plan.g_runs.runs.iter().all(|&r| self.spans.holds(r));
        self.ready = Some(ready);
    }

    /// Counts every goroutine's decision into `ready`, taking whether its
    /// stack range is held whole from what the running capture's stacks
    /// fetch got (one range per goroutine with a stack, in list order)
    /// rather than from a search per goroutine.
    fn held_from_running_asks(&self, ready: &mut Ready) {
        let asks = self
            .running_asks
            .get(self.plan.stacks_call)
            .map_or(&[][..], |v| &v[..]);
        let mut at = 0;
        for (i, said) in (0u32..).zip(&self.plan.said) {
            // The running capture had no threads: a running goroutine's
            // stack was asked for from its g alone.
            let asked = match said {
                GSaid::Parked { stack, .. } => *stack,
                GSaid::Running(f) => running_want(f, None).1,
                _ => None,
            };
            let matched = asked.is_some() && asks.get(at).map(|a| Some(a.0)) == Some(asked);
            let whole = matched && asks.get(at).is_some_and(|a| a.1);
            if matched {
                at += 1;
            }
            ready.count(i, said, 1, |r| whole || self.spans.holds(r));
        }
    }

    /// The final stop's capture from the plan, with every thread of the
    /// target stopped (`t`); `None` when the plan cannot serve, and the
    /// full capture must run.
    pub(super) fn capture_ready(&mut self, t: &dyn Target, now: Option<i64>) -> Option<Finished> {
        let mut ready = self.ready.take()?;
        let layout = self.layout;
        let gsize = layout.g.size;
        let allgs = self.globals.allgs;
        // The list, as `collect::read_allgs` reads it: the plan's, held
        // whole and not written since.
        let ptr = t.read_u64(allgs).ok()?;
        let len = t.read_u64(allgs.checked_add(8)?).ok()?;
        let list = (ptr, usize::try_from(len.checked_mul(8)?).ok()?);
        let list_end = ptr.checked_add(list.1 as u64)?;
        let plan = &mut self.plan;
        let n = plan.gs.len() as u64;
        if list != plan.list
            || !ready.list_held
            || !ready.runs_held
            || overlaps(&self.refreshed, ptr, list_end)
            || n.checked_mul(gsize)? > CAPTURE_BUDGET
        {
            return None;
        }
        let mut again = ready.gs_in(&plan.gs, gsize, &self.refreshed);
        again.extend(ready.unread.iter().copied());
        again.sort_unstable();
        again.dedup();
        let mut gbuf = vec![0u8; gsize as usize];
        for &i in &again {
            let said = said_of(&self.copy.mem, layout, plan.gs[i as usize], &mut gbuf);
            ready.set(plan, i, said, &self.spans);
        }

        let mut whole = Vec::new();
        let mut stop = InStop {
            spans: &self.spans,
            whole: &mut whole,
            target: t,
            stats: &mut self.stats,
        };
        let mem = &mut self.copy.mem;
        let mranges = collect::m_ranges(ready.ms.keys().copied(), layout);
        let m_ok = stop.resolve(mem, &mranges, |_, _| false);
        let m_asks: Asked = mranges.into_iter().zip(m_ok).collect();

        // The running goroutines' ranges, from their threads' registers.
        let sps = ThreadSps::of(t.threads());
        let mut wants = BTreeMap::new();
        let mut running_bytes = 0u64;
        for &i in &ready.running {
            let Some(GSaid::Running(p)) = plan.said.get(i as usize) else {
                continue;
            };
            let w = sps.want(p, &*mem, layout);
            running_bytes += w.0.map_or(0, |r| r.1 as u64) + w.1.map_or(0, |r| r.1 as u64);
            wants.insert(i, w);
        }
        // Within the budget, no goroutine is left out, as in a stop capture.
        let spent = (n * gsize)
            .checked_add(ready.parked_bytes)?
            .checked_add(running_bytes)?;
        if spent > CAPTURE_BUDGET {
            return None;
        }

        // Stack ranges the copy may not hold whole, in list order.
        let mut look: Vec<(u32, (u64, usize))> = Vec::new();
        for &i in &ready.unheld {
            if let Some(GSaid::Parked { stack: Some(r), .. }) = plan.said.get(i as usize) {
                look.push((i, *r));
            }
        }
        look.extend(wants.iter().filter_map(|(&i, w)| Some((i, w.1?))));
        look.sort_unstable_by_key(|l| l.0);
        let ranges: Vec<(u64, usize)> = look.iter().map(|l| l.1).collect();
        let ok = stop.resolve(mem, &ranges, |_, _| false);
        let stack_ok = look.iter().map(|l| l.0).zip(ok).collect();

        let mut listing = Listing {
            stop: &mut stop,
            asked: Vec::new(),
        };
        let signals: Vec<(u64, usize)> = wants.values().filter_map(|w| w.0).collect();
        let mut cap = Capture {
            mem: std::mem::take(mem),
            threads: t.threads().to_vec(),
            now,
            ..Capture::default()
        };
        collect::read_signal_stacks(&mut listing, &mut cap, &signals);
        let signal_asks = std::mem::take(&mut listing.asked);
        if let Some((addr, count)) = self.globals.wait_reasons {
            cap.wait_reasons = collect::read_wait_reasons(t, &mut listing, addr, count, &mut cap);
        }
        let wait_asks = listing.asked;
        // Left to count: the wait reasons' headers, read on their own;
        // `assemble` adds every range asked for.
        let listed: usize = signal_asks
            .iter()
            .chain(&wait_asks)
            .filter(|a| a.1)
            .map(|a| a.0 .1)
            .sum();
        cap.bytes = cap.bytes.saturating_sub(listed);
        cap.gs = std::mem::take(&mut plan.gs);
        self.stats.redecided = Some(again.len() as u64);
        Some(Finished {
            capture: cap,
            asked: None,
            deferred: Some(Deferred {
                list,
                runs: std::mem::take(&mut plan.g_runs.runs),
                m_asks,
                said: std::mem::take(&mut plan.said),
                wants,
                stack_ok,
                signal_asks,
                wait_asks,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goruntime::capture_plan::StackFields;

    fn parked(m: u64, stack: Option<(u64, usize)>) -> GSaid {
        GSaid::Parked { m, stack }
    }

    #[test]
    fn the_goroutines_a_range_touches_are_found_by_address() {
        let gs = [0x5000, 0x1000, 0x3000, 0x2000];
        let mut order: Vec<u32> = (0..4).collect();
        order.sort_unstable_by_key(|&i| gs[i as usize]);
        let r = Ready {
            order,
            ..Ready::default()
        };
        // A g of 0x100 bytes: 0x10ff is its last byte, 0x1100 is past it.
        assert_eq!(r.gs_in(&gs, 0x100, &[(0x10ff, 0x1100)]), vec![1]);
        assert!(r.gs_in(&gs, 0x100, &[(0x1100, 0x2000)]).is_empty());
        assert_eq!(
            r.gs_in(&gs, 0x100, &[(0x0, 0x1001), (0x2fff, 0x5001)]),
            vec![0, 1, 2]
        );
        assert!(r.gs_in(&gs, 0x100, &[(u64::MAX - 1, u64::MAX)]).is_empty());
    }

    #[test]
    fn decisions_changed_keep_the_sums_a_full_pass_would_make() {
        let spans = Spans(vec![(0x8000, 0x9000)]);
        let mut plan = Plan {
            gs: vec![0x100, 0x200, 0x300],
            said: vec![GSaid::Dead, GSaid::Dead, GSaid::Dead],
            ..Plan::default()
        };
        let mut r = Ready::default();
        let running = GSaid::Running(Box::new(StackFields {
            status: 2,
            lo: 0,
            hi: 0,
            sched_sp: 0,
            syscallsp: 0,
            m: 0x70,
        }));
        r.set(&mut plan, 0, parked(0x70, Some((0x8800, 0x100))), &spans);
        r.set(&mut plan, 1, parked(0, Some((0x8f00, 0x200))), &spans);
        r.set(&mut plan, 2, running, &spans);
        assert_eq!(r.parked_bytes, 0x300);
        assert_eq!(r.ms.get(&0x70), Some(&2));
        assert_eq!(r.unheld.iter().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(r.running.iter().copied().collect::<Vec<_>>(), vec![2]);
        // Goroutine 1 exits, 2 parks, 0 cannot be read any more.
        r.set(&mut plan, 1, GSaid::Dead, &spans);
        r.set(&mut plan, 2, parked(0, None), &spans);
        r.set(&mut plan, 0, GSaid::Unread, &spans);
        assert_eq!(r.parked_bytes, 0);
        assert!(r.ms.is_empty() && r.unheld.is_empty() && r.running.is_empty());
        assert_eq!(r.unread.iter().copied().collect::<Vec<_>>(), vec![0]);
        // An index past the plan changes nothing.
        r.set(&mut plan, 7, GSaid::Dead, &spans);
        assert_eq!(plan.said.len(), 3);
    }

    #[test]
    fn the_deferred_list_is_in_a_stop_captures_order() {
        let run = GSaid::Running(Box::new(StackFields {
            status: 2,
            lo: 0x6000,
            hi: 0x7000,
            sched_sp: 0,
            syscallsp: 0,
            m: 0x70,
        }));
        let d = Deferred {
            list: (0x10, 16),
            runs: vec![(0x100, 0x200)],
            m_asks: vec![((0x70, 8), true)],
            said: vec![
                parked(0, Some((0x8800, 0x100))),
                GSaid::Dead,
                run,
                parked(0, None),
                parked(0, Some((0x9000, 0x80))),
            ],
            wants: BTreeMap::from([(2, (Some((0xa000, 0x10)), Some((0x6000, 0x1000))))]),
            stack_ok: HashMap::from([(4, false)]),
            signal_asks: vec![((0xa000, 0x10), true)],
            wait_asks: vec![((0x20, 4), true)],
        };
        let asked: Vec<_> = d.asked();
        assert_eq!(
            asked,
            vec![
                ((0x10, 16), true),
                ((0x100, 0x200), true),
                ((0x70, 8), true),
                ((0x8800, 0x100), true),
                ((0x6000, 0x1000), true),
                ((0x9000, 0x80), false),
                ((0xa000, 0x10), true),
                ((0x20, 4), true),
            ]
        );
    }
}
