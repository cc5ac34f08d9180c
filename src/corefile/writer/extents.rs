//! Where in the core file each range of the target's memory has been
//! copied to, for live mode: ranges are copied while the target runs, in
//! the order they turn up, so a mapping's bytes may lie in several places.

use std::collections::BTreeMap;

/// `[start, end)` of memory, copied to the file at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
}

impl Extent {
    /// The file offset of `addr`, which must lie in the extent.
    pub fn offset_of(&self, addr: u64) -> u64 {
        self.offset + (addr - self.start)
    }
}

/// Non-overlapping extents, by start address.
#[derive(Debug, Default)]
pub struct Extents {
    by_start: BTreeMap<u64, Extent>,
}

/// A piece of a range: copied (with its extent) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Copied(Extent),
    Missing { start: u64, end: u64 },
}

impl Extents {
    pub fn insert(&mut self, e: Extent) {
        self.remove(e.start, e.end);
        if e.end > e.start {
            self.by_start.insert(e.start, e);
        }
    }

    /// Forgets `[start, end)` (its copy is stale): extents overlapping it
    /// are cut back to what lies outside.
    pub fn remove(&mut self, start: u64, end: u64) {
        let hit: Vec<Extent> = self.overlapping(start, end).collect();
        for e in hit {
            self.by_start.remove(&e.start);
            if e.start < start {
                let left = Extent { end: start, ..e };
                self.by_start.insert(left.start, left);
            }
            if e.end > end {
                let right = Extent {
                    start: end,
                    end: e.end,
                    offset: e.offset_of(end),
                };
                self.by_start.insert(right.start, right);
            }
        }
    }

    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = Extent> + '_ {
        // The one extent starting before `start` may reach into the range.
        let before = self.by_start.range(..start).next_back().map(|(_, e)| *e);
        let inside = self.by_start.range(start..end).map(|(_, e)| *e);
        before
            .into_iter()
            .chain(inside)
            .filter(move |e| e.end > start && e.start < end)
    }

    /// `[start, end)` cut into copied pieces (clipped to the range, the
    /// extent's offset moved along) and missing ones, in address order.
    pub fn pieces(&self, start: u64, end: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut at = start;
        for e in self.overlapping(start, end) {
            let s = e.start.max(start);
            if s > at {
                out.push(Piece::Missing { start: at, end: s });
            }
            let t = e.end.min(end);
            out.push(Piece::Copied(Extent {
                start: s,
                end: t,
                offset: e.offset_of(s),
            }));
            at = t;
        }
        if at < end {
            out.push(Piece::Missing { start: at, end });
        }
        out
    }

    /// The extent holding `addr`, if any.
    pub fn find(&self, addr: u64) -> Option<Extent> {
        self.by_start
            .range(..=addr)
            .next_back()
            .map(|(_, e)| *e)
            .filter(|e| addr < e.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(start: u64, end: u64, offset: u64) -> Extent {
        Extent { start, end, offset }
    }

    #[test]
    fn pieces_clip_extents_and_name_the_gaps() {
        let mut x = Extents::default();
        x.insert(ext(0x1000, 0x3000, 0x10000));
        x.insert(ext(0x5000, 0x6000, 0x20000));
        assert_eq!(
            x.pieces(0x2000, 0x7000),
            [
                Piece::Copied(ext(0x2000, 0x3000, 0x11000)),
                Piece::Missing {
                    start: 0x3000,
                    end: 0x5000
                },
                Piece::Copied(ext(0x5000, 0x6000, 0x20000)),
                Piece::Missing {
                    start: 0x6000,
                    end: 0x7000
                },
            ]
        );
        assert_eq!(x.find(0x2fff), Some(ext(0x1000, 0x3000, 0x10000)));
        assert_eq!(x.find(0x3000), None);
    }

    #[test]
    fn remove_and_insert_keep_extents_apart() {
        let mut x = Extents::default();
        x.insert(ext(0x1000, 0x5000, 0x10000));
        x.remove(0x2000, 0x3000);
        assert_eq!(x.find(0x1000), Some(ext(0x1000, 0x2000, 0x10000)));
        assert_eq!(x.find(0x2000), None);
        assert_eq!(x.find(0x4000), Some(ext(0x3000, 0x5000, 0x12000)));
        x.insert(ext(0x1800, 0x3800, 0x40000));
        assert_eq!(
            x.pieces(0x1000, 0x5000),
            [
                Piece::Copied(ext(0x1000, 0x1800, 0x10000)),
                Piece::Copied(ext(0x1800, 0x3800, 0x40000)),
                Piece::Copied(ext(0x3800, 0x5000, 0x12800)),
            ]
        );
    }
}
