//! Every object's reference chain as a stack, for a profile whose flame
//! graph shows what holds the memory (the layout goref uses): the root at
//! the bottom, then each object's type along the shortest path, the
//! object's own type on top. A run of objects of one type (a linked
//! list) is one frame, and a chain deeper than [`MAX_DEPTH`] frames keeps
//! its first ones: millions of objects share a few thousand stacks.

use std::collections::HashMap;

use super::dominators::NONE;
use super::HeapGraph;

/// Frames of a stack, at most.
pub const MAX_DEPTH: usize = 64;
/// The bottom frame of what no root reaches.
pub const UNREACHABLE: &str = "unreachable (garbage not swept yet, or roots goat does not see)";

/// Stacks with their objects and bytes.
pub struct ReferenceStacks {
    /// Frame names (roots' names and types').
    pub frames: Vec<String>,
    /// Each stack, its frames leaf first, and its objects and bytes.
    pub stacks: Vec<(Vec<u32>, u64, u64)>,
}

/// A stack as a tree: (parent stack or NONE, frame, depth).
struct Tree {
    nodes: Vec<(u32, u32, u32)>,
    index: HashMap<(u32, u32), u32>,
}

impl Tree {
    fn child(&mut self, parent: u32, frame: u32) -> u32 {
        if parent != NONE {
            let (_, last, depth) = self.nodes[parent as usize];
            if last == frame || depth as usize >= MAX_DEPTH {
                return parent;
            }
        }
        if let Some(&s) = self.index.get(&(parent, frame)) {
            return s;
        }
        let depth = match parent {
            NONE => 1,
            p => self.nodes[p as usize].2 + 1,
        };
        let s = self.nodes.len() as u32;
        self.nodes.push((parent, frame, depth));
        self.index.insert((parent, frame), s);
        s
    }
}

impl HeapGraph {
    /// Every allocated object's stack; see the module docs.
    pub fn reference_stacks(&self) -> ReferenceStacks {
        let roots = self.roots.len() as u32;
        let types = self.types.names.len() as u32;
        let unreachable = roots + types;
        let mut tree = Tree {
            nodes: Vec::new(),
            index: HashMap::new(),
        };
        let first = self.first_object();
        // Each graph node's stack, found once: climb to a known one, then
        // give the stacks on the way down.
        let mut stack_of = vec![NONE; self.parent.len()];
        let mut climb = Vec::new();
        let unreachable_stack = tree.child(NONE, unreachable);
        let frame_of = |node: usize| -> u32 {
            if node < first {
                node.saturating_sub(1) as u32
            } else {
                roots + self.types.of.get(node - first).unwrap_or(0)
            }
        };
        for node in first..self.parent.len() {
            if stack_of[node] != NONE {
                continue;
            }
            if self.parent[node] == NONE {
                stack_of[node] = tree.child(unreachable_stack, frame_of(node));
                continue;
            }
            climb.clear();
            let mut at = node;
            // Parents lead to node 0 without a cycle (breadth-first): at
            // most as many steps as nodes.
            while at != 0 && stack_of[at] == NONE && climb.len() < self.parent.len() {
                climb.push(at);
                at = self.parent[at] as usize;
            }
            let mut s = if at == 0 { NONE } else { stack_of[at] };
            for &n in climb.iter().rev() {
                s = tree.child(s, frame_of(n));
                stack_of[n] = s;
            }
        }
        let mut sums: HashMap<u32, (u64, u64)> = HashMap::new();
        for (i, _, size) in self.objects() {
            let i = i as usize;
            if let Some(&s) = stack_of.get(first + i) {
                let e = sums.entry(s).or_default();
                e.0 += 1;
                e.1 += size;
            }
        }
        let mut stacks: Vec<(Vec<u32>, u64, u64)> = sums
            .into_iter()
            .map(|(s, (objects, bytes))| {
                let mut frames = Vec::new();
                let mut at = s;
                while at != NONE && frames.len() <= MAX_DEPTH {
                    let (parent, frame, _) = tree.nodes[at as usize];
                    frames.push(frame);
                    at = parent;
                }
                (frames, objects, bytes)
            })
            .collect();
        stacks.sort_unstable_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        // Roots' names only for the roots some stack starts from: a
        // million goroutines' roots need not all be named.
        let mut used = vec![false; self.roots.len()];
        for (frames, _, _) in &stacks {
            for &f in frames {
                if let Some(u) = used.get_mut(f as usize) {
                    *u = true;
                }
            }
        }
        let mut frames: Vec<String> = used
            .iter()
            .enumerate()
            .map(|(k, &u)| if u { self.roots.name(k) } else { String::new() })
            .collect();
        frames.extend(self.types.names.iter().cloned());
        frames.push(UNREACHABLE.to_string());
        ReferenceStacks { frames, stacks }
    }
}
