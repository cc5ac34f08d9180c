//! A function's pointer maps as the executable holds them: the locals and
//! arguments stack maps (`FUNCDATA_LocalsPointerMaps`,
//! `FUNCDATA_ArgsPointerMaps`) indexed by `PCDATA_StackMapIndex`, and the
//! stack object records (`FUNCDATA_StackObjects`).
//!
//! Formats (runtime/symtab.go `stackmap`, runtime/stack.go
//! `stackObjectRecord`, the same in Go 1.19–1.27):
//! - a stackmap is `n int32, nbit int32`, then `n` bitmaps of `nbit` bits,
//!   each starting on a byte boundary; bit `i` (least significant first)
//!   says word `i` holds a pointer;
//! - stack objects are a `uintptr` count, then 16-byte records
//!   `off int32, size int32, ptrdata int32, gcdataoff uint32`: `off` from
//!   `varp` when negative, from `argp` otherwise; the pointer bitmap is at
//!   `moduledata.rodata + gcdataoff`. Before Go 1.24 a negative `ptrdata`
//!   means the type is described by a GC program; from 1.24 it is never
//!   negative.
//!
//! Everything here is read from the file: a map that is missing or does
//! not fit is an error the caller answers by scanning conservatively.

use thiserror::Error;

use crate::binary::{Binary, Func};

/// `abi.FUNCDATA_*` and `abi.PCDATA_*` indices (unchanged since Go 1.16).
pub(super) const FUNCDATA_ARGS_POINTER_MAPS: u8 = 0;
pub(super) const FUNCDATA_LOCALS_POINTER_MAPS: u8 = 1;
pub(super) const FUNCDATA_STACK_OBJECTS: u8 = 2;
pub(super) const PCDATA_STACK_MAP_INDEX: u32 = 1;

/// No frame holds more words than a 1 GiB stack (the runtime's
/// `maxstacksize` on 64-bit): a bound on a bitmap's length.
const MAX_BITS: i32 = 1 << 27;
/// A bound on one function's stack object records (the compiler writes one
/// per address-taken variable holding pointers).
const MAX_RECORDS: u64 = 1 << 16;
const RECORD_LEN: usize = 16;

/// Why a map could not be used.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MapError {
    #[error("no {what} map")]
    Missing { what: &'static str },
    #[error("{what} map has no entry {index} (it has {count})")]
    Index {
        what: &'static str,
        index: i32,
        count: i32,
    },
    #[error("{what} map unreadable at {addr:#x}")]
    Unreadable { what: &'static str, addr: u64 },
    #[error("{what} map of {bits} words does not fit its frame")]
    TooLarge { what: &'static str, bits: i32 },
}

/// One bitmap: `n` bits over consecutive words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bitmap<'b> {
    pub n: u32,
    pub bytes: &'b [u8],
}

impl Bitmap<'_> {
    /// Whether word `i` holds a pointer (bits past the data read as 0).
    pub fn is_set(&self, i: u32) -> bool {
        let byte = self.bytes.get((i / 8) as usize).copied().unwrap_or(0);
        i < self.n && (byte >> (i % 8)) & 1 != 0
    }
}

/// Bitmap `index` of the stackmap funcdata `slot` of `f`; `Ok(None)` when
/// the map has no bits (nothing to scan). `max_words` is the room the
/// frame has for it.
pub(super) fn stackmap<'b>(
    bin: &'b Binary,
    f: &Func<'_>,
    slot: u8,
    index: i32,
    max_words: u64,
) -> Result<Option<Bitmap<'b>>, MapError> {
    let what = match slot {
        FUNCDATA_ARGS_POINTER_MAPS => "args",
        _ => "locals",
    };
    let addr = f.funcdata(slot).ok_or(MapError::Missing { what })?;
    let unreadable = |addr| MapError::Unreadable { what, addr };
    let header = bin.read_static(addr, 8).ok_or(unreadable(addr))?;
    let word = |i: usize| {
        header
            .get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_le_bytes)
    };
    let (Some(count), Some(nbit)) = (word(0), word(4)) else {
        return Err(unreadable(addr));
    };
    if count <= 0 {
        return Err(MapError::Missing { what });
    }
    if nbit == 0 {
        return Ok(None);
    }
    if !(0..MAX_BITS).contains(&nbit) || u64::from(nbit.unsigned_abs()) > max_words {
        return Err(MapError::TooLarge { what, bits: nbit });
    }
    if !(0..count).contains(&index) {
        return Err(MapError::Index { what, index, count });
    }
    // Both at most 2^27: no overflow in u64.
    let per_map = (nbit as u64).div_ceil(8);
    let at = addr
        .checked_add(8 + index as u64 * per_map)
        .ok_or(unreadable(addr))?;
    let bytes = bin
        .read_static(at, per_map as usize)
        .ok_or(unreadable(at))?;
    Ok(Some(Bitmap {
        n: nbit as u32,
        bytes,
    }))
}

/// One stack object record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ObjectRecord {
    pub off: i32,
    pub size: i32,
    pub ptrdata: i32,
    pub gcdataoff: u32,
}

/// The stack object records of `f` (none when it has no such funcdata).
pub(super) fn stack_objects(bin: &Binary, f: &Func<'_>) -> Result<Vec<ObjectRecord>, MapError> {
    let what = "stack objects";
    let Some(addr) = f.funcdata(FUNCDATA_STACK_OBJECTS) else {
        return Ok(Vec::new());
    };
    let unreadable = |addr| MapError::Unreadable { what, addr };
    let count = bin
        .read_static(addr, 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(unreadable(addr))?;
    if count > MAX_RECORDS {
        return Err(MapError::TooLarge {
            what,
            bits: i32::try_from(count).unwrap_or(i32::MAX),
        });
    }
    let start = addr.checked_add(8).ok_or(unreadable(addr))?;
    let bytes = bin
        .read_static(start, count as usize * RECORD_LEN)
        .ok_or(unreadable(start))?;
    let field = |rec: &[u8], i: usize| -> [u8; 4] {
        rec.get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0; 4])
    };
    Ok(bytes
        .chunks_exact(RECORD_LEN)
        .map(|rec| ObjectRecord {
            off: i32::from_le_bytes(field(rec, 0)),
            size: i32::from_le_bytes(field(rec, 1)),
            ptrdata: i32::from_le_bytes(field(rec, 2)),
            gcdataoff: u32::from_le_bytes(field(rec, 3)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_least_significant_first_and_bounded() {
        let b = Bitmap {
            n: 10,
            bytes: &[0b0000_0101, 0b0000_0010],
        };
        let set: Vec<u32> = (0..16).filter(|&i| b.is_set(i)).collect();
        assert_eq!(set, [0, 2, 9]);
        let short = Bitmap {
            n: 64,
            bytes: &[0xff],
        };
        assert!(short.is_set(7));
        assert!(!short.is_set(8), "bits past the data read as 0");
    }
}
