//! Immediate dominators of a graph rooted at node 0, by the iterative
//! algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance
//! Algorithm", 2001): number the reachable nodes in reverse postorder,
//! then, until nothing changes, set each node's dominator to the common
//! ancestor of its processed predecessors' in the tree so far. No
//! recursion: the depth-first search keeps its own stack.

use super::graph::Graph;

/// No node: unreachable from the root.
pub(super) const NONE: u32 = u32::MAX;

pub(super) struct Dominators {
    /// Each node's immediate dominator (the root's is itself), or [`NONE`].
    pub idom: Vec<u32>,
    /// Reachable nodes in reverse postorder (the root first): every node
    /// comes after its immediate dominator.
    pub rpo: Vec<u32>,
}

pub(super) fn dominators(g: &Graph) -> Dominators {
    let n = g.nodes();
    if n == 0 {
        return Dominators {
            idom: Vec::new(),
            rpo: Vec::new(),
        };
    }
    let rpo = reverse_postorder(g);
    let mut order = vec![NONE; n];
    for (i, &v) in rpo.iter().enumerate() {
        order[v as usize] = i as u32;
    }
    // The reverse graph's offsets in u32s when its edges (at most the
    // graph's) allow: half the size of a word per node of the heap.
    let idom = match u32::try_from(g.targets.len()) {
        Ok(_) => settle(&rpo, &order, &predecessors::<u32>(g, &order)),
        Err(_) => settle(&rpo, &order, &predecessors::<usize>(g, &order)),
    };
    Dominators { idom, rpo }
}

/// Each node's immediate dominator: passes over the nodes in reverse
/// postorder until nothing changes.
fn settle<O: Offset>(rpo: &[u32], order: &[u32], preds: &Preds<O>) -> Vec<u32> {
    let n = order.len();
    let mut idom = vec![NONE; n];
    if n == 0 {
        return idom;
    }
    idom[0] = 0;
    // Each pass only moves dominators up the tree, so it settles; the
    // bound is the number of nodes, never met in practice (two or three
    // passes on a heap).
    for _ in 0..=n {
        let mut changed = false;
        for &b in rpo.iter().skip(1) {
            let mut new = NONE;
            for &p in preds.of(b) {
                if idom[p as usize] == NONE {
                    continue;
                }
                new = if new == NONE {
                    p
                } else {
                    intersect(&idom, order, p, new)
                };
            }
            if new != NONE && idom[b as usize] != new {
                idom[b as usize] = new;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    idom
}

/// An offset into a list of edges: a u32 where the edges are few enough.
trait Offset: Copy {
    fn zero() -> Self;
    fn at(self) -> usize;
    /// `self + 1` and `self - 1`; the caller never leaves the edges' range.
    fn up(self) -> Self;
    fn down(self) -> Self;
    fn add(self, other: Self) -> Self;
}

impl Offset for u32 {
    fn zero() -> u32 {
        0
    }
    fn at(self) -> usize {
        self as usize
    }
    fn up(self) -> u32 {
        self.saturating_add(1)
    }
    fn down(self) -> u32 {
        self.saturating_sub(1)
    }
    fn add(self, other: u32) -> u32 {
        self.saturating_add(other)
    }
}

impl Offset for usize {
    fn zero() -> usize {
        0
    }
    fn at(self) -> usize {
        self
    }
    fn up(self) -> usize {
        self.saturating_add(1)
    }
    fn down(self) -> usize {
        self.saturating_sub(1)
    }
    fn add(self, other: usize) -> usize {
        self.saturating_add(other)
    }
}

/// Predecessor lists: `targets[offsets[n]..offsets[n+1]]`.
struct Preds<O> {
    offsets: Vec<O>,
    targets: Vec<u32>,
}

impl<O: Offset> Preds<O> {
    fn of(&self, n: u32) -> &[u32] {
        let n = n as usize;
        match (self.offsets.get(n), self.offsets.get(n + 1)) {
            (Some(&a), Some(&b)) => self.targets.get(a.at()..b.at()).unwrap_or(&[]),
            _ => &[],
        }
    }
}

fn intersect(idom: &[u32], order: &[u32], mut a: u32, mut b: u32) -> u32 {
    while a != b {
        while order[a as usize] > order[b as usize] {
            a = idom[a as usize];
        }
        while order[b as usize] > order[a as usize] {
            b = idom[b as usize];
        }
    }
    a
}

/// Nodes reachable from 0 in reverse postorder of a depth-first search.
fn reverse_postorder(g: &Graph) -> Vec<u32> {
    let n = g.nodes();
    let mut seen = vec![false; n];
    let mut post = Vec::new();
    // (node, how many of its successors were taken)
    let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
    seen[0] = true;
    while let Some(top) = stack.last_mut() {
        let (v, next) = *top;
        let succ = g.successors(v);
        if let Some(&w) = succ.get(next) {
            top.1 += 1;
            if let Some(s) = seen.get_mut(w as usize) {
                if !*s {
                    *s = true;
                    stack.push((w, 0));
                }
            }
        } else {
            post.push(v);
            stack.pop();
        }
    }
    post.reverse();
    post
}

/// The reverse graph over the reachable nodes (`order` is NONE for the
/// others). `O` holds as many edges as the graph has.
fn predecessors<O: Offset>(g: &Graph, order: &[u32]) -> Preds<O> {
    let n = g.nodes();
    let mut counts = vec![O::zero(); n + 1];
    for v in 0..n as u32 {
        if order[v as usize] == NONE {
            continue;
        }
        for &w in g.successors(v) {
            if let Some(c) = counts.get_mut(w as usize + 1) {
                *c = c.up();
            }
        }
    }
    for i in 1..=n {
        counts[i] = counts[i].add(counts[i - 1]);
    }
    // Each list filled from its end, its start counted down to where it
    // begins: the offsets are right when done, with no second copy of
    // them (a word per node of a heap of millions).
    let total = counts[n];
    let mut targets = vec![0u32; total.at()];
    for v in (0..n as u32).rev() {
        if order[v as usize] == NONE {
            continue;
        }
        for &w in g.successors(v).iter().rev() {
            if let Some(at) = counts.get_mut(w as usize + 1) {
                *at = at.down();
                if let Some(t) = targets.get_mut(at.at()) {
                    *t = v;
                }
            }
        }
    }
    // counts[w + 1] now holds where w's list starts: shift them down,
    // and end with the last list's end.
    counts.remove(0);
    counts.push(total);
    Preds {
        offsets: counts,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32)]) -> Graph {
        let mut succ = vec![Vec::new(); n];
        for &(a, b) in edges {
            succ[a as usize].push(b);
        }
        let mut offsets = vec![0];
        let mut targets = Vec::new();
        for s in succ {
            targets.extend(s);
            offsets.push(targets.len());
        }
        Graph { offsets, targets }
    }

    #[test]
    fn diamond_and_chain() {
        // 0 -> 1 -> 2, 0 -> 3 -> 2, 2 -> 4; 5 unreachable.
        let g = graph(6, &[(0, 1), (1, 2), (0, 3), (3, 2), (2, 4)]);
        let d = dominators(&g);
        assert_eq!(d.idom, vec![0, 0, 0, 0, 2, NONE]);
        assert_eq!(d.rpo[0], 0);
        assert_eq!(d.rpo.len(), 5);
    }

    #[test]
    fn cycle_back_to_a_dominated_node() {
        // 0 -> 1 -> 2 -> 3 -> 1, 3 -> 4
        let g = graph(5, &[(0, 1), (1, 2), (2, 3), (3, 1), (3, 4)]);
        let d = dominators(&g);
        assert_eq!(d.idom, vec![0, 0, 1, 2, 3]);
    }

    #[test]
    fn irreducible_loop() {
        // 0 -> 1, 0 -> 2, 1 <-> 2, 2 -> 3: nothing but 0 dominates 1, 2, 3.
        let g = graph(4, &[(0, 1), (0, 2), (1, 2), (2, 1), (2, 3)]);
        let d = dominators(&g);
        assert_eq!(d.idom, vec![0, 0, 0, 2]);
    }
}
