//! The wait-for graph between goroutines: an edge from each blocked
//! goroutine to every goroutine that may release what it waits on. A
//! deadlock is a set of blocked goroutines each of which only others of the
//! set could release: a strongly connected component (Tarjan's algorithm,
//! iterative, so a graph of a million goroutines cannot overflow the
//! stack) whose members have no way out of it.

use std::collections::{BTreeMap, BTreeSet};

/// Goroutine ids, each with the ids that may release it. A goroutine with
/// no entry (or an empty one) has no known releaser.
pub type WaitFor = BTreeMap<u64, BTreeSet<u64>>;

/// Every deadlock cycle of `edges`: components of at least two goroutines
/// (or one that only itself could release) in which every member is
/// `blocked` and every member's releasers are all inside the component.
/// Each cycle's ids are sorted; cycles come smallest id first.
pub fn deadlocks(edges: &WaitFor, blocked: &BTreeSet<u64>) -> Vec<Vec<u64>> {
    let mut cycles: Vec<Vec<u64>> = components(edges)
        .into_iter()
        .filter(|c| closed(c, edges, blocked))
        .map(|mut c| {
            c.sort_unstable();
            c
        })
        .collect();
    cycles.sort();
    cycles
}

fn closed(component: &[u64], edges: &WaitFor, blocked: &BTreeSet<u64>) -> bool {
    let members: BTreeSet<u64> = component.iter().copied().collect();
    let out_of = |id: &u64| edges.get(id).into_iter().flatten();
    let self_loop = component.len() == 1 && out_of(&component[0]).any(|r| *r == component[0]);
    (component.len() > 1 || self_loop)
        && component.iter().all(|id| {
            blocked.contains(id)
                && out_of(id).next().is_some()
                && out_of(id).all(|r| members.contains(r))
        })
}

/// The strongly connected components of `edges` (Tarjan), iteratively.
fn components(edges: &WaitFor) -> Vec<Vec<u64>> {
    // Dense indices: every id that appears, as a source or a target.
    let mut ids: Vec<u64> = edges.keys().copied().collect();
    ids.extend(edges.values().flatten().copied());
    ids.sort_unstable();
    ids.dedup();
    let index_of = |id: u64| ids.binary_search(&id).ok();
    let succ: Vec<Vec<usize>> = ids
        .iter()
        .map(|id| {
            edges
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|t| index_of(*t))
                .collect()
        })
        .collect();
    let n = ids.len();
    const UNSEEN: usize = usize::MAX;
    let mut order = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    for root in 0..n {
        if order[root] != UNSEEN {
            continue;
        }
        // (node, next successor to look at)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        order[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(top) = work.last_mut() {
            let v = top.0;
            if let Some(&w) = succ[v].get(top.1) {
                top.1 += 1;
                if order[w] == UNSEEN {
                    order[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == order[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(ids[w]);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(u64, &[u64])]) -> WaitFor {
        edges
            .iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect()
    }

    fn all(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_two_goroutine_cycle_is_a_deadlock() {
        let g = graph(&[(7, &[9]), (9, &[7]), (3, &[7])]);
        assert_eq!(deadlocks(&g, &all(&[3, 7, 9])), vec![vec![7, 9]]);
    }

    #[test]
    fn a_cycle_with_a_way_out_is_not() {
        // 9 may also be released by 4, which runs.
        let g = graph(&[(7, &[9]), (9, &[7, 4])]);
        assert!(deadlocks(&g, &all(&[7, 9])).is_empty());
        // Nor one whose member is not blocked.
        let g = graph(&[(7, &[9]), (9, &[7])]);
        assert!(deadlocks(&g, &all(&[7])).is_empty());
    }

    #[test]
    fn a_self_wait_and_long_cycles() {
        let g = graph(&[(5, &[5]), (1, &[2]), (2, &[3]), (3, &[1])]);
        assert_eq!(
            deadlocks(&g, &all(&[1, 2, 3, 5])),
            vec![vec![1, 2, 3], vec![5]]
        );
    }

    #[test]
    fn a_million_long_chain_does_not_overflow() {
        let n = 1_000_000u64;
        let mut g = WaitFor::new();
        for i in 0..n {
            g.insert(i, [(i + 1) % n].into_iter().collect());
        }
        let blocked: BTreeSet<u64> = (0..n).collect();
        let cycles = deadlocks(&g, &blocked);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n as usize);
    }
}
