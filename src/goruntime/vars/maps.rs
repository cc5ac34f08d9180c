//! Entries of a classic (bucketed, pre-swiss) Go map: `hash<K,V>` with
//! `B`, `buckets`, `oldbuckets`, and `bucket<K,V>` with `tophash`, `keys`,
//! `values`, `overflow`. Swiss maps (Go 1.24+) are in `swiss.rs`.

use std::collections::HashSet;

use super::{Place, Scope, Value};

/// Most buckets (including overflow buckets) walked.
const MAX_BUCKETS: u64 = 4096;
/// `tophash` values below this mark empty or evacuated slots.
const MIN_TOP_HASH: u8 = 5;

impl Scope<'_> {
    /// Up to `max` (key, value) pairs of the map whose header is at `hmap`,
    /// with its header type `hdr`; `None` when the layout is not the
    /// classic one or the map is growing (entries may be in old buckets).
    pub fn map_entries(&self, hmap: u64, hdr: usize, max: usize) -> Option<Vec<(Value, Value)>> {
        let at = Place::Mem(hmap);
        let (b_off, _) = self.member(hdr, "B")?;
        let (buckets_off, bucket_ptr) = self.member(hdr, "buckets")?;
        let (old_off, _) = self.member(hdr, "oldbuckets")?;
        if self.read_u64(&at, old_off).ok()? != 0 {
            return None;
        }
        let b = self.read(&at, b_off, 1).ok()?[0];
        let bucket = self.layout(bucket_ptr)?.1.target?;
        let size = self.size(bucket);
        let (top_off, _) = self.member(bucket, "tophash")?;
        let (keys_off, keys) = self.member(bucket, "keys")?;
        let (vals_off, vals) = self.member(bucket, "values")?;
        let (over_off, _) = self.member(bucket, "overflow")?;
        let (kt, vt) = (self.layout(keys)?.1.target?, self.layout(vals)?.1.target?);
        let (ks, vs) = (self.size(kt), self.size(vt));
        let slots = self.layout(keys)?.1.count? as usize;
        let first = self.read_u64(&at, buckets_off).ok()?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut walked = 0;
        for i in 0..(1u64 << b.min(32)) {
            let mut bp = first.checked_add(i.checked_mul(size)?)?;
            while bp != 0 && out.len() < max {
                walked += 1;
                if walked > MAX_BUCKETS || !seen.insert(bp) {
                    return Some(out);
                }
                let here = Place::Mem(bp);
                let top = self.read(&here, top_off, slots as u64).ok()?;
                for (s, &t) in top.iter().enumerate() {
                    if t >= MIN_TOP_HASH && out.len() < max {
                        let s = s as u64;
                        out.push((
                            Value {
                                ty: kt,
                                place: Place::Mem(bp + keys_off + s * ks),
                            },
                            Value {
                                ty: vt,
                                place: Place::Mem(bp + vals_off + s * vs),
                            },
                        ));
                    }
                }
                bp = self.read_u64(&here, over_off).ok()?;
            }
        }
        Some(out)
    }
}
