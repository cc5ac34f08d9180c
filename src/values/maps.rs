//! Go maps: `map[K]V len: N, [k: v, ...]`. Entries of a classic (bucketed,
//! before Go 1.24) map come from the linker's `hash<K,V>` with `B`,
//! `buckets`, `oldbuckets`, and `bucket<K,V>` with `tophash`, `keys`,
//! `values`, `overflow`; swiss maps (Go 1.24+) are in `swiss.rs`.

use std::collections::HashSet;
use std::fmt::Write;

use super::{Place, Scope, Value, VarError};

/// Most buckets (including overflow buckets) walked.
const MAX_BUCKETS: u64 = 1 << 14;
/// `tophash` values below this mark empty or evacuated slots.
const MIN_TOP_HASH: u8 = 5;
/// `hmap.flags` bit of a same-size grow (old buckets as many as new).
const SAME_SIZE_GROW: u8 = 8;

/// Entries read from a map, and why the walk ended early if it did (a
/// read failed or a bound was hit before `max` entries were found).
#[derive(Default)]
pub struct Entries {
    pub pairs: Vec<(Value, Value)>,
    pub partial: Option<String>,
}

impl Entries {
    pub fn push(&mut self, key: Value, val: Value) {
        self.pairs.push((key, val));
    }

    /// Marks the walk as cut short by a failed read at `addr`.
    pub fn unreadable(&mut self, addr: u64) {
        self.partial
            .get_or_insert_with(|| format!("unreadable memory at {addr:#x}"));
    }
}

impl Scope<'_> {
    /// A map's or channel's pointer to its runtime header (`None` for nil),
    /// and the header's DWARF type, the target of the pointer type `lay`.
    pub(super) fn runtime_header(
        &self,
        v: &Value,
        lay: usize,
    ) -> Result<Option<(u64, Option<usize>)>, VarError> {
        let p = self.read_u64(&v.place, 0)?;
        Ok((p != 0).then(|| (p, self.ty(lay).and_then(|t| t.target))))
    }

    /// `map[K]V nil`, `map[K]V len: N`, plus the entries when readable.
    pub(super) fn fmt_map(
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
        let kv = self.map_key_elem(v.ty);
        let off = hdr
            .and_then(|h| self.member(h, "count").or_else(|| self.member(h, "used")))
            .map_or(0, |(o, _)| o);
        let count = self.read_u64(&Place::Mem(p), off)?;
        let mut s = format!("{name} len: {count}");
        let lim = self.lim();
        let max = lim.array_values as usize;
        let entries = hdr
            .filter(|_| depth < lim.depth && count > 0)
            .and_then(|h| {
                self.map_entries(p, h, kv, max)
                    .or_else(|| self.swiss_entries(p, h, kv, max))
            });
        if let Some(e) = entries {
            let shown: Vec<String> = e
                .pairs
                .iter()
                .map(|(k, v)| {
                    let k = self.fmt_value(k, depth + 1, seen);
                    format!("{k}: {}", self.fmt_value(v, depth + 1, seen))
                })
                .collect();
            let more = count.saturating_sub(shown.len() as u64);
            let _ = write!(s, ", {}", list(&shown, more, e.partial.as_deref()));
        }
        Ok(s)
    }

    /// A map's key and value types: on the `map[K]V` typedef itself, which
    /// may sit behind a named type's typedefs.
    pub(super) fn map_key_elem(&self, ty: usize) -> (Option<usize>, Option<usize>) {
        let mut cur = ty;
        for _ in 0..16 {
            let Some(t) = self.ty(cur) else { break };
            if t.key.is_some() || t.elem.is_some() {
                return (t.key, t.elem);
            }
            match (t.tag, t.target) {
                (gimli::DW_TAG_typedef, Some(next)) => cur = next,
                _ => break,
            }
        }
        (None, None)
    }

    /// Up to `max` (key, value) pairs of the classic map whose header is at
    /// `hmap`, with its header type `hdr`; `None` when the layout is not
    /// the classic one. A growing map's entries are in the old buckets not
    /// yet evacuated (evacuated slots are marked below `MIN_TOP_HASH`) and
    /// in the new ones.
    pub fn map_entries(
        &self,
        hmap: u64,
        hdr: usize,
        kv: (Option<usize>, Option<usize>),
        max: usize,
    ) -> Option<Entries> {
        let at = Place::Mem(hmap);
        let (b_off, _) = self.member(hdr, "B")?;
        let (flags_off, _) = self.member(hdr, "flags")?;
        let (buckets_off, bucket_ptr) = self.member(hdr, "buckets")?;
        let (old_off, _) = self.member(hdr, "oldbuckets")?;
        let bucket = self.layout(bucket_ptr)?.1.target?;
        let mut out = Entries::default();
        let (Ok(hb), Ok(first), Ok(old)) = (
            self.read(&at, b_off, 2),
            self.read_u64(&at, buckets_off),
            self.read_u64(&at, old_off),
        ) else {
            out.unreadable(hmap);
            return Some(out);
        };
        let b = hb[0].min(40);
        let flags = self.read(&at, flags_off, 1).map_or(0, |f| f[0]);
        let mut walk = Walk {
            bucket,
            kv,
            seen: HashSet::new(),
            walked: 0,
        };
        if old != 0 {
            let old_b = if flags & SAME_SIZE_GROW != 0 {
                b
            } else {
                b.saturating_sub(1)
            };
            self.walk_buckets(&mut walk, old, old_b, max, &mut out)?;
        }
        self.walk_buckets(&mut walk, first, b, max, &mut out)?;
        Some(out)
    }

    /// The full slots of the `1 << b` buckets at `first` and their
    /// overflow chains, appended to `out` (up to `max`).
    fn walk_buckets(
        &self,
        w: &mut Walk,
        first: u64,
        b: u8,
        max: usize,
        out: &mut Entries,
    ) -> Option<()> {
        let size = self.size(w.bucket);
        let (top_off, _) = self.member(w.bucket, "tophash")?;
        let (keys_off, keys) = self.member(w.bucket, "keys")?;
        let (vals_off, vals) = self.member(w.bucket, "values")?;
        let (over_off, _) = self.member(w.bucket, "overflow")?;
        let (kt, vt) = (self.layout(keys)?.1.target?, self.layout(vals)?.1.target?);
        // Sizes of the slots, which hold pointers to keys or values over
        // 128 bytes.
        let (ks, vs) = (self.size(kt), self.size(vt));
        let kind =
            |slot: usize, want: Option<usize>| match want.and_then(|w| self.indirect(slot, w)) {
                Some(w) => (w, true),
                None => (slot, false),
            };
        let ((kt, k_ind), (vt, v_ind)) = (kind(kt, w.kv.0), kind(vt, w.kv.1));
        let slots = self.layout(keys)?.1.count?.min(8);
        for i in 0..(1u64 << b) {
            let Some(mut bp) = i.checked_mul(size).and_then(|o| first.checked_add(o)) else {
                out.unreadable(first);
                return Some(());
            };
            while bp != 0 {
                if out.pairs.len() >= max {
                    return Some(());
                }
                w.walked += 1;
                if w.walked > MAX_BUCKETS {
                    out.partial.get_or_insert_with(|| "too many buckets".into());
                    return Some(());
                }
                if !w.seen.insert(bp) {
                    out.partial.get_or_insert_with(|| "bucket cycle".into());
                    break;
                }
                let here = Place::Mem(bp);
                let Ok(top) = self.read(&here, top_off, slots) else {
                    out.unreadable(bp);
                    break;
                };
                for (s, &t) in top.iter().enumerate() {
                    if t >= MIN_TOP_HASH && out.pairs.len() < max {
                        let s = s as u64;
                        let key = self.slot(kt, k_ind, bp.wrapping_add(keys_off + s * ks));
                        let val = self.slot(vt, v_ind, bp.wrapping_add(vals_off + s * vs));
                        match (key, val) {
                            (Ok(k), Ok(v)) => out.push(k, v),
                            (Err(a), _) | (_, Err(a)) => out.unreadable(a),
                        }
                    }
                }
                bp = match self.read_u64(&here, over_off) {
                    Ok(next) => next,
                    Err(_) => {
                        out.unreadable(bp);
                        break;
                    }
                };
            }
        }
        Some(())
    }
}

/// State shared by the walks of a map's old and new buckets.
struct Walk {
    bucket: usize,
    /// The map's own key and value types (a slot may hold a pointer to one).
    kv: (Option<usize>, Option<usize>),
    seen: HashSet<u64>,
    walked: u64,
}

/// `[a, b,...+N more]`, with `<partial: WHY>` when a walk ended early.
pub(super) fn list(shown: &[String], more: u64, partial: Option<&str>) -> String {
    let mut s = format!("[{}", shown.join(", "));
    if more > 0 {
        let sep = if shown.is_empty() { "" } else { "," };
        let _ = write!(s, "{sep}...+{more} more");
    }
    if let Some(why) = partial {
        let sep = if shown.is_empty() && more == 0 {
            ""
        } else {
            ", "
        };
        let _ = write!(s, "{sep}<partial: {why}>");
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_mark_what_is_missing() {
        let ab = ["a".to_string(), "b".to_string()];
        assert_eq!(list(&ab, 0, None), "[a, b]");
        assert_eq!(list(&ab, 3, None), "[a, b,...+3 more]");
        assert_eq!(
            list(&ab[..1], 1, Some("unreadable memory at 0x10")),
            "[a,...+1 more, <partial: unreadable memory at 0x10>]"
        );
        assert_eq!(list(&[], 0, Some("x")), "[<partial: x>]");
        assert_eq!(list(&[], 2, Some("x")), "[...+2 more, <partial: x>]");
    }
}
