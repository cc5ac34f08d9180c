//! Channels: `chan T {len: 1, cap: 2, closed: false, elems: [7], recvq: [],
//! sendq: [goroutine 12]}`: the buffered elements in receive order and the
//! goroutines waiting to receive or send, from the linker's `hchan<T>`,
//! `waitq<T>` and `sudog<T>` DWARF types.

use std::collections::HashSet;
use std::fmt::Write;

use super::maps::list;
use super::{Place, Scope, Value, VarError};

/// Most waiting goroutines listed per queue.
const MAX_WAITERS: usize = 16;
/// Most waiting goroutines `goroutines -chan` collects per queue: no
/// process has more goroutines than the capture reads.
const MAX_ALL_WAITERS: usize = 1 << 24;

/// A wait queue's goroutine ids, and why the walk ended early if it did.
#[derive(Default)]
struct Waiters {
    ids: Vec<u64>,
    /// Some when more waiters may follow: a cap, a cycle or a failed read.
    partial: Option<String>,
}

impl Scope<'_> {
    /// The ids of every goroutine waiting to receive from (`recvq`), then
    /// to send to (`sendq`) the channel `v` (Delve's `goroutines -chan`);
    /// an error when `v` is not a channel or a queue cannot be read whole.
    pub fn chan_waiters(&self, v: &Value) -> Result<Vec<u64>, VarError> {
        if self.kind(v.ty) != super::types::kind::CHAN {
            return Err(VarError::NotChannel(self.type_name(v.ty)));
        }
        let (lay, _) = self.layout(v.ty).ok_or(VarError::UnknownType)?;
        let Some((p, hdr)) = self.runtime_header(v, lay)? else {
            return Ok(Vec::new());
        };
        let h = hdr.ok_or(VarError::UnknownType)?;
        let mut ids = Vec::new();
        for queue in ["recvq", "sendq"] {
            let w = self.waiters(p, h, queue, MAX_ALL_WAITERS);
            if let Some(why) = w.partial {
                return Err(VarError::WaitQueue { queue, why });
            }
            ids.extend(w.ids);
        }
        Ok(ids)
    }

    /// `chan T nil`, or the counts, buffered elements and waiters.
    pub(super) fn fmt_chan(
        &self,
        v: &Value,
        lay: usize,
        name: &str,
        depth: usize,
        seen: &mut HashSet<u64>,
    ) -> Result<String, VarError> {
        let Some((p, hdr)) = self.runtime_header(v, lay)? else {
            return Ok(format!("{name} nil"));
        };
        // Offsets from DWARF; the defaults are runtime.hchan's (1.19-1.27).
        let field = |n: &str, d: u64| hdr.and_then(|h| self.member(h, n)).map_or(d, |m| m.0);
        let at = Place::Mem(p);
        let len = self.read_u64(&at, field("qcount", 0))?;
        let cap = self.read_u64(&at, field("dataqsiz", 8))?;
        let closed = self.read(&at, field("closed", 0x1c), 4)?;
        let closed = closed.iter().any(|&b| b != 0);
        let mut s = format!("{name} {{len: {len}, cap: {cap}, closed: {closed}");
        let Some(h) = hdr.filter(|_| depth < self.lim().depth) else {
            s.push_str(", ...}");
            return Ok(s);
        };
        // The element type: on the channel's own DIE (a typedef of
        // *hchan<T>), else from sudog<T>.elem (*T).
        let elem = self
            .ty(v.ty)
            .and_then(|d| d.elem)
            .or_else(|| self.ty(lay).and_then(|t| t.elem))
            .or_else(|| self.chan_elem_from_sudog(h));
        let (elems, partial) = match elem {
            Some(ty) if cap > 0 => self.chan_elems(p, h, ty, len.min(cap), self.lim().array_values),
            Some(_) => (Vec::new(), None),
            None => (Vec::new(), Some("unknown element type".to_string())),
        };
        let shown: Vec<String> = elems
            .iter()
            .map(|e| self.fmt_value(e, depth + 1, seen))
            .collect();
        let more = len.min(cap).saturating_sub(shown.len() as u64);
        let _ = write!(s, ", elems: {}", list(&shown, more, partial.as_deref()));
        for q in ["recvq", "sendq"] {
            let w = self.waiters(p, h, q, MAX_WAITERS);
            let ids: Vec<String> = w.ids.iter().map(|g| format!("goroutine {g}")).collect();
            let _ = write!(s, ", {q}: {}", list(&ids, 0, w.partial.as_deref()));
        }
        s.push('}');
        Ok(s)
    }

    /// Up to `max` of the `n` buffered elements of the channel at `hchan`,
    /// oldest first (from `recvx`, wrapping at the capacity).
    fn chan_elems(
        &self,
        hchan: u64,
        hdr: usize,
        ty: usize,
        n: u64,
        max: u64,
    ) -> (Vec<Value>, Option<String>) {
        let at = Place::Mem(hchan);
        let field = |f: &str| self.member(hdr, f).map(|m| m.0);
        let (Some(buf_off), Some(recvx_off), Some(cap_off)) =
            (field("buf"), field("recvx"), field("dataqsiz"))
        else {
            return (Vec::new(), Some("no buf/recvx in hchan".into()));
        };
        let (Ok(buf), Ok(recvx), Ok(cap)) = (
            self.read_u64(&at, buf_off),
            self.read_u64(&at, recvx_off),
            self.read_u64(&at, cap_off),
        ) else {
            return (Vec::new(), Some(format!("unreadable memory at {hchan:#x}")));
        };
        if cap == 0 {
            return (Vec::new(), None);
        }
        let size = self.size(ty);
        let elems = (0..n.min(max))
            .map(|i| Value {
                ty,
                place: Place::Mem(
                    buf.wrapping_add((recvx.wrapping_add(i) % cap).wrapping_mul(size)),
                ),
            })
            .collect();
        (elems, None)
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

    /// Goroutine ids on the `name` wait queue (`recvq`/`sendq`), following
    /// `sudog.next` (at most `MAX_WAITERS`, stopping at a cycle).
    fn waiters(&self, hchan: u64, hdr: usize, name: &str, max: usize) -> Waiters {
        let mut w = Waiters::default();
        let layout = || {
            let (q_off, q_ty) = self.member(hdr, name)?;
            let (first_off, first_ty) = self.member(q_ty, "first")?;
            let sudog = self.layout(first_ty)?.1.target?;
            let (g_off, g_ptr) = self.member(sudog, "g")?;
            let (next_off, _) = self.member(sudog, "next")?;
            let (goid_off, _) = self.member(self.layout(g_ptr)?.1.target?, "goid")?;
            Some((q_off + first_off, g_off, next_off, goid_off))
        };
        let Some((first_off, g_off, next_off, goid_off)) = layout() else {
            w.partial = Some(format!("no {name} in the channel's DWARF type"));
            return w;
        };
        let mut s = match self.read_u64(&Place::Mem(hchan), first_off) {
            Ok(s) => s,
            Err(_) => {
                w.partial = Some(format!("unreadable memory at {hchan:#x}"));
                return w;
            }
        };
        let mut seen = HashSet::new();
        while s != 0 {
            if w.ids.len() >= max {
                w.partial = Some("more waiters".into());
                break;
            }
            if !seen.insert(s) {
                w.partial = Some("sudog cycle".into());
                break;
            }
            let here = Place::Mem(s);
            let step = self.read_u64(&here, g_off).and_then(|g| {
                let next = self.read_u64(&here, next_off)?;
                let id = match g {
                    0 => None,
                    g => Some(self.read_u64(&Place::Mem(g), goid_off)?),
                };
                Ok((id, next))
            });
            match step {
                Ok((id, next)) => {
                    w.ids.extend(id);
                    s = next;
                }
                Err(_) => {
                    w.partial = Some(format!("unreadable sudog at {s:#x}"));
                    break;
                }
            }
        }
        w
    }
}
