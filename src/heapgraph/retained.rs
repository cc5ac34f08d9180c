//! Retained sizes, every node's, from the dominator tree: a node retains
//! itself and what it dominates. Summed in place order (a node's
//! dominator is placed before it, so one pass from the last place up),
//! kept per node in 8 bytes, not 12: bytes in units of 8 in a u32 (every Go size
//! class is a multiple of 8; up to 32 GiB), the rare value that does not
//! fit (a larger heap, or hostile sizes) exact in a map beside.

use std::collections::HashMap;

use super::dominators::{ups, Tree, NONE};

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
    /// node and its size, `reachable` whether a root reaches a node (the
    /// nodes the tree places). Takes the tree: its places are dropped as
    /// soon as their inverse is made.
    pub fn sum(
        tree: Tree,
        sizes: impl Iterator<Item = (usize, u64)>,
        reachable: impl Fn(usize) -> bool,
    ) -> Retained {
        let Tree { place, up, reached } = tree;
        // Each place's node. Summed by node in place order, so no
        // array by place is moved to node order (a chase from slot to
        // slot, each load waiting for the last: seconds on millions).
        let mut node_at = vec![NONE; reached];
        for (v, &p) in place.iter().enumerate() {
            if let Some(at) = node_at.get_mut(p as usize) {
                *at = v as u32;
            }
        }
        let n = place.len();
        drop(place);
        let mut r = Retained {
            units: vec![0u32; n],
            big: HashMap::new(),
            objects: vec![0u32; n],
        };
        for (node, size) in sizes {
            if node < n && reachable(node) {
                r.set_bytes(node, size);
                r.objects[node] = 1;
            }
        }
        for (p, up) in (1..reached).rev().zip(ups(&up)) {
            // A dominator is placed before its node.
            let Some(d) = (p as u64).checked_sub(up).filter(|&d| d < p as u64) else {
                continue;
            };
            let (v, d) = (node_at[p] as usize, node_at[d as usize] as usize);
            if v >= n || d >= n {
                continue;
            }
            let bytes = r.bytes(d).saturating_add(r.bytes(v));
            r.set_bytes(d, bytes);
            r.objects[d] = r.objects[d].saturating_add(r.objects[v]);
        }
        r
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
