//! What holds the memory of a Go program: the object graph over the heap
//! walker's objects (`heapwalk`), with named roots (package variables,
//! goroutine frames' variables, finalizers and cleanups), each object's
//! type (allocation headers, then DWARF types from the roots, then
//! `unknown (size N)`), a histogram by type, the shortest reference chain
//! from a root to any object, and retained sizes from the dominator tree
//! (what would be freed if a root or an object went away).
//!
//! Read from one consistent snapshot (a core, or a live process copied as
//! `goat core --mode live` copies it). Every loop and allocation is bounded
//! by what the heap walker found. Nothing here prints: `report::heap`
//! formats a [`HeapReport`].

// Parses what the target holds: no `unsafe` is needed here.
#![forbid(unsafe_code)]

mod diff;
mod dominators;
mod frame_vars;
mod graph;
#[cfg(test)]
mod hostile_tests;
mod lists;
mod paths;
mod report;
mod retained;
mod roots;
mod stack_roots;
mod typed;

use thiserror::Error;

use crate::binary::dwarf_vars::VarIndex;
use crate::goruntime::GoProgram;
use crate::heapwalk::{Heap, HeapError, HeapTotals};
use crate::process::Memory;

pub use diff::{diff, Counts, Growth, HeapDiff};
pub use paths::{ReferenceStacks, MAX_DEPTH, UNREACHABLE};
pub use report::{Chain, HeapReport, ReportOptions, RootRow, Totals, TypeRow};
pub use roots::RootKind;
pub use stack_roots::{StackRoots, StackScanContext, StackScratch};

use dominators::NONE;
use graph::{Built, Objects, Successors};
use retained::Retained;
use roots::RootTable;

#[derive(Debug, Error)]
pub enum HeapGraphError {
    #[error(transparent)]
    Heap(#[from] HeapError),
}

/// What the analysis reads: one consistent snapshot of the program.
pub struct Snapshot<'a> {
    pub prog: &'a GoProgram,
    pub mem: &'a dyn Memory,
    pub bias: u64,
    /// Its goroutines' stack roots, added a goroutine at a time
    /// ([`StackRoots::add_goroutine`], [`StackRoots::add_view`]).
    pub stacks: StackRoots,
    /// The executable's DWARF variables and types; without them objects
    /// are typed from allocation headers only and roots named by symbol.
    pub vars: Option<&'a VarIndex>,
}

/// How far the walk is, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub objects: u64,
    pub bytes: u64,
}

/// The analysed heap: kept whole so that any object's chain and retained
/// size can be asked for.
pub struct HeapGraph {
    heap: Heap,
    objects: Objects,
    roots: RootTable,
    types: typed::Types,
    /// Per node: breadth-first parent (the shortest chain; [`NONE`]: no
    /// root reaches it), retained bytes and objects.
    parent: Vec<u32>,
    retained: Retained,
    /// What could not be read or was not exact.
    notes: Vec<String>,
    conservative_objects: u64,
}

impl HeapGraph {
    /// Walks the heap and builds everything; `progress` is called as the
    /// walk goes on.
    pub fn build(
        snap: Snapshot<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<HeapGraph, HeapGraphError> {
        progress(Progress {
            phase: "reading spans",
            objects: 0,
            bytes: 0,
        });
        let heap = Heap::load(snap.prog, snap.mem, snap.bias)?;
        Self::build_over(heap, snap, progress)
    }

    /// [`Self::build`] over a heap already loaded.
    fn build_over(
        heap: Heap,
        mut snap: Snapshot<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<HeapGraph, HeapGraphError> {
        let phase = |phase| Progress {
            phase,
            objects: heap.totals().objects,
            bytes: heap.totals().bytes,
        };
        progress(phase("finding roots"));
        let objects = Objects::collect(&heap);
        let set = roots::collect(snap.prog, snap.mem, snap.bias, &heap, snap.vars)?;
        let imprecise_stacks = snap.stacks.imprecise;
        let mut typed_roots = set.typed;
        typed_roots.append(&mut snap.stacks.typed);
        let (roots, held) = RootTable::of(set.globals, snap.stacks, |values, list| {
            list.extend(values.iter().filter_map(|&v| objects.index_of(&heap, v)))
        });
        let (graph, edges) = graph::build(&heap, snap.mem, &objects, &held, &mut |o, b| {
            progress(Progress {
                phase: "scanning objects",
                objects: o,
                bytes: b,
            })
        });
        drop(held);
        // Nothing is read until the type walk: a mapped copy's pages
        // would only add to the graph's peak.
        snap.mem.pause_reads();
        // The graph's phases first, and the graph dropped before the
        // sums and the type walk: what each needs beside the graph is then
        // alive alone.
        progress(phase("dominators"));
        let (tree, parent) = match graph {
            Built::Small(g) => shape(g, &mut || progress(phase("shortest chains"))),
            Built::Large(g) => shape(g, &mut || progress(phase("shortest chains"))),
        };
        let first = 1 + roots.len();
        let sizes = heap
            .objects()
            .take(objects.len())
            .enumerate()
            .map(|(i, obj)| (first + i, obj.size));
        let own = |node: usize| match node.checked_sub(first) {
            Some(i) => (heap.size_numbered(i as u64).unwrap_or(0), 1),
            None => (0, 0),
        };
        let retained = Retained::sum(tree, sizes, own);
        progress(phase("typing objects"));
        let rtypes = snap.prog.binary().pclntab().ok().and_then(|t| t.types());
        let types = typed::type_objects(
            &heap,
            snap.mem,
            snap.bias,
            &objects,
            snap.vars,
            rtypes,
            &typed_roots,
        );
        let mut notes = set.unreadable;
        if snap.vars.is_none() {
            notes.push(
                "the executable's DWARF variables could not be read: objects are typed from allocation headers only, and stack roots named by function".to_string(),
            );
        }
        if types.walk_cut_short {
            notes.push("the type walk stopped at its bound (one value per word of the heap): some objects are left unknown".to_string());
        }
        if imprecise_stacks > 0 {
            notes.push(format!(
                "{} goroutines' stacks were scanned in part word by word (what they hold may be over-counted)",
                imprecise_stacks
            ));
        }
        Ok(HeapGraph {
            heap,
            objects,
            roots,
            types,
            parent,
            retained,
            notes,
            conservative_objects: edges.conservative,
        })
    }

    /// The heap walker's totals and the runtime's own accounting.
    pub fn heap_totals(&self) -> HeapTotals {
        self.heap.totals()
    }

    fn first_object(&self) -> usize {
        1 + self.roots.len()
    }

    fn node_of_object(&self, i: u32) -> u32 {
        (self.first_object() + i as usize) as u32
    }

    /// The object holding `addr`: its number, if allocated.
    pub fn object_at(&self, addr: u64) -> Option<u32> {
        self.objects.index_of(&self.heap, addr)
    }

    /// Whether a root reaches object `i`.
    pub fn is_reachable(&self, i: u32) -> bool {
        self.parent
            .get(self.node_of_object(i) as usize)
            .is_some_and(|&p| p != NONE)
    }

    /// Retained bytes and objects of object `i` (itself included).
    pub fn retained(&self, i: u32) -> (u64, u64) {
        let size = || self.heap.size_numbered(u64::from(i)).unwrap_or(0);
        self.retained_sized(i, size)
    }

    /// [`Self::retained`] of object `i`, whose size `size` gives (asked
    /// only when it retains itself alone).
    fn retained_sized(&self, i: u32, size: impl FnOnce() -> u64) -> (u64, u64) {
        if !self.is_reachable(i) {
            return (0, 0);
        }
        match self.retained.of(self.node_of_object(i) as usize) {
            Some((bytes, objects)) => (bytes, u64::from(objects)),
            None => (size(), 1),
        }
    }

    /// Retained bytes and objects of root `k` (0 first).
    fn root_retained(&self, k: usize) -> (u64, u64) {
        self.retained
            .of(k + 1)
            .map_or((0, 0), |(bytes, objects)| (bytes, u64::from(objects)))
    }

    /// The shortest chain from a root to object `i`: the root's name, then
    /// each object's type (a run of one type as `T ×N`); `None` when no
    /// root reaches it.
    pub fn chain(&self, i: u32) -> Option<Vec<String>> {
        let mut at = self.node_of_object(i);
        let mut steps = Vec::new();
        // A chain is at most as long as there are nodes.
        for _ in 0..self.parent.len() {
            if at == 0 {
                steps.reverse();
                return Some(fold_runs(steps));
            }
            steps.push(self.node_name(at));
            at = *self.parent.get(at as usize)?;
            if at == NONE {
                return None;
            }
        }
        None
    }

    fn node_name(&self, node: u32) -> String {
        let n = node as usize;
        if n == 0 {
            return "roots".to_string();
        }
        if n < self.first_object() {
            return self.roots.name(n - 1);
        }
        let obj = (n - self.first_object()) as u32;
        self.types.name_of(obj).to_string()
    }

    /// The type name given to object `i`.
    pub fn type_of(&self, i: u32) -> &str {
        self.types.name_of(i)
    }

    /// Every object's number, base address and size.
    pub fn objects(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.heap
            .objects()
            .enumerate()
            .take(self.objects.len())
            .map(|(i, o)| (i as u32, o.base, o.size))
    }
}

/// A run of one type in a chain (a linked list) as one step, `T ×N`.
fn fold_runs(steps: Vec<String>) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in steps {
        match out.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => out.push((s, 1)),
        }
    }
    out.into_iter()
        .map(|(s, n)| if n > 1 { format!("{s} ×{n}") } else { s })
        .collect()
}

/// The dominator tree and the breadth-first parents of `g`, which is
/// dropped on return; `chains` is called between the two.
fn shape<G: Successors>(g: G, chains: &mut dyn FnMut()) -> (dominators::Tree, Vec<u32>) {
    let tree = dominators::dominator_tree(&g);
    chains();
    let parent = breadth_first(&g);
    (tree, parent)
}

/// Each node's parent on a shortest path from node 0 (0's is itself;
/// unreachable: NONE).
fn breadth_first<G: Successors>(g: &G) -> Vec<u32> {
    let n = g.nodes();
    let mut parent = vec![NONE; n];
    if n == 0 {
        return parent;
    }
    parent[0] = 0;
    let mut queue = std::collections::VecDeque::from([0u32]);
    while let Some(v) = queue.pop_front() {
        for w in g.successors(v) {
            if let Some(p) = parent.get_mut(w as usize) {
                if *p == NONE {
                    *p = v;
                    queue.push_back(w);
                }
            }
        }
    }
    parent
}
