//! The Go heap of a target (a core, or a consistent copy of a live
//! process): its spans and allocated objects ([`Heap`]), which words of an
//! object may hold pointers ([`Heap::pointer_slots`]), the roots that are
//! not goroutine stacks ([`global_roots`]) and a mark over the objects
//! ([`Marks`]), for every release goat reads (Go 1.19 to 1.27).
//!
//! The runtime's own structures are the source: `mheap_.allspans` and each
//! span's `allocBits`/`freeindex` for what is allocated; the heap bitmap
//! (before 1.22) or allocation headers, span-end heap bits and `largeType`
//! (1.22+) for pointers; `moduledata.gcdatamask`/`gcbssmask`, the
//! finalizer queue and span specials for roots. Their offsets come from
//! DWARF, else from goat's table of the releases it is tested against
//! (stripped binaries); with neither goat says so ([`HeapError::NoDwarf`]).

// Parses what the target holds: no `unsafe` is needed here.
#![forbid(unsafe_code)]

#[cfg(test)]
pub(crate) mod hostile_tests;
mod layout;
mod locate;
mod marks;
mod pointers;
mod roots;
mod span_view;
mod spans;
mod table;

use thiserror::Error;

use crate::goruntime::GoProgram;
use crate::process::{Memory, MemoryExt, ReadFault};

pub use marks::{Marks, SkipSlots};
pub use roots::{global_roots, RootKind, RootSlot, Roots};

use layout::{HeapLayout, PointerMetadata};
use spans::{Span, PAGE_SIZE};

#[derive(Debug, Error)]
pub enum HeapError {
    #[error("the executable has no DWARF, and goat has no table of the Go heap's structures (mheap, mspan) for its release: rebuild without -ldflags=-w")]
    NoDwarf,
    #[error("the executable's DWARF lacks {0}, which the heap walker needs")]
    Missing(&'static str),
    #[error("cannot read {what}: {fault}")]
    Unreadable {
        what: &'static str,
        #[source]
        fault: ReadFault,
    },
    #[error("the runtime's heap looks corrupt: {0}")]
    Corrupt(&'static str),
}

/// How sure [`Heap::pointer_slots`] is of the words it gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// From the runtime's pointer metadata: the words the GC would scan.
    Exact,
    /// The metadata could not be read: every aligned word of the object.
    Conservative,
}

/// One allocated heap object (a slot of an in-use span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub base: u64,
    /// The slot's size (the size class, or the whole span for a large
    /// object), as the runtime accounts it.
    pub size: u64,
    /// The span holds no pointers (`spanclass` noscan).
    pub noscan: bool,
    /// The span's index in [`Heap`] and the slot's index in the span.
    pub span: u32,
    pub index: u32,
}

/// Counts over the heap, and the runtime's own accounting read from the
/// target where its DWARF names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapTotals {
    /// Allocated objects (a tiny block counts once, as `MemStats.HeapObjects`
    /// counts it) and their bytes (slot sizes, as `MemStats.HeapAlloc`).
    pub objects: u64,
    pub bytes: u64,
    /// In-use spans and their pages.
    pub spans: u64,
    pub pages: u64,
    /// Spans `allspans` lists that could not be read or did not hold
    /// together (skipped).
    pub bad_spans: u64,
    /// In-use spans whose allocated slots differ from their `allocCount`
    /// (a span mid-allocation, or an unreadable `allocBits`).
    pub count_mismatches: u64,
    /// `mheap_.pagesInUse`.
    pub runtime_pages_in_use: Option<u64>,
    /// `gcController.heapMarked`: bytes marked by the last GC.
    pub runtime_heap_marked: Option<u64>,
    /// `gcController.heapLive`: bytes the GC pacer counts as live (marked,
    /// plus whole spans cached since).
    pub runtime_heap_live: Option<u64>,
}

/// What the runtime's span structures say, loaded once.
pub struct Heap {
    spans: Vec<Span>,
    /// A bit per slot of every span (`Span::bits_at`): allocated.
    allocated: Vec<u64>,
    /// Per span: how many allocated objects come before it, in address
    /// order (an object's number, [`Heap::number_of`]).
    first_number: Vec<u64>,
    metadata: PointerMetadata,
    /// Per arena (64 MiB, sorted by index) the span of each of its pages
    /// (`NO_SPAN` for none): `object_of` without a search over the
    /// spans, as the runtime's own `spanOf` finds them.
    page_spans: Vec<(u64, Box<[u32]>)>,
    /// Go 1.19–1.21: `(arena index, heapArena address)`, sorted.
    arenas: Vec<(u64, u64)>,
    totals: HeapTotals,
    layout: HeapLayout,
}

/// A page of `page_spans` in no span.
const NO_SPAN: u32 = u32::MAX;
/// Pages per arena.
const ARENA_PAGES: u64 = ARENA_BYTES / PAGE_SIZE;
/// Most arenas given a page table (1 TiB of heap); past that `object_of`
/// searches the spans.
const MAX_PAGE_TABLE_ARENAS: usize = 1 << 14;

/// `heapArenaBytes` on linux/amd64: 64 MiB.
const ARENA_BYTES: u64 = 64 << 20;
/// `arenaBaseOffset` on linux/amd64, and `1 << arenaL2Bits` (arenaL1Bits
/// is 0 there: `mheap_.arenas[0]` is the one array of arena pointers).
const ARENA_BASE_OFFSET: u64 = 0xffff_8000_0000_0000;
const ARENA_L2_ENTRIES: u64 = 1 << 22;

fn arena_index(addr: u64) -> u64 {
    addr.wrapping_sub(ARENA_BASE_OFFSET) / ARENA_BYTES
}

impl Heap {
    /// Reads mheap_ (arenas / span index, in-use spans, each span's element
    /// size, alloc bits, noscan) from `mem`. `bias` is the executable's
    /// load bias (PIE), as GoProgram uses it.
    pub fn load(prog: &GoProgram, mem: &dyn Memory, bias: u64) -> Result<Heap, HeapError> {
        let layout = HeapLayout::load(prog)?;
        Self::load_with(layout, mem, bias)
    }

    fn load_with(layout: HeapLayout, mem: &dyn Memory, bias: u64) -> Result<Heap, HeapError> {
        let mheap = layout.mheap.wrapping_add(bias);
        let loaded = spans::load_spans(mem, &layout, mheap)?;
        let arenas = match layout.metadata {
            PointerMetadata::Headers { .. } => Vec::new(),
            _ => read_arenas(mem, mheap.wrapping_add(layout.arenas), &loaded.spans)?,
        };
        let read_opt = |addr: Option<u64>| addr.and_then(|a| mem.read_u64(a).ok());
        let mut totals = HeapTotals {
            bad_spans: loaded.bad_spans,
            count_mismatches: loaded.count_mismatches,
            runtime_pages_in_use: read_opt(layout.pages_in_use.map(|o| mheap.wrapping_add(o))),
            runtime_heap_marked: read_opt(layout.heap_marked.map(|a| a.wrapping_add(bias))),
            runtime_heap_live: read_opt(layout.heap_live.map(|a| a.wrapping_add(bias))),
            ..HeapTotals::default()
        };
        let mut first_number = Vec::with_capacity(loaded.spans.len());
        for s in &loaded.spans {
            first_number.push(totals.objects);
            let words = loaded
                .allocated
                .get(s.bits_at..s.bits_at + s.words())
                .unwrap_or(&[]);
            let n: u64 = words.iter().map(|w| u64::from(w.count_ones())).sum();
            totals.objects += n;
            totals.bytes += n * s.elemsize;
            totals.spans += 1;
            totals.pages += s.npages;
        }
        let page_spans = page_table(&loaded.spans);
        Ok(Heap {
            page_spans,
            spans: loaded.spans,
            allocated: loaded.allocated,
            first_number,
            metadata: layout.metadata,
            arenas,
            totals,
            layout,
        })
    }

    /// The allocated object containing `addr`, if any (free slots and
    /// non-heap addresses: None).
    pub fn object_of(&self, addr: u64) -> Option<Object> {
        let i = match self.page_spans.is_empty() {
            false => {
                let ai = arena_index(addr);
                let k = self.page_spans.binary_search_by_key(&ai, |a| a.0).ok()?;
                let page = (addr.wrapping_sub(ARENA_BASE_OFFSET) % ARENA_BYTES) / PAGE_SIZE;
                let span = *self.page_spans.get(k)?.1.get(page as usize)?;
                (span != NO_SPAN).then_some(span as usize)?
            }
            true => self
                .spans
                .partition_point(|s| s.base <= addr)
                .checked_sub(1)?,
        };
        let s = self.spans.get(i)?;
        if addr >= s.end() {
            return None;
        }
        let index = (addr - s.base) / s.elemsize;
        if index >= u64::from(s.nelems) {
            return None;
        }
        self.slot(i, index as u32)
    }

    /// `obj`'s number: its place among the allocated objects in address
    /// order, as [`Heap::objects`] gives them (0 first).
    pub fn number_of(&self, obj: &Object) -> Option<u64> {
        let s = self.spans.get(obj.span as usize)?;
        let first = *self.first_number.get(obj.span as usize)?;
        let words = self.allocated.get(s.bits_at..s.bits_at + s.words())?;
        let whole = obj.index as usize / 64;
        let before: u64 = words
            .get(..whole)?
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let mask = (1u64 << (obj.index % 64)) - 1;
        let part = words
            .get(whole)
            .map_or(0, |w| u64::from((w & mask).count_ones()));
        Some(first + before + part)
    }

    /// The size of the object numbered `n`: its span's element size,
    /// found by the binary search of [`Heap::object_numbered`] alone.
    pub fn size_numbered(&self, n: u64) -> Option<u64> {
        Some(self.spans.get(self.span_numbering(n)?)?.elemsize)
    }

    /// The index of the span holding the object numbered `n`: the last
    /// span numbered from at most `n` (spans without objects share their
    /// successor's first number and come before it).
    fn span_numbering(&self, n: u64) -> Option<usize> {
        if n >= self.totals.objects {
            return None;
        }
        self.first_number
            .partition_point(|&f| f <= n)
            .checked_sub(1)
    }

    /// The object numbered `n` (the inverse of [`Heap::number_of`]): its
    /// span found by a binary search, its slot by counting set bits. The
    /// heap's own bitmaps are the index: no table per object.
    pub fn object_numbered(&self, n: u64) -> Option<Object> {
        let i = self.span_numbering(n)?;
        let s = self.spans.get(i)?;
        let mut k = n - self.first_number.get(i)?;
        let words = self.allocated.get(s.bits_at..s.bits_at + s.words())?;
        for (w, &bits) in words.iter().enumerate() {
            let ones = u64::from(bits.count_ones());
            if k < ones {
                let b = SetBits(bits).nth(k as usize)?;
                return self.slot(i, (w * 64 + b) as u32);
            }
            k -= ones;
        }
        None
    }

    /// The object in slot `index` of span `span`, when allocated.
    fn slot(&self, span: usize, index: u32) -> Option<Object> {
        let s = self.spans.get(span)?;
        let word = self.allocated.get(s.bits_at + index as usize / 64)?;
        if word >> (index % 64) & 1 == 0 {
            return None;
        }
        Some(Object {
            base: s.base + u64::from(index) * s.elemsize,
            size: s.elemsize,
            noscan: s.noscan,
            span: span as u32,
            index,
        })
    }

    /// Every allocated object, in address order.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.spans.iter().enumerate().flat_map(move |(i, s)| {
            let words = self
                .allocated
                .get(s.bits_at..s.bits_at + s.words())
                .unwrap_or(&[]);
            words
                .iter()
                .enumerate()
                .flat_map(move |(w, &bits)| SetBits(bits).map(move |b| (w * 64 + b) as u32))
                .filter_map(move |index| self.slot(i, index))
        })
    }

    /// Appends the addresses of `obj`'s words that may hold pointers: from
    /// the release's pointer metadata, or every aligned word when the
    /// metadata cannot be read ([`Precision::Conservative`]).
    pub fn pointer_slots(&self, mem: &dyn Memory, obj: &Object, out: &mut Vec<u64>) -> Precision {
        if obj.noscan {
            return Precision::Exact;
        }
        let Some(span) = self.spans.get(obj.span as usize) else {
            return Precision::Exact;
        };
        match pointers::slots(self, span, mem, obj, out) {
            Some(()) => Precision::Exact,
            None => {
                conservative(mem, obj, out);
                Precision::Conservative
            }
        }
    }

    /// The runtime type descriptor (run-time address) in `obj`'s allocation
    /// header, and where the typed data starts (after the header word of a
    /// small object, at the base of a large one): Go 1.22+ objects of more
    /// than 512 bytes with pointers carry their type so. `None` otherwise.
    pub fn header_type(&self, mem: &dyn Memory, obj: &Object) -> Option<(u64, u64)> {
        let span = self.spans.get(obj.span as usize)?;
        pointers::header_type(self, span, mem, obj)
    }

    /// Totals: objects and bytes allocated, spans in use, and the runtime's
    /// own accounting read from the target.
    pub fn totals(&self) -> HeapTotals {
        self.totals
    }

    /// Every in-use span's `[base, end)`, in address order: where the
    /// heap's objects are (a live copy's reader fetches them ahead).
    pub fn span_ranges(&self) -> Vec<(u64, u64)> {
        self.spans.iter().map(|s| (s.base, s.end())).collect()
    }

    /// How many in-use spans; every [`Object::span`] is below it.
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// `obj`'s slot among all slots of all spans, below
    /// [`Self::slot_count`]: a dense number where an address is sparse
    /// (a bitset over objects instead of a hash set of addresses).
    pub fn slot_number(&self, obj: &Object) -> Option<usize> {
        let span = self.spans.get(obj.span as usize)?;
        let n = span
            .bits_at
            .checked_mul(64)?
            .checked_add(obj.index as usize)?;
        (n < self.slot_count()).then_some(n)
    }

    /// How many slot numbers there are (see [`Self::slot_number`]).
    pub fn slot_count(&self) -> usize {
        self.allocated.len().saturating_mul(64)
    }

    fn allocated_words(&self) -> usize {
        self.allocated.len()
    }

    fn arena(&self, addr: u64) -> Option<u64> {
        let ai = arena_index(addr);
        let i = self.arenas.binary_search_by_key(&ai, |a| a.0).ok()?;
        self.arenas.get(i).map(|a| a.1)
    }
}

/// The span of every page of the arenas the spans cover; empty (the
/// spans are searched instead) when they cover more than
/// [`MAX_PAGE_TABLE_ARENAS`] arenas.
fn page_table(spans: &[Span]) -> Vec<(u64, Box<[u32]>)> {
    let mut arenas: Vec<u64> = Vec::new();
    for s in spans {
        let (first, last) = (arena_index(s.base), arena_index(s.end() - 1));
        if last.saturating_sub(first) >= MAX_PAGE_TABLE_ARENAS as u64 {
            return Vec::new();
        }
        arenas.extend(first..=last);
        if arenas.len() > 4 * MAX_PAGE_TABLE_ARENAS {
            arenas.sort_unstable();
            arenas.dedup();
            if arenas.len() > MAX_PAGE_TABLE_ARENAS {
                return Vec::new();
            }
        }
    }
    arenas.sort_unstable();
    arenas.dedup();
    if arenas.len() > MAX_PAGE_TABLE_ARENAS {
        return Vec::new();
    }
    let mut table: Vec<(u64, Box<[u32]>)> = arenas
        .into_iter()
        .map(|a| (a, vec![NO_SPAN; ARENA_PAGES as usize].into_boxed_slice()))
        .collect();
    // Spans do not overlap: each page is set once. Corrupt ones that do
    // cost no more than that before the search is used instead.
    let mut budget = (table.len() as u64).saturating_mul(ARENA_PAGES);
    for (i, s) in spans.iter().enumerate() {
        let Ok(i) = u32::try_from(i) else {
            return Vec::new();
        };
        let mut at = s.base;
        while at < s.end() {
            if budget == 0 {
                return Vec::new();
            }
            budget -= 1;
            let ai = arena_index(at);
            let page = (at.wrapping_sub(ARENA_BASE_OFFSET) % ARENA_BYTES) / PAGE_SIZE;
            if let Ok(k) = table.binary_search_by_key(&ai, |a| a.0) {
                if let Some(p) = table[k].1.get_mut(page as usize) {
                    *p = i;
                }
            }
            at = at.saturating_add(PAGE_SIZE);
        }
    }
    table
}

/// Bytes of an object probed at once by [`conservative`].
const PROBE_CHUNK: u64 = 64 << 10;

/// Every aligned word of `obj`, in the chunks whose first and last words
/// can be read: a word that cannot be read holds no pointer goat can
/// follow, and a hostile span claiming gigabytes that are not there costs
/// no list of their words.
fn conservative(mem: &dyn Memory, obj: &Object, out: &mut Vec<u64>) {
    let end = obj.base.saturating_add(obj.size);
    let mut at = obj.base;
    while at < end {
        let to = at.saturating_add(PROBE_CHUNK).min(end);
        let readable = to - at >= 8 && mem.read_u64(at).is_ok() && mem.read_u64(to - 8).is_ok();
        if readable {
            out.extend((0..(to - at) / 8).map(|w| at + w * 8));
        }
        at = to;
    }
}

/// The heapArena of every arena a span touches (Go 1.19–1.21, whose heap
/// bitmap lives there).
fn read_arenas(
    mem: &dyn Memory,
    arenas_field: u64,
    spans: &[Span],
) -> Result<Vec<(u64, u64)>, HeapError> {
    let l2 = mem
        .read_u64(arenas_field)
        .map_err(|fault| HeapError::Unreadable {
            what: "mheap_.arenas",
            fault,
        })?;
    let mut indices: Vec<u64> = Vec::new();
    for s in spans {
        let first = arena_index(s.base);
        let last = arena_index(s.end() - 1);
        // A span covers at most its own pages' arenas (bounded by
        // ARENA_L2_ENTRIES in all).
        let mut ai = first;
        while ai <= last && ai < ARENA_L2_ENTRIES && indices.len() < ARENA_L2_ENTRIES as usize {
            if indices.last() != Some(&ai) {
                indices.push(ai);
            }
            ai += 1;
        }
    }
    indices.sort_unstable();
    indices.dedup();
    let mut out = Vec::with_capacity(indices.len());
    for ai in indices {
        if let Ok(ha) = mem.read_u64(l2.wrapping_add(ai * 8)) {
            if ha != 0 {
                out.push((ai, ha));
            }
        }
    }
    Ok(out)
}

/// The indices of the set bits of a word, lowest first.
struct SetBits(u64);

impl Iterator for SetBits {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}
