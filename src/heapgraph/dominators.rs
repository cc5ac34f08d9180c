//! Immediate dominators of a graph rooted at node 0, by the iterative
//! algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance
//! Algorithm", 2001): number the reachable nodes in reverse postorder,
//! then, until nothing changes, set each node's dominator to the common
//! ancestor of its processed predecessors' in the tree so far. No
//! recursion: the depth-first search keeps its own stack.
//!
//! Everything after the search is numbered by place in reverse postorder
//! (a node's dominator has a lower place than the node): the common
//! ancestor compares places, with no table from nodes to places, and a
//! node with one predecessor (most of a heap's objects) has it as its
//! dominator at once, stored as that, with no list of predecessors. On a
//! heap of 16M objects that is 100 MB less at the analysis's peak.
//!
//! Nodes without successors (objects without pointers: a third of a heap
//! of small objects, many of them tiny-allocator blocks with two or more
//! predecessors) get no list either. No other node's dominator goes
//! through one, so they are settled last, each as the common ancestor of
//! all its predecessors in the finished tree (which is what a node's
//! immediate dominator is), pushed from the predecessors' successor
//! lists: on bigpop 40 MB of lists fewer at the peak.

#[cfg(test)]
use super::graph::Sparse;
use super::graph::{list_at, Listed, Offset, Successors};

/// No node: unreachable from the root.
pub(super) const NONE: u32 = u32::MAX;
/// A place whose one predecessor is not yet written as its dominator.
const ONE_PENDING: u32 = u32::MAX - 1;
/// A place without successors whose dominator is found last
/// ([`settle_leaves`]).
const LEAF_PENDING: u32 = u32::MAX - 2;

/// The dominator tree, numbered by place in reverse postorder.
pub(super) struct Tree {
    /// Per node: its place (the root's is 0), or [`NONE`] when no path
    /// from the root reaches it.
    pub place: Vec<u32>,
    /// Each place's distance up to its immediate dominator's place, for
    /// the places from the last to 1, as LEB128 numbers ([`ups`] reads
    /// them): most are a byte (an object's dominator is placed a little
    /// before it), where a u32 per place would lie idle through the
    /// breadth-first search beside the graph.
    pub up: Vec<u8>,
    /// How many places: the nodes reached.
    pub reached: usize,
}

/// [`Tree::up`]'s distances, from the last place to place 1.
pub(super) fn ups(up: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *up.get(at)?;
            at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        Some(v)
    })
}

/// `idom` by place as [`Tree::up`] holds it.
fn encode_ups(idom: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(idom.len());
    for (p, &d) in idom.iter().enumerate().skip(1).rev() {
        let mut v = (p as u64).saturating_sub(u64::from(d));
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    out.shrink_to_fit();
    out
}

/// The dominator tree of `g`'s nodes reachable from node 0.
pub(super) fn dominator_tree<G: Successors>(g: &G) -> Tree {
    if g.nodes() == 0 {
        return Tree {
            place: Vec::new(),
            up: Vec::new(),
            reached: 0,
        };
    }
    let place = reverse_postorder(g);
    let reached = place.iter().filter(|&&p| p != NONE).count();
    let (preds, idom) = predecessors(g, &place, reached);
    // Not needed by the leaves' pass: gone before it, not after.
    let idom = settle(&preds, idom);
    drop(preds);
    let idom = settle_leaves(g, &place, idom);
    Tree {
        place,
        up: encode_ups(&idom),
        reached: idom.len(),
    }
}

/// Each node's immediate dominator in node numbers, and the reachable
/// nodes in reverse postorder: the tree as a reader checks it.
#[cfg(test)]
pub(super) struct Dominators {
    /// Each node's immediate dominator (the root's is itself), or [`NONE`].
    pub idom: Vec<u32>,
    /// Reachable nodes in reverse postorder (the root first): every node
    /// comes after its immediate dominator.
    pub rpo: Vec<u32>,
}

#[cfg(test)]
pub(super) fn dominators<G: Successors>(g: &G) -> Dominators {
    let tree = dominator_tree(g);
    let mut idom_by_place = vec![0u32; tree.reached];
    for (p, up) in (1..tree.reached).rev().zip(ups(&tree.up)) {
        idom_by_place[p] = (p as u64 - up) as u32;
    }
    let mut rpo = vec![NONE; tree.reached];
    for (v, &p) in tree.place.iter().enumerate() {
        if p != NONE {
            rpo[p as usize] = v as u32;
        }
    }
    let idom = tree
        .place
        .iter()
        .map(|&p| match p {
            NONE => NONE,
            p => rpo[idom_by_place[p as usize] as usize],
        })
        .collect();
    Dominators { idom, rpo }
}

/// Each place's immediate dominator: passes over the places in order
/// until nothing changes. `idom` holds the places with one predecessor
/// already (their lists are empty), [`NONE`] for the others.
fn settle<O: Offset>(preds: &Preds<O>, mut idom: Vec<u32>) -> Vec<u32> {
    let n = idom.len();
    if n == 0 {
        return idom;
    }
    idom[0] = 0;
    // Each pass only moves dominators up the tree, so it settles; the
    // bound is the number of nodes, never met in practice (two or three
    // passes on a heap).
    for pass in 0..=n {
        let mut changed = false;
        for b in 1..n as u32 {
            let list = preds.of(b);
            if list.is_empty() {
                continue;
            }
            let mut new = NONE;
            for &p in list {
                // The first pass takes the predecessors placed before
                // `b` only, the places it has processed: one placed
                // after may have one predecessor written as its
                // dominator, above which the tree is not built yet.
                if idom[p as usize] == NONE || (pass == 0 && p >= b) {
                    continue;
                }
                new = if new == NONE {
                    p
                } else {
                    intersect(&idom, p, new)
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

/// The dominators of the places without successors (those still
/// [`LEAF_PENDING`]): each the common ancestor of its predecessors in the
/// finished tree of the others, met in `g`'s successor lists (the first
/// one met replaces the mark). The common ancestor climbs only through
/// places with successors, all settled.
fn settle_leaves<G: Successors>(g: &G, place: &[u32], mut idom: Vec<u32>) -> Vec<u32> {
    for (v, &pv) in place.iter().enumerate() {
        if pv == NONE {
            continue;
        }
        for w in g.successors(v as u32) {
            // Only a leaf's slot is changed: the tree it climbs stays.
            if g.has_successors(w) {
                continue;
            }
            let Some(at) = place.get(w as usize).and_then(|&pw| idom.get(pw as usize)) else {
                continue;
            };
            let pw = place[w as usize] as usize;
            idom[pw] = match *at {
                LEAF_PENDING => pv,
                d => intersect(&idom, d, pv),
            };
        }
    }
    idom
}

/// Predecessor lists of the places that have two or more: the k-th such
/// place's is `targets[offsets[k]..offsets[k+1]]`. Most objects of a heap
/// have one predecessor: offsets for those would be a u32 per node for
/// nothing.
struct Preds<O> {
    listed: Listed,
    offsets: Vec<O>,
    targets: Vec<u32>,
}

impl<O: Offset> Preds<O> {
    fn of(&self, n: u32) -> &[u32] {
        let Some(k) = self.listed.list_of(n as usize) else {
            return &[];
        };
        list_at(&self.offsets, &self.targets, k)
    }
}

/// The common ancestor of places `a` and `b` in the tree so far: a
/// dominator's place is below its node's, so each climbs while above.
fn intersect(idom: &[u32], mut a: u32, mut b: u32) -> u32 {
    while a != b {
        while a > b {
            a = idom.get(a as usize).copied().unwrap_or(0);
        }
        while b > a {
            b = idom.get(b as usize).copied().unwrap_or(0);
        }
    }
    a
}

/// Each node's place in reverse postorder of a depth-first search from
/// node 0 ([`NONE`] for the nodes it does not reach). The places array
/// marks what the search has seen, so nothing else per node is kept.
fn reverse_postorder<G: Successors>(g: &G) -> Vec<u32> {
    let n = g.nodes();
    // While searching: ONE_PENDING for seen, then the postorder number.
    let mut place = vec![NONE; n];
    let mut finished = 0u32;
    // (node, where its list of successors was left)
    let mut stack: Vec<(u32, (usize, u32))> = vec![(0, (0, 0))];
    place[0] = ONE_PENDING;
    while let Some(top) = stack.last_mut() {
        let (v, at) = *top;
        let mut succ = g.successors(v).resume(at);
        if let Some(w) = succ.next() {
            top.1 = succ.position();
            if let Some(s) = place.get_mut(w as usize) {
                if *s == NONE {
                    *s = ONE_PENDING;
                    stack.push((w, (0, w)));
                }
            }
        } else {
            place[v as usize] = finished;
            finished += 1;
            stack.pop();
        }
    }
    // Postorder reversed: the root, finished last, gets place 0.
    for p in place.iter_mut() {
        if *p != NONE {
            *p = finished - 1 - *p;
        }
    }
    place
}

/// The reverse graph over the reachable nodes, by place. A place with one
/// predecessor gets no list and that predecessor as its dominator in the
/// returned per-place array, a place without successors no list and
/// [`LEAF_PENDING`], the others [`NONE`]. `O` holds as
/// many edges as the graph has.
fn predecessors<G: Successors>(
    g: &G,
    place: &[u32],
    reached: usize,
) -> (Preds<G::Offset>, Vec<u32>) {
    let n = g.nodes();
    // Counted in the array of dominators, which is there anyway: node
    // numbers are u32s and the graph's lists have no duplicates, so a
    // count reaches the marks only in a graph of 4G nodes, where it
    // stops below them. A place without successors is marked
    // LEAF_PENDING instead of counted: it gets no list.
    let mut idom = vec![0u32; reached];
    for v in 0..n as u32 {
        if place[v as usize] == NONE {
            continue;
        }
        for w in g.successors(v) {
            let leaf = !g.has_successors(w);
            if let Some(c) = place
                .get(w as usize)
                .and_then(|&pw| idom.get_mut(pw as usize))
            {
                *c = if leaf {
                    LEAF_PENDING
                } else {
                    (*c + 1).min(LEAF_PENDING - 1)
                };
            }
        }
    }
    let mut listed = Listed::with_capacity(reached);
    let mut offsets = vec![G::Offset::zero()];
    let mut total = G::Offset::zero();
    for d in idom.iter_mut() {
        listed.push(*d >= 2 && *d != LEAF_PENDING);
        match *d {
            0 => *d = NONE,
            1 => *d = ONE_PENDING,
            LEAF_PENDING => {}
            c => {
                total = total.add(G::Offset::count(c));
                offsets.push(total);
                *d = NONE;
            }
        }
    }
    let mut preds = Preds {
        listed,
        offsets,
        targets: vec![0u32; total.at()],
    };
    // Each list filled from its end, its end counted down to where it
    // begins: the offsets are right when done, with no second copy of
    // them.
    for v in (0..n as u32).rev() {
        let pv = place[v as usize];
        if pv == NONE {
            continue;
        }
        // Each list gets at most one entry from `v`: the order of its
        // successors does not matter.
        for w in g.successors(v) {
            let Some(&pw) = place.get(w as usize) else {
                continue;
            };
            let pw = pw as usize;
            if idom.get(pw) == Some(&ONE_PENDING) {
                idom[pw] = pv;
            } else if let Some(k) = preds.listed.list_of(pw) {
                if let Some(at) = preds.offsets.get_mut(k + 1) {
                    *at = at.down();
                    if let Some(t) = preds.targets.get_mut(at.at()) {
                        *t = pv;
                    }
                }
            }
        }
    }
    // offsets[k + 1] now holds where list k starts: shift them down, and
    // end with the last list's end.
    preds.offsets.remove(0);
    preds.offsets.push(total);
    (preds, idom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32)]) -> Sparse<usize> {
        let mut succ = vec![Vec::new(); n];
        for &(a, b) in edges {
            succ[a as usize].push(b);
        }
        Sparse::from_lists(&succ)
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

    #[test]
    fn leaves_with_many_predecessors() {
        // 0 -> 1 <-> 2, 0 -> 3; leaves: 4 (from 1 and 3), 5 (from 1 and
        // 2, over the loop), 6 (from 2 alone).
        let g = graph(
            7,
            &[
                (0, 1),
                (1, 2),
                (2, 1),
                (0, 3),
                (1, 4),
                (3, 4),
                (2, 5),
                (1, 5),
                (2, 6),
            ],
        );
        let d = dominators(&g);
        assert_eq!(d.idom, vec![0, 0, 1, 0, 0, 1, 2]);
    }
}
