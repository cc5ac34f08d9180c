//! The graph's own loops over hostile input: dominators and chains over
//! random graphs (checked against a naive definition), and the heap
//! walker's garbage heaps (`heapwalk`'s hostile probes) analysed whole:
//! never a panic, retained sizes that add up.

use super::dominators::{dominators, NONE};
use super::graph::{Sparse, Successors};
use super::{HeapGraph, ReportOptions, Snapshot};
use crate::binary::dwarf_vars::VarIndex;
use crate::heapwalk::hostile_tests::{garbage_heaps, program};

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn random_graph(seed: u64, n: usize, edges: usize) -> Sparse<usize> {
    let mut succ = vec![Vec::new(); n];
    for e in 0..edges {
        let h = mix(seed ^ (e as u64) << 20);
        let a = (h % n as u64) as usize;
        let b = ((h >> 32) % n as u64) as u32;
        succ[a].push(b);
    }
    Sparse::from_lists(&succ)
}

/// Nodes reachable from 0 without passing through `skip`.
fn reachable_without(g: &Sparse<usize>, skip: u32) -> Vec<bool> {
    let mut seen = vec![false; g.nodes()];
    if skip == 0 {
        return seen;
    }
    let mut stack = vec![0u32];
    seen[0] = true;
    while let Some(v) = stack.pop() {
        for w in g.successors(v) {
            if w != skip && !seen[w as usize] {
                seen[w as usize] = true;
                stack.push(w);
            }
        }
    }
    seen
}

#[test]
fn dominators_match_their_definition() {
    // Sparse graphs too: a third of their nodes have no successors, many
    // of them two or more predecessors (settled last, apart).
    for seed in 0..120 {
        let n = 2 + (mix(seed) % 40) as usize;
        let edges = if seed % 2 == 0 { n * 2 } else { n + n / 4 };
        let g = random_graph(seed, n, edges);
        let d = dominators(&g);
        let all = reachable_without(&g, u32::MAX);
        for v in 0..n as u32 {
            if !all[v as usize] {
                assert_eq!(d.idom[v as usize], NONE, "seed {seed} node {v}");
                continue;
            }
            if v == 0 {
                continue;
            }
            // The dominators of v: the nodes whose removal cuts it off.
            let doms: Vec<u32> = (0..n as u32)
                .filter(|&u| u == 0 || (u != v && !reachable_without(&g, u)[v as usize]))
                .collect();
            let idom = d.idom[v as usize];
            assert!(doms.contains(&idom), "seed {seed}: idom({v}) = {idom}");
            // The immediate one is dominated by every other.
            for &u in &doms {
                if u != idom && u != 0 {
                    assert!(
                        !reachable_without(&g, u)[idom as usize],
                        "seed {seed}: {u} does not dominate idom({v}) = {idom}"
                    );
                }
            }
        }
    }
}

#[test]
fn breadth_first_parents_lead_to_the_root() {
    for seed in 0..40 {
        let n = 2 + (mix(seed ^ 7) % 300) as usize;
        let g = random_graph(seed, n, n * 3);
        let parent = super::breadth_first(&g);
        for v in 0..n {
            let mut at = v as u32;
            let mut steps = 0;
            while at != 0 && at != NONE {
                at = parent[at as usize];
                steps += 1;
                assert!(steps <= n, "seed {seed}: a cycle of parents");
            }
        }
    }
}

fn whole_analysis(flavour: &str) {
    let prog = program(flavour);
    let vars = VarIndex::load(prog.binary().debug_data()).expect("the fixture's DWARF");
    let heaps = garbage_heaps(&prog, 24);
    assert!(
        heaps.len() > 6,
        "{flavour}: only {} heaps loaded",
        heaps.len()
    );
    for (k, (mem, heap)) in heaps.into_iter().enumerate() {
        let snap = Snapshot {
            prog: &prog,
            mem: &mem,
            bias: 0,
            stacks: Default::default(),
            vars: Some(&vars),
        };
        let Ok(g) = HeapGraph::build_over(heap, snap, &mut |_| {}) else {
            continue;
        };
        let r = g.report("go", ReportOptions { chains: 5 });
        let t = &r.totals;
        assert_eq!(
            t.reachable_objects + t.unreachable_objects,
            t.objects,
            "heap {k}"
        );
        assert_eq!(t.reachable_bytes + t.unreachable_bytes, t.bytes, "heap {k}");
        let sum: u64 = r.roots.iter().map(|x| x.retained_bytes).sum();
        assert!(sum <= t.reachable_bytes, "heap {k}: roots retain {sum}");
        let typed: u64 = r.types.iter().map(|x| x.objects).sum();
        assert_eq!(typed, t.objects, "heap {k}: every object has one type");
        for c in &r.chains {
            assert!(!c.path.is_empty(), "heap {k}: an empty chain");
        }
    }
}

#[test]
fn garbage_heaps_analysed_whole_go1_19() {
    whole_analysis("go1.19-exe");
}

#[test]
fn garbage_heaps_analysed_whole_go1_27() {
    whole_analysis("go1.27-exe");
}
