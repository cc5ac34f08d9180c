//! Type queries over the DWARF index (through typedefs) and the layout of
//! Go's strings and slices.

use super::{Place, Scope, Value, VarError};
use crate::binary::dwarf_vars::Type;

/// The user address space of x86-64 (4-level paging): no array is larger.
const ADDRESS_SPACE: u64 = 1 << 47;

/// Go's `reflect.Kind` values that DWARF records.
pub mod kind {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const INT64: u8 = 6;
    pub const UINT: u8 = 7;
    pub const UINT64: u8 = 11;
    pub const UINTPTR: u8 = 12;
    pub const FLOAT32: u8 = 13;
    pub const FLOAT64: u8 = 14;
    pub const COMPLEX64: u8 = 15;
    pub const COMPLEX128: u8 = 16;
    pub const ARRAY: u8 = 17;
    pub const CHAN: u8 = 18;
    pub const FUNC: u8 = 19;
    pub const INTERFACE: u8 = 20;
    pub const MAP: u8 = 21;
    pub const POINTER: u8 = 22;
    pub const SLICE: u8 = 23;
    pub const STRING: u8 = 24;
    pub const STRUCT: u8 = 25;
    pub const UNSAFE_POINTER: u8 = 26;
}

impl Scope<'_> {
    /// The entry after following typedefs (at most 16).
    pub fn layout(&self, ty: usize) -> Option<(usize, &Type)> {
        let mut cur = ty;
        for _ in 0..16 {
            let t = self.ty(cur)?;
            match (t.tag, t.target) {
                (gimli::DW_TAG_typedef, Some(next)) => cur = next,
                _ => return Some((cur, t)),
            }
        }
        None
    }

    /// The Go kind, through typedefs, else guessed from the DWARF tag.
    pub fn kind(&self, ty: usize) -> u8 {
        let mut cur = Some(ty);
        for _ in 0..16 {
            let Some(t) = cur.and_then(|c| self.ty(c)) else {
                break;
            };
            if t.kind != 0 {
                return t.kind;
            }
            if t.tag != gimli::DW_TAG_typedef {
                return match (t.tag, t.encoding) {
                    (gimli::DW_TAG_pointer_type, _) => kind::POINTER,
                    (gimli::DW_TAG_structure_type, _) => kind::STRUCT,
                    (gimli::DW_TAG_array_type, _) => kind::ARRAY,
                    (_, 2) => kind::BOOL,
                    (_, 4) => kind::FLOAT64,
                    (_, 5) => kind::INT,
                    (_, 7 | 8) => kind::UINT,
                    _ => 0,
                };
            }
            cur = t.target;
        }
        0
    }

    pub fn type_name(&self, ty: usize) -> String {
        match self.ty(ty) {
            Some(t) if !t.name.is_empty() => t.name.clone(),
            _ => format!("<type {ty:#x}>"),
        }
    }

    pub fn size(&self, ty: usize) -> u64 {
        self.layout(ty).and_then(|(_, t)| t.size).unwrap_or(0)
    }

    /// A member of a struct type (through typedefs) by name.
    pub fn member(&self, ty: usize, name: &str) -> Option<(u64, usize)> {
        let (_, t) = self.layout(ty)?;
        let m = t.members.iter().find(|m| m.name == name)?;
        Some((m.offset, m.ty?))
    }

    /// A string's first `max` bytes and its length.
    pub fn string_bytes(&self, place: &Place, max: u64) -> Result<(Vec<u8>, u64), VarError> {
        let ptr = self.read_u64(place, 0)?;
        let len = self.read_u64(place, 8)?;
        let take = len.min(max);
        let b = self.read(&Place::Mem(ptr), 0, take)?;
        Ok((b, len))
    }

    /// Element type, where the elements start, len and cap of a slice or array.
    pub fn sequence(&self, v: &Value) -> Result<(usize, Place, u64, u64), VarError> {
        let (_, t) = self.layout(v.ty).ok_or(VarError::UnknownType)?;
        if self.kind(v.ty) == kind::ARRAY {
            let elem = t.target.ok_or(VarError::ArrayWithoutElement)?;
            let n = t.count.unwrap_or(0);
            return Ok((elem, v.place.clone(), n, n));
        }
        let elem = t
            .elem
            .or_else(|| {
                let (_, arr) = self.member(v.ty, "array")?;
                self.ty(arr)?.target
            })
            .ok_or(VarError::SliceWithoutElement)?;
        let ptr = self.read_u64(&v.place, 0)?;
        let len = self.read_u64(&v.place, 8)?;
        let cap = self.read_u64(&v.place, 16)?;
        // Go never makes such a header; optimized code's DWARF can point at
        // a slot that holds only part of the slice by now (the pointer, with
        // a stack address and a return address after it).
        if len > cap || cap.saturating_mul(self.size(elem)) > ADDRESS_SPACE {
            return Err(VarError::StaleSlice { len, cap });
        }
        Ok((elem, Place::Mem(ptr), len, cap))
    }
}

/// The place `off` bytes into `p`.
pub fn offset(p: &Place, off: u64) -> Place {
    match p {
        Place::Mem(a) => Place::Mem(a.wrapping_add(off)),
        Place::Bytes(b) => match b.get(usize::try_from(off).unwrap_or(usize::MAX)..) {
            Some(rest) => Place::Bytes(rest.to_vec()),
            None => Place::Unavailable(VarError::Short),
        },
        Place::Unavailable(w) => Place::Unavailable(w.clone()),
    }
}
