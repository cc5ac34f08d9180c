//! Retained sizes from the dominator tree: a node retains itself and what
//! it dominates. Summed in place order (a node's dominator is placed
//! before it, so one pass from the last place up). Only the nodes that
//! dominate another keep a sum here, found by a bit per node and a rank
//! ([`Listed`]): a node dominating nothing retains itself alone, which its
//! owner knows (a third of a heap of small objects, 47 MB fewer on
//! bigpop). A sum is kept in 8 bytes, not 12: bytes in units of 8 in a
//! u32 (every Go size class is a multiple of 8; up to 32 GiB), the rare
//! value that does not fit (a larger heap, or hostile sizes) exact in a
//! map beside, and objects in a u32.

use std::collections::HashMap;

use super::dominators::{ups, Tree, NONE};
use super::graph::Listed;

/// `units` of a node whose bytes are in `big`.
const BIG: u32 = u32::MAX;

pub(super) struct Retained {
    /// Which nodes dominate another: the k-th of them has the k-th sum.
    dominating: Listed,
    /// Per dominating node: retained bytes / 8, or [`BIG`].
    units: Vec<u32>,
    /// By the dominating node's k.
    big: HashMap<usize, u64>,
    /// Per dominating node: retained objects (objects are numbered in a
    /// u32: so are the counts of them).
    objects: Vec<u32>,
}

impl Retained {
    /// The sums of the nodes that dominate another. `sizes` gives each
    /// reachable object node and its size in node order; `own` the bytes
    /// and objects of any reachable node itself (an object's size and 1,
    /// a root's nothing), asked for the nodes that dominate nothing.
    /// Takes the tree: its places are dropped as soon as their inverse is
    /// made.
    pub fn sum(
        tree: Tree,
        sizes: impl Iterator<Item = (usize, u64)>,
        own: impl Fn(usize) -> (u64, u32),
    ) -> Retained {
        let Tree { place, up, reached } = tree;
        // Which places are some place's dominator.
        let mut dominates = vec![0u64; reached.div_ceil(64)];
        for (p, up) in (1..reached).rev().zip(ups(&up)) {
            if let Some(d) = (p as u64).checked_sub(up).filter(|&d| d < p as u64) {
                if let Some(w) = dominates.get_mut(d as usize / 64) {
                    *w |= 1 << (d % 64);
                }
            }
        }
        let is_dominating = |p: usize| {
            dominates
                .get(p / 64)
                .is_some_and(|w| w >> (p % 64) & 1 == 1)
        };
        let n = place.len();
        let mut dominating = Listed::with_capacity(n);
        for &p in &place {
            dominating.push(p != NONE && is_dominating(p as usize));
        }
        drop(dominates);
        // Each place's node. Summed by node in place order, so no
        // array by place is moved to node order (a chase from slot to
        // slot, each load waiting for the last: seconds on millions).
        let mut node_at = vec![NONE; reached];
        for (v, &p) in place.iter().enumerate() {
            if let Some(at) = node_at.get_mut(p as usize) {
                *at = v as u32;
            }
        }
        drop(place);
        let lists = dominating.lists();
        let mut r = Retained {
            dominating,
            units: vec![0u32; lists],
            big: HashMap::new(),
            objects: vec![0u32; lists],
        };
        for (node, size) in sizes {
            if let Some(k) = r.dominating.list_of(node) {
                r.set_bytes(k, size);
                r.objects[k] = 1;
            }
        }
        for (p, up) in (1..reached).rev().zip(ups(&up)) {
            // A dominator is placed before its node.
            let Some(d) = (p as u64).checked_sub(up).filter(|&d| d < p as u64) else {
                continue;
            };
            let (v, d) = (node_at[p] as usize, node_at[d as usize] as usize);
            if v >= n {
                continue;
            }
            let Some(kd) = r.dominating.list_of(d) else {
                continue;
            };
            let (bytes, objects) = match r.dominating.list_of(v) {
                Some(kv) => (r.bytes_of(kv), r.objects[kv]),
                None => own(v),
            };
            let bytes = r.bytes_of(kd).saturating_add(bytes);
            r.set_bytes(kd, bytes);
            r.objects[kd] = r.objects[kd].saturating_add(objects);
        }
        r
    }

    fn set_bytes(&mut self, k: usize, bytes: u64) {
        let Some(u) = self.units.get_mut(k) else {
            return;
        };
        if *u == BIG {
            self.big.remove(&k);
        }
        match u32::try_from(bytes / 8) {
            Ok(units) if bytes.is_multiple_of(8) && units != BIG => *u = units,
            _ => {
                *u = BIG;
                self.big.insert(k, bytes);
            }
        }
    }

    fn bytes_of(&self, k: usize) -> u64 {
        match self.units.get(k) {
            Some(&BIG) => self.big.get(&k).copied().unwrap_or(0),
            Some(&u) => u64::from(u) * 8,
            None => 0,
        }
    }

    /// Retained bytes and objects of `node` when it dominates another;
    /// `None` when it retains itself alone (or is not a node).
    pub fn of(&self, node: usize) -> Option<(u64, u32)> {
        let k = self.dominating.list_of(node)?;
        Some((self.bytes_of(k), self.objects.get(k).copied().unwrap_or(0)))
    }
}
