//! The heap's spans as `mheap_.allspans` lists them: every in-use span's
//! address range, element size, noscan bit and which of its slots hold an
//! allocated object, in one bitmap for the whole heap (a bit per slot, no
//! map per object).
//!
//! A slot is allocated when its bit in `allocBits` is set or its index is
//! below `freeindex` (mbitmap.go, `nextFreeIndex`: the allocator hands out
//! the free slots below `freeindex` without setting their bits until the
//! next sweep).

use crate::process::{Memory, MemoryExt, ReadFault};

use super::layout::{HeapLayout, SpanFields};
use super::HeapError;

/// The runtime's page size (`_PageSize`, 8 KiB on every release).
pub(super) const PAGE_SIZE: u64 = 8192;
/// `mSpanInUse`: a span of the garbage-collected heap.
const SPAN_IN_USE: u64 = 1;
/// Most spans goat takes from `allspans`: 64 Mi pages would be a 512 GiB
/// heap; a longer list is corrupt.
const MAX_SPANS: u64 = 1 << 26;
/// Spans read per batch of reads.
const BATCH: usize = 4096;
/// `_MaxSmallSize`, and the most pages a small size class's span has
/// (`class_to_allocnpages`, 10 in every release goat reads).
const MAX_SMALL_SIZE: u64 = 32768;
const MAX_SMALL_SPAN_PAGES: u64 = 10;
/// The largest object goat takes for real: 64 GiB. What a larger one's
/// scan would cost is the caller's memory, on a hostile core's word.
const MAX_LARGE_SPAN_PAGES: u64 = (64 << 30) / PAGE_SIZE;

/// One in-use span.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub base: u64,
    pub npages: u64,
    pub elemsize: u64,
    pub nelems: u32,
    pub sizeclass: u8,
    pub noscan: bool,
    /// Index of the span's first word in the heap-wide slot bitmaps.
    pub bits_at: usize,
    pub large_type: u64,
    pub specials: u64,
}

impl Span {
    pub fn end(&self) -> u64 {
        self.base + self.npages * PAGE_SIZE
    }

    pub fn words(&self) -> usize {
        (self.nelems as usize).div_ceil(64)
    }
}

/// What [`load_spans`] found.
pub(super) struct Loaded {
    pub spans: Vec<Span>,
    pub allocated: Vec<u64>,
    /// Spans listed in allspans that could not be read, or whose fields
    /// did not hold together.
    pub bad_spans: u64,
    /// In-use spans whose allocated slots differ from their `allocCount`.
    pub count_mismatches: u64,
}

pub(super) fn load_spans(
    mem: &dyn Memory,
    layout: &HeapLayout,
    mheap: u64,
) -> Result<Loaded, HeapError> {
    let at = mheap
        .checked_add(layout.allspans)
        .ok_or(HeapError::Corrupt("mheap_.allspans overflows"))?;
    let unreadable =
        |what: &'static str| move |fault: ReadFault| HeapError::Unreadable { what, fault };
    let array = mem.read_u64(at).map_err(unreadable("mheap_.allspans"))?;
    let len = mem
        .read_u64(at + 8)
        .map_err(unreadable("mheap_.allspans"))?;
    if len > MAX_SPANS {
        return Err(HeapError::Corrupt(
            "mheap_.allspans is longer than any heap",
        ));
    }
    let mut spans = Vec::new();
    let mut bad_spans = 0;
    let mut ptrs = vec![0u8; BATCH * 8];
    let mut copies = vec![0u8; BATCH * layout.span.size as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(BATCH as u64) as usize;
        let from = array
            .checked_add(done * 8)
            .ok_or(HeapError::Corrupt("mheap_.allspans overflows"))?;
        let ptrs = &mut ptrs[..n * 8];
        mem.read(from, ptrs)
            .map_err(unreadable("mheap_.allspans's array"))?;
        let addrs: Vec<u64> = ptrs
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let size = layout.span.size as usize;
        let mut reqs: Vec<(u64, &mut [u8])> = addrs
            .iter()
            .copied()
            .zip(copies.chunks_exact_mut(size))
            .collect();
        let results = mem.read_batch(&mut reqs);
        for ((_, bytes), ok) in reqs.iter().zip(results) {
            if ok.is_err() {
                bad_spans += 1;
                continue;
            }
            match parse_span(&layout.span, bytes) {
                Parsed::InUse(s) => spans.push(s),
                Parsed::NotInUse => {}
                Parsed::Bad => bad_spans += 1,
            }
        }
        done += n as u64;
    }
    // A large span's pages must be there: a hostile list could otherwise
    // claim gigabytes whose every word a scan would list.
    spans.retain(|(s, _)| {
        let there = s.sizeclass != 0 || mem.read_u64(s.end() - 8).is_ok();
        if !there {
            bad_spans += 1;
        }
        there
    });
    spans.sort_by_key(|s| s.0.base);
    // Two in-use spans cannot overlap; a list that says so is stale or
    // corrupt there, and the later one is dropped.
    let mut kept: Vec<(Span, SlotState)> = Vec::with_capacity(spans.len());
    for s in spans {
        if kept.last().is_some_and(|(k, _)| k.end() > s.0.base) {
            bad_spans += 1;
            continue;
        }
        kept.push(s);
    }
    let (spans, allocated, count_mismatches) = read_alloc_bits(mem, kept);
    Ok(Loaded {
        spans,
        allocated,
        bad_spans,
        count_mismatches,
    })
}

/// The allocation state of a span's slots as its fields give it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotState {
    alloc_bits: u64,
    freeindex: u64,
    alloc_count: u64,
}

enum Parsed {
    InUse((Span, SlotState)),
    NotInUse,
    Bad,
}

fn parse_span(f: &SpanFields, b: &[u8]) -> Parsed {
    let get = |field: super::layout::Field| field.get(b);
    let Some(state) = get(f.state) else {
        return Parsed::Bad;
    };
    if state != SPAN_IN_USE {
        return Parsed::NotInUse;
    }
    let (Some(base), Some(npages), Some(nelems), Some(elemsize), Some(spanclass)) = (
        get(f.start_addr),
        get(f.npages),
        get(f.nelems),
        get(f.elemsize),
        get(f.spanclass),
    ) else {
        return Parsed::Bad;
    };
    let bytes = npages.checked_mul(PAGE_SIZE);
    let fits = bytes.is_some_and(|bytes| {
        base % PAGE_SIZE == 0
            && base.checked_add(bytes).is_some()
            && elemsize > 0
            && nelems > 0
            && nelems <= u64::from(u32::MAX)
            && elemsize
                .checked_mul(nelems)
                .is_some_and(|used| used <= bytes)
    });
    // A small size class has at most MAX_SMALL_SIZE-byte slots in at most
    // MAX_SMALL_SPAN_PAGES pages; a large object's span has one slot. This
    // keeps the slot bitmaps proportional to what the span copies read.
    let sizeclass = spanclass >> 1;
    let shaped = if sizeclass == 0 {
        nelems == 1 && npages <= MAX_LARGE_SPAN_PAGES
    } else {
        npages <= MAX_SMALL_SPAN_PAGES && (8..=MAX_SMALL_SIZE).contains(&elemsize)
    };
    if !fits || !shaped {
        return Parsed::Bad;
    }
    let span = Span {
        base,
        npages,
        elemsize,
        nelems: nelems as u32,
        sizeclass: (spanclass >> 1) as u8,
        noscan: spanclass & 1 != 0,
        bits_at: 0,
        large_type: f.large_type.and_then(get).unwrap_or(0),
        specials: get(f.specials).unwrap_or(0),
    };
    let state = SlotState {
        alloc_bits: get(f.alloc_bits).unwrap_or(0),
        freeindex: get(f.freeindex).unwrap_or(0),
        alloc_count: get(f.alloc_count).unwrap_or(0),
    };
    Parsed::InUse((span, state))
}

/// Reads every span's `allocBits` in batches and lays the allocated slots
/// out in one bitmap. A span whose bits cannot be read keeps only the
/// slots below `freeindex`, and is counted as a mismatch.
fn read_alloc_bits(mem: &dyn Memory, kept: Vec<(Span, SlotState)>) -> (Vec<Span>, Vec<u64>, u64) {
    let total_words: usize = kept.iter().map(|(s, _)| s.words()).sum();
    let mut allocated = vec![0u64; total_words];
    let mut spans = Vec::with_capacity(kept.len());
    let mut mismatches = 0;
    let mut at = 0usize;
    for chunk in kept.chunks(BATCH) {
        let mut bufs: Vec<Vec<u8>> = chunk
            .iter()
            .map(|(s, _)| vec![0u8; (s.nelems as usize).div_ceil(8)])
            .collect();
        let mut reqs: Vec<(u64, &mut [u8])> = chunk
            .iter()
            .zip(bufs.iter_mut())
            .map(|((_, st), b)| (st.alloc_bits, b.as_mut_slice()))
            .collect();
        let results = mem.read_batch(&mut reqs);
        for (((span, st), buf), ok) in chunk.iter().zip(&bufs).zip(results) {
            let mut span = *span;
            span.bits_at = at;
            let words = &mut allocated[at..at + span.words()];
            if ok.is_ok() {
                for (i, byte) in buf.iter().enumerate() {
                    words[i / 8] |= u64::from(*byte) << ((i % 8) * 8);
                }
            }
            let below_free = st.freeindex.min(u64::from(span.nelems));
            set_below(words, below_free);
            // Bits past nelems are not slots (allocBits is rounded up).
            clear_from(words, u64::from(span.nelems));
            let count: u64 = words.iter().map(|w| u64::from(w.count_ones())).sum();
            if ok.is_err() || count != st.alloc_count {
                mismatches += 1;
            }
            at += span.words();
            spans.push(span);
        }
    }
    (spans, allocated, mismatches)
}

fn set_below(words: &mut [u64], n: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        let lo = i as u64 * 64;
        if n >= lo + 64 {
            *w = u64::MAX;
        } else if n > lo {
            *w |= (1u64 << (n - lo)) - 1;
        }
    }
}

fn clear_from(words: &mut [u64], n: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        let lo = i as u64 * 64;
        if n <= lo {
            *w = 0;
        } else if n < lo + 64 {
            *w &= (1u64 << (n - lo)) - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_bits_below_and_from() {
        let mut w = [0u64; 2];
        set_below(&mut w, 70);
        assert_eq!(w, [u64::MAX, 0x3f]);
        clear_from(&mut w, 3);
        assert_eq!(w, [0x7, 0]);
        let mut w = [u64::MAX; 2];
        clear_from(&mut w, 128);
        assert_eq!(w, [u64::MAX; 2]);
    }
}
