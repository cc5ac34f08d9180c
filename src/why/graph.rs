//! The wait-for graph between goroutines: an edge from each blocked
//! goroutine to every goroutine that may release what it waits on. A
//! deadlock is a set of blocked goroutines each of which only others of the
//! set could release: a strongly connected component (Tarjan's algorithm,
//! iterative, so a graph of a million goroutines cannot overflow the
//! stack) whose members have no way out of it.

use std::collections::{BTreeMap, BTreeSet};

/// Object nodes are told from goroutine ids by the top bit (goroutine ids
/// are positive `int64`s; addresses stay below 2^63).
const OBJECT: u64 = 1 << 63;

/// Every deadlock cycle among goroutines that wait on objects
/// (`objects_of`: each blocked goroutine's channels or sync object) which
/// only certain goroutines may release (`released_by`): components of at
/// least two goroutines (or one that only itself could release) in which
/// every member is `blocked` and every member's objects can be released
/// only from inside the component. The graph goes through the objects, so
/// 20,000 goroutines waiting on one mutex that 20,000 others may hold make
/// 40,000 edges, not 400 million. Each cycle's ids are sorted; cycles come
/// smallest id first.
pub fn deadlocks(
    objects_of: &BTreeMap<u64, Vec<u64>>,
    released_by: &BTreeMap<u64, BTreeSet<u64>>,
    blocked: &BTreeSet<u64>,
) -> Vec<Vec<u64>> {
    let graph = Graph::new(objects_of, released_by);
    let mut cycles: Vec<Vec<u64>> = graph
        .components()
        .into_iter()
        .filter_map(|c| {
            let mut gs: Vec<u64> = c.iter().copied().filter(|n| n & OBJECT == 0).collect();
            gs.sort_unstable();
            closed(&gs, objects_of, released_by, blocked).then_some(gs)
        })
        .collect();
    cycles.sort();
    cycles
}

fn closed(
    members: &[u64],
    objects_of: &BTreeMap<u64, Vec<u64>>,
    released_by: &BTreeMap<u64, BTreeSet<u64>>,
    blocked: &BTreeSet<u64>,
) -> bool {
    let inside = |g: &u64| members.binary_search(g).is_ok();
    // Each object once, however many members wait on it: linear work.
    let mut objects: BTreeSet<u64> = BTreeSet::new();
    for g in members {
        match objects_of.get(g) {
            Some(os) if blocked.contains(g) && !os.is_empty() => objects.extend(os),
            _ => return false,
        }
    }
    let no_way_out = objects.iter().all(|o| {
        released_by
            .get(o)
            .is_some_and(|r| !r.is_empty() && r.iter().all(inside))
    });
    let self_loop = members.len() == 1
        && objects
            .iter()
            .any(|o| released_by.get(o).is_some_and(|r| r.contains(&members[0])));
    (members.len() > 1 || self_loop) && no_way_out
}

/// The graph in compressed rows: node `i` is `ids[i]`, its successors
/// `targets[starts[i]..starts[i + 1]]`. A map of a million goroutines to
/// their own vectors, then another of their successors, was a few hundred
/// MB at the report's peak.
struct Graph {
    ids: Vec<u64>,
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Graph {
    /// An edge from each goroutine to each object it waits on, and from
    /// each object to each goroutine that may release it.
    fn new(
        objects_of: &BTreeMap<u64, Vec<u64>>,
        released_by: &BTreeMap<u64, BTreeSet<u64>>,
    ) -> Graph {
        // Dense indices: every id that appears, as a source or a target.
        let mut ids: Vec<u64> = Vec::new();
        for (g, objects) in objects_of {
            ids.push(*g);
            ids.extend(objects.iter().map(|o| o | OBJECT));
        }
        for (o, rs) in released_by {
            ids.push(o | OBJECT);
            ids.extend(rs.iter().copied());
        }
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        let index_of = |id: u64| ids.binary_search(&id).ok();
        let mut starts = Vec::with_capacity(ids.len() + 1);
        let mut targets = Vec::new();
        for &id in &ids {
            starts.push(targets.len());
            match id & OBJECT {
                0 => {
                    let objects = objects_of.get(&id).into_iter().flatten();
                    targets.extend(objects.filter_map(|o| index_of(o | OBJECT)));
                }
                _ => {
                    let rs = released_by.get(&(id & !OBJECT)).into_iter().flatten();
                    targets.extend(rs.filter_map(|r| index_of(*r)));
                }
            }
        }
        starts.push(targets.len());
        Graph {
            ids,
            starts,
            targets,
        }
    }

    fn successors(&self, v: usize) -> &[usize] {
        match (self.starts.get(v), self.starts.get(v + 1)) {
            (Some(&a), Some(&b)) => self.targets.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The strongly connected components of more than one node (Tarjan),
    /// iteratively.
    fn components(&self) -> Vec<Vec<u64>> {
        let ids = &self.ids;
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
                if let Some(&w) = self.successors(v).get(top.1) {
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
                    // A component of one node is never a cycle (a goroutine
                    // that releases itself makes two, with its object): the
                    // million of them are not kept.
                    if stack.last() == Some(&v) {
                        stack.pop();
                        on_stack[v] = false;
                        continue;
                    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goroutine-to-goroutine edges as the analysis gives them: each
    /// goroutine waits on an object of its own (its id + 1000) that the
    /// listed goroutines may release.
    fn deadlocks_of(edges: &[(u64, &[u64])], blocked: &[u64]) -> Vec<Vec<u64>> {
        let objects_of = edges.iter().map(|(g, _)| (*g, vec![g + 1000])).collect();
        let released_by = edges
            .iter()
            .map(|(g, rs)| (g + 1000, rs.iter().copied().collect()))
            .collect();
        deadlocks(
            &objects_of,
            &released_by,
            &blocked.iter().copied().collect(),
        )
    }

    #[test]
    fn a_two_goroutine_cycle_is_a_deadlock() {
        let g = [(7, &[9][..]), (9, &[7]), (3, &[7])];
        assert_eq!(deadlocks_of(&g, &[3, 7, 9]), vec![vec![7, 9]]);
    }

    #[test]
    fn a_cycle_with_a_way_out_is_not() {
        // 9 may also be released by 4, which runs.
        assert!(deadlocks_of(&[(7, &[9]), (9, &[7, 4])], &[7, 9]).is_empty());
        // Nor one whose member is not blocked.
        assert!(deadlocks_of(&[(7, &[9]), (9, &[7])], &[7]).is_empty());
    }

    #[test]
    fn a_self_wait_and_long_cycles() {
        let g = [(5, &[5][..]), (1, &[2]), (2, &[3]), (3, &[1])];
        assert_eq!(
            deadlocks_of(&g, &[1, 2, 3, 5]),
            vec![vec![1, 2, 3], vec![5]]
        );
    }

    #[test]
    fn many_waiters_on_one_object_stay_linear() {
        // 20,000 goroutines wait on one object that 20,000 others may
        // release, and those wait on a second one the first may release:
        // one deadlock of 40,000, from 80,000 edges.
        let n = 20_000u64;
        let mut objects_of = BTreeMap::new();
        let mut released_by: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for g in 1..=2 * n {
            objects_of.insert(g, vec![if g <= n { 0xa0 } else { 0xb0 }]);
        }
        released_by.insert(0xa0, (n + 1..=2 * n).collect());
        released_by.insert(0xb0, (1..=n).collect());
        let blocked = (1..=2 * n).collect();
        let cycles = deadlocks(&objects_of, &released_by, &blocked);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), 2 * n as usize);
    }

    #[test]
    fn a_million_long_chain_does_not_overflow() {
        let n = 1_000_000u64;
        let objects_of = (0..n).map(|g| (g, vec![g])).collect();
        let released_by = (0..n)
            .map(|g| (g, [(g + 1) % n].into_iter().collect()))
            .collect();
        let blocked = (0..n).collect();
        let cycles = deadlocks(&objects_of, &released_by, &blocked);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n as usize);
    }
}
