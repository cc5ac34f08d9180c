//! A channel's contents: the buffered elements in receive order and the
//! goroutines waiting to send or receive, from the linker's `hchan<T>`,
//! `waitq<T>` and `sudog<T>` DWARF types.

use std::collections::HashSet;

use super::{Place, Scope, Value};

/// Most waiting goroutines listed per queue.
const MAX_WAITERS: usize = 16;

/// What a channel holds beyond its counts.
pub struct ChanContents {
    pub elems: Vec<Value>,
    pub receivers: Vec<u64>,
    pub senders: Vec<u64>,
    /// More waiters than listed (the walk stopped at the cap or a cycle).
    pub more_waiters: bool,
}

impl Scope<'_> {
    /// Up to `max` buffered elements and the waiters of the channel at
    /// `hchan` (type `hdr` = `hchan<T>`), `elem` its element type.
    pub fn chan_contents(
        &self,
        hchan: u64,
        hdr: usize,
        elem: Option<usize>,
        max: u64,
    ) -> Option<ChanContents> {
        let at = Place::Mem(hchan);
        let field = |n: &str| self.member(hdr, n).map(|m| m.0);
        let count = self.read_u64(&at, field("qcount")?).ok()?;
        let cap = self.read_u64(&at, field("dataqsiz")?).ok()?;
        let mut elems = Vec::new();
        if let (Some(ty), true) = (elem, cap > 0) {
            let buf = self.read_u64(&at, field("buf")?).ok()?;
            let recvx = self.read_u64(&at, field("recvx")?).ok()?;
            let size = self.size(ty);
            for i in 0..count.min(cap).min(max) {
                let slot = (recvx + i) % cap;
                elems.push(Value {
                    ty,
                    place: Place::Mem(buf + slot * size),
                });
            }
        }
        let mut more_waiters = false;
        let mut queue = |name: &str| -> Vec<u64> {
            let (ids, more) = self.waiters(hchan, hdr, name).unwrap_or_default();
            more_waiters |= more;
            ids
        };
        let receivers = queue("recvq");
        let senders = queue("sendq");
        Some(ChanContents {
            elems,
            receivers,
            senders,
            more_waiters,
        })
    }

    /// `T` of `hchan<T>`, through `recvq.first` (`*sudog<T>`) and its
    /// `elem` (`*T`).
    pub fn chan_elem_from_sudog(&self, hdr: usize) -> Option<usize> {
        let (_, q) = self.member(hdr, "recvq")?;
        let (_, first) = self.member(q, "first")?;
        let sudog = self.layout(first)?.1.target?;
        let (_, elem_ptr) = self.member(sudog, "elem")?;
        self.layout(elem_ptr)?.1.target
    }

    /// Goroutine ids on the `name` wait queue (`recvq`/`sendq`).
    fn waiters(&self, hchan: u64, hdr: usize, name: &str) -> Option<(Vec<u64>, bool)> {
        let (q_off, q_ty) = self.member(hdr, name)?;
        let (first_off, first_ty) = self.member(q_ty, "first")?;
        let sudog = self.layout(first_ty)?.1.target?;
        let (g_off, g_ptr) = self.member(sudog, "g")?;
        let (next_off, _) = self.member(sudog, "next")?;
        let (goid_off, _) = self.member(self.layout(g_ptr)?.1.target?, "goid")?;
        let mut s = self.read_u64(&Place::Mem(hchan + q_off), first_off).ok()?;
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        while s != 0 {
            if ids.len() >= MAX_WAITERS || !seen.insert(s) {
                return Some((ids, true));
            }
            let here = Place::Mem(s);
            let g = self.read_u64(&here, g_off).ok()?;
            if g != 0 {
                ids.push(self.read_u64(&Place::Mem(g), goid_off).ok()?);
            }
            s = self.read_u64(&here, next_off).ok()?;
        }
        Some((ids, false))
    }
}
