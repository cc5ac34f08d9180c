//! The object graph: every allocated object numbered in address order, and
//! its outgoing pointers (the words its pointer metadata names, read from
//! the copy, that land in another allocated object) in one compressed
//! adjacency list. Node 0 is a super-root, nodes `1..=roots` are the
//! named roots, objects follow.

use std::collections::HashMap;
use std::marker::PhantomData;

use crate::heapwalk::{Heap, Object, Precision};
use crate::process::Memory;

use super::roots::Held;

/// Bytes of an object read at once to take its pointer words' values.
const READ_CHUNK: u64 = 256 << 10;

/// Objects in address order, numbered as `Heap::number_of` numbers them:
/// the heap walker's slot bitmaps are the index both ways, so nothing is
/// kept per object here (10 million objects would be 160 MB of bases and
/// sizes).
pub(super) struct Objects {
    len: usize,
}

impl Objects {
    pub fn collect(heap: &Heap) -> Objects {
        Objects {
            len: usize::try_from(heap.totals().objects).unwrap_or(0),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The number of the object holding `addr`, if one does.
    pub fn index_of(&self, heap: &Heap, addr: u64) -> Option<u32> {
        let obj = heap.object_of(addr)?;
        u32::try_from(heap.number_of(&obj)?).ok()
    }

    /// The object holding `addr` and its number, if one does.
    pub fn numbered_at(&self, heap: &Heap, addr: u64) -> Option<(u32, Object)> {
        let obj = heap.object_of(addr)?;
        Some((u32::try_from(heap.number_of(&obj)?).ok()?, obj))
    }

    /// The object numbered `i`, as the heap walker describes it.
    pub fn object(&self, heap: &Heap, i: u32) -> Option<Object> {
        heap.object_numbered(u64::from(i))
    }
}

/// What the graph phases ask of a graph.
pub(super) trait Successors {
    /// Holds as many edges as the graph has.
    type Offset: Offset;
    fn nodes(&self) -> usize;
    /// Node `n`'s successors, in increasing order.
    fn successors(&self, n: u32) -> Targets<'_>;
    fn has_successors(&self, n: u32) -> bool;
}

/// Which of a run of items (nodes, places) have a list, a bit each, and
/// how many before each word of bits do: the k-th item with a list has
/// the k-th range of offsets, so items without one (a heap's objects
/// without pointers; objects with one predecessor) take no offset.
pub(super) struct Listed {
    bits: Vec<u64>,
    rank: Vec<u32>,
    items: usize,
    lists: usize,
}

impl Listed {
    pub fn with_capacity(items: usize) -> Listed {
        Listed {
            bits: Vec::with_capacity(items.div_ceil(64)),
            rank: Vec::with_capacity(items.div_ceil(64)),
            items: 0,
            lists: 0,
        }
    }

    /// The next item, with a list or not.
    pub fn push(&mut self, has_list: bool) {
        if self.items.is_multiple_of(64) {
            self.bits.push(0);
            // Items are nodes, numbered in a u32: so are their lists.
            self.rank
                .push(u32::try_from(self.lists).unwrap_or(u32::MAX));
        }
        if has_list {
            if let Some(w) = self.bits.last_mut() {
                *w |= 1 << (self.items % 64);
            }
            self.lists += 1;
        }
        self.items += 1;
    }

    pub fn items(&self) -> usize {
        self.items
    }

    /// How many items have a list.
    pub fn lists(&self) -> usize {
        self.lists
    }

    /// Which list item `i`'s is, if it has one.
    pub fn list_of(&self, i: usize) -> Option<usize> {
        let word = *self.bits.get(i / 64)?;
        if word >> (i % 64) & 1 == 0 {
            return None;
        }
        let before = (word & ((1u64 << (i % 64)) - 1)).count_ones();
        Some(*self.rank.get(i / 64)? as usize + before as usize)
    }
}

/// Successor lists of the nodes that have any: the k-th such node's is
/// `bytes[offsets[k]..offsets[k+1]]`, its targets in increasing order as
/// LEB128 numbers: the first as its distance from the node (zigzag: it
/// may lie before), each next as its distance from the last. Objects
/// point near themselves (a list's next cell was allocated beside it):
/// on bigpop (15.9M objects, 20.6M edges) the lists take 35 MB where
/// u32s took 82 MB. What `build` makes.
pub(super) struct Sparse<O> {
    listed: Listed,
    offsets: BlockOffsets,
    bytes: Vec<u8>,
    /// How many edges there may be (no more than bytes).
    edges: PhantomData<O>,
}

/// The `k`th of lists kept end to end, `targets[offsets[k]..offsets[k+1]]`:
/// empty where an offset is missing or out of order (nothing here panics).
pub(super) fn list_at<'t, O: Offset, T>(offsets: &[O], targets: &'t [T], k: usize) -> &'t [T] {
    match (offsets.get(k), offsets.get(k + 1)) {
        (Some(&a), Some(&b)) => targets.get(a.at()..b.at()).unwrap_or(&[]),
        _ => &[],
    }
}

/// One node's successors as [`Sparse`] encodes them, decoded as they
/// are taken; [`Targets::position`] and [`Targets::resume`] let a search
/// keep its place in a list in 12 bytes.
#[derive(Clone)]
pub(super) struct Targets<'a> {
    bytes: &'a [u8],
    /// Bytes taken; 0: the first target is next.
    at: usize,
    /// The last target taken (the node itself before the first).
    last: u32,
}

impl<'a> Targets<'a> {
    /// Where the list was left: bytes taken and the last target.
    pub fn position(&self) -> (usize, u32) {
        (self.at, self.last)
    }

    /// The list from a [`Targets::position`] of it.
    pub fn resume(self, (at, last): (usize, u32)) -> Targets<'a> {
        Targets { at, last, ..self }
    }

    fn number(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        Some(v)
    }
}

impl Iterator for Targets<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let first = self.at == 0;
        let v = self.number()?;
        // Our own encoding of u32s: a wrong value is only out of range.
        self.last = if first {
            let d = (v >> 1) as i64 ^ -((v & 1) as i64);
            (i64::from(self.last) + d) as u32
        } else {
            self.last.wrapping_add(v as u32)
        };
        Some(self.last)
    }
}

fn push_number(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Builds a [`Sparse`] a node at a time.
struct SparseBuilder {
    listed: Listed,
    offsets: BlockOffsets,
    bytes: Vec<u8>,
    nodes: u32,
}

impl SparseBuilder {
    fn with_capacity(nodes: usize) -> SparseBuilder {
        let mut offsets = BlockOffsets::default();
        offsets.push(0);
        SparseBuilder {
            listed: Listed::with_capacity(nodes),
            offsets,
            bytes: Vec::new(),
            nodes: 0,
        }
    }

    /// The next node's successors (sorted and deduplicated here).
    fn push(&mut self, list: &mut Vec<u32>) {
        list.sort_unstable();
        list.dedup();
        let node = self.nodes;
        self.nodes = self.nodes.saturating_add(1);
        self.listed.push(!list.is_empty());
        let Some((&first, rest)) = list.split_first() else {
            return;
        };
        let d = i64::from(first) - i64::from(node);
        push_number(&mut self.bytes, ((d << 1) ^ (d >> 63)) as u64);
        let mut last = first;
        for &t in rest {
            push_number(&mut self.bytes, u64::from(t - last));
            last = t;
        }
        self.offsets.push(self.bytes.len() as u64);
    }

    fn finish(mut self) -> Built {
        self.bytes.shrink_to_fit();
        self.offsets.shrink_to_fit();
        // An edge takes a byte at least: bytes that fit a u32 hold
        // edges that do.
        if u32::try_from(self.bytes.len()).is_ok() {
            Built::Small(self.sparse())
        } else {
            Built::Large(self.sparse())
        }
    }

    fn sparse<O>(self) -> Sparse<O> {
        Sparse {
            listed: self.listed,
            offsets: self.offsets,
            bytes: self.bytes,
            edges: PhantomData,
        }
    }
}

#[cfg(test)]
impl Sparse<usize> {
    /// The graph of `lists` (node n's successors are `lists[n]`), as
    /// tests build it.
    pub fn from_lists(lists: &[Vec<u32>]) -> Sparse<usize> {
        let mut b = SparseBuilder::with_capacity(lists.len());
        for list in lists {
            b.push(&mut list.clone());
        }
        b.sparse()
    }
}

impl<O: Offset> Successors for Sparse<O> {
    type Offset = O;
    fn nodes(&self) -> usize {
        self.listed.items()
    }
    fn successors(&self, n: u32) -> Targets<'_> {
        let list = self.listed.list_of(n as usize).and_then(|k| {
            let (a, b) = (self.offsets.get(k)?, self.offsets.get(k + 1)?);
            self.bytes.get(a..b)
        });
        let bytes = list.unwrap_or(&[]);
        Targets {
            bytes,
            at: 0,
            last: n,
        }
    }
    fn has_successors(&self, n: u32) -> bool {
        self.listed.list_of(n as usize).is_some()
    }
}

/// The graph `build` made: its offsets in u32s when its edges allow.
pub(super) enum Built {
    Small(Sparse<u32>),
    Large(Sparse<usize>),
}

/// An offset into a list of edges: a u32 where the edges are few enough.
pub(super) trait Offset: Copy {
    fn zero() -> Self;
    fn at(self) -> usize;
    /// `self - 1`; the caller never leaves the edges' range.
    fn down(self) -> Self;
    fn add(self, other: Self) -> Self;
    /// A count of edges, which the caller knows fits.
    fn count(c: u32) -> Self;
}

impl Offset for u32 {
    fn zero() -> u32 {
        0
    }
    fn at(self) -> usize {
        self as usize
    }
    fn down(self) -> u32 {
        self.saturating_sub(1)
    }
    fn add(self, other: u32) -> u32 {
        self.saturating_add(other)
    }
    fn count(c: u32) -> u32 {
        c
    }
}

impl Offset for usize {
    fn zero() -> usize {
        0
    }
    fn at(self) -> usize {
        self
    }
    fn down(self) -> usize {
        self.saturating_sub(1)
    }
    fn add(self, other: usize) -> usize {
        self.saturating_add(other)
    }
    fn count(c: u32) -> usize {
        c as usize
    }
}

/// Offsets into a list of lists, in 2 bytes each where 4 or 8 would be:
/// each run of 64 is kept as its first (a word) and the others' distances
/// from it in u16s. A run whose lists take 64 KiB or more (a large
/// object's pointers) is kept whole beside, its first distance
/// [`WIDE`]. On bigpop (10M lists) 20 MB where u32s took 40 MB.
#[derive(Default)]
pub(super) struct BlockOffsets {
    base: Vec<u64>,
    within: Vec<u16>,
    wide: HashMap<usize, Vec<u64>>,
}

/// The first distance of a run kept whole (a run's first is 0 from
/// itself otherwise).
const WIDE: u16 = u16::MAX;
const RUN: usize = 64;

impl BlockOffsets {
    fn push(&mut self, at: u64) {
        let j = self.within.len();
        let run = j / RUN;
        if j.is_multiple_of(RUN) {
            self.base.push(at);
            self.within.push(0);
            return;
        }
        if let Some(whole) = self.wide.get_mut(&run) {
            whole.push(at);
            self.within.push(0);
            return;
        }
        let base = self.base.get(run).copied().unwrap_or(0);
        match u16::try_from(at.saturating_sub(base)) {
            Ok(d) if d != WIDE => self.within.push(d),
            _ => {
                let mut whole: Vec<u64> = self.within[run * RUN..]
                    .iter()
                    .map(|&d| base + u64::from(d))
                    .collect();
                whole.push(at);
                self.wide.insert(run, whole);
                self.within[run * RUN] = WIDE;
                self.within.push(0);
            }
        }
    }

    fn get(&self, j: usize) -> Option<usize> {
        let run = j / RUN;
        let at = if *self.within.get(run * RUN)? == WIDE {
            *self.wide.get(&run)?.get(j % RUN)?
        } else {
            self.base.get(run)? + u64::from(*self.within.get(j)?)
        };
        usize::try_from(at).ok()
    }

    fn shrink_to_fit(&mut self) {
        self.base.shrink_to_fit();
        self.within.shrink_to_fit();
    }
}

/// What building the edges met.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct EdgeStats {
    /// Objects whose pointer metadata could not be read (scanned word by
    /// word: more edges than the GC has, never fewer).
    pub conservative: u64,
}

/// The graph: the super-root's edges to every root, each root's to the
/// objects it holds (`roots`, object numbers), then every object's.
/// `progress(objects, bytes)` is called every so many objects.
pub(super) fn build(
    heap: &Heap,
    mem: &dyn Memory,
    objects: &Objects,
    roots: &Held,
    progress: &mut dyn FnMut(u64, u64),
) -> (Built, EdgeStats) {
    let first_object = 1 + roots.len() as u64;
    let node = |i: u32| u32::try_from(first_object + u64::from(i)).ok();
    let nodes = first_object as usize + objects.len();
    let mut graph = SparseBuilder::with_capacity(nodes);
    let mut stats = EdgeStats::default();
    let mut list: Vec<u32> = (1..first_object)
        .filter_map(|r| u32::try_from(r).ok())
        .collect();
    graph.push(&mut list);
    for held in roots.iter() {
        list.clear();
        list.extend(held.iter().filter_map(|&o| node(o)));
        graph.push(&mut list);
    }
    let mut slots = Vec::new();
    let mut values = Vec::new();
    let mut bytes = 0u64;
    let mut scratch = Vec::new();
    let mut i = 0u64;
    heap.for_each_object(mem, &mut scratch, |obj, mem| {
        if i >= objects.len() as u64 {
            return;
        }
        slots.clear();
        if heap.pointer_slots(mem, obj, &mut slots) == Precision::Conservative {
            stats.conservative += 1;
        }
        values.clear();
        read_slots(mem, obj, &mut slots, &mut values);
        list.clear();
        list.extend(
            values
                .iter()
                .filter_map(|&v| objects.index_of(heap, v).and_then(node)),
        );
        graph.push(&mut list);
        bytes = bytes.saturating_add(obj.size);
        i += 1;
        if i.is_multiple_of(65536) {
            progress(i, bytes);
        }
    });
    (graph.finish(), stats)
}

/// The non-zero values of `obj`'s words at `slots` (sorted here), read a
/// chunk at a time from the copy; a word that cannot be read is skipped.
pub(super) fn read_slots(mem: &dyn Memory, obj: &Object, slots: &mut [u64], out: &mut Vec<u64>) {
    slots.sort_unstable();
    let end = obj.base.saturating_add(obj.size);
    let mut buf = Vec::new();
    let mut i = 0;
    while i < slots.len() {
        let from = slots[i];
        let to = from.saturating_add(READ_CHUNK).min(end);
        buf.resize(to.saturating_sub(from) as usize, 0);
        let readable = mem.read(from, &mut buf).is_ok();
        let start = i;
        while i < slots.len() && slots[i] >= from && slots[i].saturating_add(8) <= to {
            if readable {
                let at = (slots[i] - from) as usize;
                if let Some(w) = buf.get(at..at + 8) {
                    let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
                    if v != 0 {
                        out.push(v);
                    }
                }
            }
            i += 1;
        }
        // A slot past the object's end for a whole word (hostile
        // metadata) is skipped, so the loop always moves on.
        if i == start {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_in_runs_narrow_and_wide() {
        // Runs of small steps; two runs with a step past a u16 (wide),
        // one of them beginning far from the last (its first is a word:
        // that alone makes no run wide); a last run cut short.
        let mut want = vec![0u64];
        for j in 1..300u64 {
            let step = match j {
                70 => 1 << 20,
                128 => 1 << 30,
                130 => 70_000,
                _ => j % 7,
            };
            want.push(want[want.len() - 1] + step);
        }
        let mut offsets = BlockOffsets::default();
        for &at in &want {
            offsets.push(at);
        }
        for (j, &at) in want.iter().enumerate() {
            assert_eq!(offsets.get(j), Some(at as usize), "offset {j}");
        }
        assert_eq!(offsets.get(want.len()), None);
        assert_eq!(offsets.wide.len(), 2);
    }

    #[test]
    fn lists_decode_as_given() {
        let lists = vec![
            vec![3, 1, 2],
            vec![],
            vec![0, 1_000_000, 5],
            vec![4, 4, 4],
            vec![u32::MAX, 0],
        ];
        let g = Sparse::from_lists(&lists);
        assert_eq!(g.nodes(), 5);
        for (n, list) in lists.iter().enumerate() {
            let mut want = list.clone();
            want.sort_unstable();
            want.dedup();
            let got: Vec<u32> = g.successors(n as u32).collect();
            assert_eq!(got, want, "node {n}");
            assert_eq!(g.has_successors(n as u32), !want.is_empty());
        }
        // A list left and taken up again.
        let mut t = g.successors(2);
        assert_eq!(t.next(), Some(0));
        let at = t.position();
        assert_eq!(
            g.successors(2).resume(at).collect::<Vec<_>>(),
            vec![5, 1_000_000]
        );
    }
}
