//! Retained sizes, every node's, from the dominator tree: a node retains
//! itself and what it dominates. Summed by place (a node's dominator is
//! placed before it, so one pass from the last place up), then kept per
//! node, both in 8 bytes, not 12: bytes in units of 8 in a u32 (every Go size
//! class is a multiple of 8; up to 32 GiB), the rare value that does not
//! fit (a larger heap, or hostile sizes) exact in a map beside.

use std::collections::HashMap;

use super::dominators::Tree;

/// `units` of a node whose bytes are in `big`.
const BIG: u32 = u32::MAX;

pub(super) struct Retained {
    /// Per node: retained bytes / 8, or [`BIG`].
    units: Vec<u32>,
    big: HashMap<usize, u64>,
    /// Per node: retained objects (objects are numbered in a u32: so are
    /// the counts of them).
    objects: Vec<u32>,
}

impl Retained {
    /// Each node's retained bytes and objects; `sizes` gives each object
    /// node and its size. Takes the tree: its places are dropped as soon
    /// as the sums are made.
    pub fn sum(tree: Tree, sizes: impl Iterator<Item = (usize, u64)>) -> Retained {
        let Tree { place, idom } = tree;
        let reached = idom.len();
        // By place, in the same compact form: the sums need no more than
        // what they leave.
        let mut by_place = Retained {
            units: vec![0u32; reached],
            big: HashMap::new(),
            objects: vec![0u32; reached],
        };
        for (node, size) in sizes {
            if let Some(&p) = place.get(node) {
                if (p as usize) < reached {
                    by_place.set_bytes(p as usize, size);
                    by_place.objects[p as usize] = 1;
                }
            }
        }
        for p in (1..reached).rev() {
            let d = idom[p] as usize;
            if d < p {
                let bytes = by_place.bytes(d).saturating_add(by_place.bytes(p));
                by_place.set_bytes(d, bytes);
                by_place.objects[d] = by_place.objects[d].saturating_add(by_place.objects[p]);
            }
        }
        drop(idom);
        let mut big = HashMap::new();
        let units = place
            .iter()
            .enumerate()
            .map(|(node, &p)| match by_place.units.get(p as usize) {
                Some(&BIG) => {
                    big.insert(node, by_place.bytes(p as usize));
                    BIG
                }
                Some(&u) => u,
                None => 0,
            })
            .collect();
        by_place.units = Vec::new();
        let objects = place
            .iter()
            .map(|&p| by_place.objects(p as usize))
            .collect();
        Retained {
            units,
            big,
            objects,
        }
    }

    fn set_bytes(&mut self, i: usize, bytes: u64) {
        let Some(u) = self.units.get_mut(i) else {
            return;
        };
        if *u == BIG {
            self.big.remove(&i);
        }
        match u32::try_from(bytes / 8) {
            Ok(units) if bytes.is_multiple_of(8) && units != BIG => *u = units,
            _ => {
                *u = BIG;
                self.big.insert(i, bytes);
            }
        }
    }

    /// Retained bytes of `node` (0 for none).
    pub fn bytes(&self, node: usize) -> u64 {
        match self.units.get(node) {
            Some(&BIG) => self.big.get(&node).copied().unwrap_or(0),
            Some(&u) => u64::from(u) * 8,
            None => 0,
        }
    }

    /// Retained objects of `node`.
    pub fn objects(&self, node: usize) -> u32 {
        self.objects.get(node).copied().unwrap_or(0)
    }
}
