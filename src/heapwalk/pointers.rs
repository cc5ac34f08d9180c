//! Which words of an object may hold pointers, as each release's GC finds
//! them (`scanobject` in mgcmark.go and the iterators of mbitmap.go):
//!
//! - Go 1.19: `heapArena.bitmap`, two bits a word, four words a byte (the
//!   pointer bits in the low nibble, the "scan" bits in the high one);
//!   scanning stops at the first word whose scan bit is clear.
//! - Go 1.20–1.21: `heapArena.bitmap`, a bit a word in 64-bit words; when
//!   an object's bits go on past a bitmap word whose `noMorePtrs` bit is
//!   set, the rest of the object holds no pointers.
//! - Go 1.22+: an object of at most 512 bytes has its bits at the end of
//!   its span (`spanHeapBitsRange`: the span's last `spanSize/64` bytes,
//!   before the 128-byte `spanInlineMarkBits` of Green Tea GC for elements
//!   of 16 bytes or more); a larger object of a small size class starts
//!   with its type (the "malloc header"), and a large one's type is the
//!   span's `largeType`. A type's GC mask (`GCData`, one bit a word of its
//!   first `PtrBytes`) tiles the object every `Size_` bytes. From Go 1.24 a
//!   type flagged `TFlagGCMaskOnDemand` holds a pointer to a mask the
//!   runtime builds on first use; before it is built goat cannot know.
//!
//! `None` means the metadata could not be read: the caller falls back to
//! every word.

use crate::process::{Memory, MemoryExt};

use super::layout::PointerMetadata;
use super::spans::Span;
use super::{Heap, Object};

/// `heapArenaWords`: words a 64 MiB arena holds.
const ARENA_WORDS: u64 = super::ARENA_BYTES / 8;
/// `gc.MinSizeForMallocHeader`: objects up to this size keep their
/// pointer bits at the end of their span (Go 1.22+).
const MAX_SIZE_BITS_IN_SPAN: u64 = 512;
/// `unsafe.Sizeof(spanInlineMarkBits{})`: 63 + 1 + 63 + 1 bytes.
const INLINE_MARK_BITS_SIZE: u64 = 128;
/// `abi.Type`: `Size_` 0, `PtrBytes` 8, `TFlag` 20, `GCData` 32.
const TYPE_HEAD: usize = 40;
const TFLAG_GC_MASK_ON_DEMAND: u8 = 1 << 4;

pub(super) fn slots(
    heap: &Heap,
    span: &Span,
    mem: &dyn Memory,
    obj: &Object,
    out: &mut Vec<u64>,
) -> Option<()> {
    match heap.metadata {
        PointerMetadata::TwoBitBitmap { bitmap } => two_bit(heap, mem, bitmap, obj, out),
        PointerMetadata::OneBitBitmap {
            bitmap,
            no_more_ptrs,
        } => one_bit(heap, mem, bitmap, no_more_ptrs, obj, out),
        PointerMetadata::Headers {
            inline_mark_bits,
            mask_on_demand,
        } => {
            if obj.size <= MAX_SIZE_BITS_IN_SPAN {
                span_end_bits(span, mem, inline_mark_bits, obj, out)
            } else {
                typed(span, mem, mask_on_demand, obj, out)
            }
        }
    }
}

/// Calls `each(arena, first_word, words)` for the parts of `[base,
/// base+size)` in each arena, `first_word` the word index inside it.
fn per_arena(
    heap: &Heap,
    base: u64,
    size: u64,
    mut each: impl FnMut(u64, u64, u64, u64) -> Option<bool>,
) -> Option<()> {
    let end = base.checked_add(size)?;
    let mut at = base;
    while at < end {
        let word = at / 8 % ARENA_WORDS;
        let words = (ARENA_WORDS - word).min((end - at) / 8);
        if words == 0 {
            break;
        }
        let ha = heap.arena(at)?;
        if !each(ha, at, word, words)? {
            break;
        }
        at += words * 8;
    }
    Some(())
}

fn two_bit(
    heap: &Heap,
    mem: &dyn Memory,
    bitmap: u64,
    obj: &Object,
    out: &mut Vec<u64>,
) -> Option<()> {
    per_arena(heap, obj.base, obj.size, |ha, at, word, words| {
        let first = word / 4;
        let last = (word + words - 1) / 4;
        let bytes = mem
            .read_vec(
                ha.checked_add(bitmap)?.checked_add(first)?,
                usize::try_from(last - first + 1).ok()?,
            )
            .ok()?;
        for i in 0..words {
            let w = word + i;
            let byte = *bytes.get(usize::try_from(w / 4 - first).ok()?)?;
            let shift = w % 4;
            if byte >> (shift + 4) & 1 == 0 {
                return Some(false); // no more pointers in this object
            }
            if byte >> shift & 1 != 0 {
                out.push(at + i * 8);
            }
        }
        Some(true)
    })
}

fn one_bit(
    heap: &Heap,
    mem: &dyn Memory,
    bitmap: u64,
    no_more_ptrs: u64,
    obj: &Object,
    out: &mut Vec<u64>,
) -> Option<()> {
    per_arena(heap, obj.base, obj.size, |ha, at, word, words| {
        let first = word / 64;
        let last = (word + words - 1) / 64;
        let n = usize::try_from(last - first + 1).ok()?;
        let bits = mem
            .read_vec(ha.checked_add(bitmap)?.checked_add(first * 8)?, n * 8)
            .ok()?;
        let stops = mem
            .read_vec(
                ha.checked_add(no_more_ptrs)?.checked_add(first / 8)?,
                usize::try_from(last / 8 - first / 8 + 1).ok()?,
            )
            .ok()?;
        let mut i = 0;
        while i < words {
            let w = word + i;
            let idx = w / 64;
            let k = usize::try_from(idx - first).ok()?;
            let chunk = u64::from_le_bytes(bits.get(k * 8..k * 8 + 8)?.try_into().ok()?);
            let off = w % 64;
            let valid = (64 - off).min(words - i);
            let mask = if valid == 64 {
                u64::MAX
            } else {
                (1u64 << valid) - 1
            };
            let mut m = (chunk >> off) & mask;
            while m != 0 {
                let b = u64::from(m.trailing_zeros());
                m &= m - 1;
                out.push(at + (i + b) * 8);
            }
            i += valid;
            // heapBitsForAddr: bits going on past this bitmap word are
            // scalars when its noMorePtrs bit is set.
            let s = usize::try_from(idx / 8 - first / 8).ok()?;
            if i < words && stops.get(s)? >> (idx % 8) & 1 != 0 {
                return Some(false);
            }
        }
        Some(true)
    })
}

fn span_end_bits(
    span: &Span,
    mem: &dyn Memory,
    inline_mark_bits: bool,
    obj: &Object,
    out: &mut Vec<u64>,
) -> Option<()> {
    let span_size = span.npages.checked_mul(super::PAGE_SIZE)?;
    let mut bits_base = span
        .base
        .checked_add(span_size)?
        .checked_sub(span_size / 64)?;
    if inline_mark_bits && span.elemsize >= 16 {
        bits_base = bits_base.checked_sub(INLINE_MARK_BITS_SIZE)?;
    }
    let first = (obj.base.checked_sub(span.base)?) / 8;
    let words = obj.size / 8;
    let from = first / 8;
    let to = (first + words).div_ceil(8);
    // At most 512 bytes: 64 bits, spread over 9 bytes; read without
    // allocating (the common case of a heap of millions of small objects).
    let mut buf = [0u8; 16];
    let bytes = buf.get_mut(..usize::try_from(to - from).ok()?)?;
    mem.read(bits_base.checked_add(from)?, bytes).ok()?;
    for i in 0..words {
        let w = first + i;
        let byte = bytes.get(usize::try_from(w / 8 - from).ok()?)?;
        if byte >> (w % 8) & 1 != 0 {
            out.push(obj.base + i * 8);
        }
    }
    Some(())
}

/// The type in `obj`'s allocation header (Go 1.22+, an object of more
/// than 512 bytes with pointers: its first word, or a large object's span
/// `largeType`) and where the typed data starts; `None` before 1.22, for
/// smaller or pointer-free objects, and for a header not yet set.
pub(super) fn header_type(
    heap: &Heap,
    span: &Span,
    mem: &dyn Memory,
    obj: &Object,
) -> Option<(u64, u64)> {
    if !matches!(heap.metadata, PointerMetadata::Headers { .. })
        || obj.noscan
        || obj.size <= MAX_SIZE_BITS_IN_SPAN
    {
        return None;
    }
    let (typ, start) = if span.sizeclass != 0 {
        (mem.read_u64(obj.base).ok()?, obj.base.checked_add(8)?)
    } else {
        (span.large_type, obj.base)
    };
    (typ != 0).then_some((typ, start))
}

fn typed(
    span: &Span,
    mem: &dyn Memory,
    mask_on_demand: bool,
    obj: &Object,
    out: &mut Vec<u64>,
) -> Option<()> {
    let limit = obj.base.checked_add(obj.size)?;
    let (typ, start) = if span.sizeclass != 0 {
        (mem.read_u64(obj.base).ok()?, obj.base.checked_add(8)?)
    } else {
        // A large object whose type is not set yet is being zeroed: the
        // runtime scans nothing there (typePointersOfUnchecked).
        if span.large_type == 0 {
            return Some(());
        }
        (span.large_type, obj.base)
    };
    if typ == 0 {
        return None;
    }
    let mut head = [0u8; TYPE_HEAD];
    mem.read(typ, &mut head).ok()?;
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?))
    };
    let size = word(0)?;
    let ptr_bytes = word(8)?;
    let tflag = head[20];
    let mut gcdata = word(32)?;
    // Pointers are word-aligned, so is the size of a type holding any.
    if size == 0 || size % 8 != 0 || ptr_bytes > size || ptr_bytes > obj.size {
        return None;
    }
    if mask_on_demand && tflag & TFLAG_GC_MASK_ON_DEMAND != 0 {
        gcdata = mem.read_u64(gcdata).ok()?;
        if gcdata == 0 {
            return None; // not built yet: the GC has never scanned one
        }
    }
    let ptr_words = ptr_bytes / 8;
    let mask = mem
        .read_vec(gcdata, usize::try_from(ptr_words.div_ceil(8)).ok()?)
        .ok()?;
    let set: Vec<u64> = (0..ptr_words)
        .filter(|w| {
            mask.get((w / 8) as usize)
                .is_some_and(|b| b >> (w % 8) & 1 != 0)
        })
        .map(|w| w * 8)
        .collect();
    // The mask tiles the object every `size` bytes (an array of the type).
    let mut elem = start;
    while elem < limit {
        for &off in &set {
            let slot = elem + off;
            if slot >= limit {
                break;
            }
            out.push(slot);
        }
        elem = match elem.checked_add(size) {
            Some(e) => e,
            None => break,
        };
    }
    Some(())
}
