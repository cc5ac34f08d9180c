//! Retained sizes, every node's, from the dominator tree: a node retains
//! itself and what it dominates. Summed by place (a node's dominator is
//! placed before it, so one pass from the last place up), then kept per
//! node in 8 bytes, not 12: bytes in units of 8 in a u32 (every Go size
//! class is a multiple of 8; up to 32 GiB), the rare value that does not
//! fit (a larger heap, or hostile sizes) exact in a map beside.

use std::collections::HashMap;

use super::dominators::{Tree, NONE};

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
        let mut bytes = vec![0u64; reached];
        let mut objects = vec![0u32; reached];
        for (node, size) in sizes {
            if let Some(&p) = place.get(node) {
                if let (Some(b), Some(o)) = (bytes.get_mut(p as usize), objects.get_mut(p as usize))
                {
                    *b = size;
                    *o = 1;
                }
            }
        }
        for p in (1..reached).rev() {
            let d = idom[p] as usize;
            if d < p {
                bytes[d] = bytes[d].saturating_add(bytes[p]);
                objects[d] = objects[d].saturating_add(objects[p]);
            }
        }
        drop(idom);
        let mut big = HashMap::new();
        let of = |p: u32, by_place: &[u64]| match p {
            NONE => 0,
            p => by_place.get(p as usize).copied().unwrap_or(0),
        };
        let units = place
            .iter()
            .enumerate()
            .map(|(node, &p)| {
                let b = of(p, &bytes);
                match u32::try_from(b / 8) {
                    Ok(u) if b % 8 == 0 && u != BIG => u,
                    _ => {
                        big.insert(node, b);
                        BIG
                    }
                }
            })
            .collect();
        drop(bytes);
        let objects = place
            .iter()
            .map(|&p| match p {
                NONE => 0,
                p => objects.get(p as usize).copied().unwrap_or(0),
            })
            .collect();
        Retained {
            units,
            big,
            objects,
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
