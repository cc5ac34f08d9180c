//! Indexing, map lookups and slicing: `x[i]`, `m[k]`, `x[lo:hi]`.

use super::super::types::{kind, offset};
use super::super::{Place, Scope, Value, VarError};
use super::keys::KeyWant;
use super::{computed, Const, Val, MAX_MAP_SEARCH};

impl Scope<'_> {
    fn int_index(&self, i: &Val) -> Result<i128, VarError> {
        match self.scalar(i)? {
            Const::Int(n) => Ok(n),
            Const::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => Ok(f as i128),
            _ => Err(VarError::IndexNotInteger),
        }
    }

    /// The array a pointer to an array points to: Go indexes, slices and
    /// takes `len` of it as of the array. Any other value is itself.
    pub(super) fn through_array_pointer(&self, v: Value) -> Result<Value, VarError> {
        if self.kind(v.ty) != kind::POINTER {
            return Ok(v);
        }
        let to = self.layout(v.ty).and_then(|(_, t)| t.target);
        if to.is_none_or(|t| self.kind(t) != kind::ARRAY) {
            return Ok(v);
        }
        self.typed_value(self.deref_val(Val::Typed(v))?)
    }

    pub(super) fn index_val(&self, v: Val, i: Val) -> Result<Val, VarError> {
        if let Val::Const(Const::Str(s)) = &v {
            let n = self.int_index(&i)?;
            let b = usize::try_from(n).ok().and_then(|n| s.get(n));
            let b = b.ok_or(VarError::OutOfRange {
                index: n,
                len: s.len() as u64,
            })?;
            return Ok(Val::Const(Const::Int(i128::from(*b))));
        }
        let v = self.through_array_pointer(self.typed_value(v)?)?;
        let (elem, base, len) = match self.kind(v.ty) {
            kind::MAP => return self.map_lookup(&v, i),
            kind::SLICE | kind::ARRAY => {
                let (elem, base, len, _) = self.sequence(&v)?;
                (elem, base, len)
            }
            kind::STRING => {
                let ptr = self.read_u64(&v.place, 0)?;
                let len = self.read_u64(&v.place, 8)?;
                let byte = self.index.type_named("uint8").ok_or(VarError::NoByteType)?;
                (byte, Place::Mem(ptr), len)
            }
            _ => return Err(VarError::NotIndexable(self.type_name(v.ty))),
        };
        let n = self.int_index(&i)?;
        let idx = u64::try_from(n).ok().filter(|x| *x < len);
        let idx = idx.ok_or(VarError::OutOfRange { index: n, len })?;
        Ok(Val::Typed(Value {
            ty: elem,
            place: offset(&base, idx.saturating_mul(self.size(elem))),
        }))
    }

    fn map_lookup(&self, m: &Value, key: Val) -> Result<Val, VarError> {
        let (lay, _) = self.layout(m.ty).ok_or(VarError::UnknownType)?;
        let Some((p, hdr)) = self.runtime_header(m, lay)? else {
            return Err(VarError::KeyNotInMap);
        };
        let hdr = hdr.ok_or(VarError::UnknownType)?;
        let kv = self.map_key_elem(m.ty);
        let key_ty = kv.0.ok_or(VarError::UnknownType)?;
        let want = match self.kind(key_ty) {
            kind::STRUCT | kind::ARRAY | kind::INTERFACE => self.composite_key(key_ty, &key)?,
            kind::COMPLEX64 | kind::COMPLEX128 => {
                return Err(VarError::UnsupportedKey(self.type_name(key_ty)))
            }
            _ => KeyWant::Scalar(match &key {
                Val::Typed(_) => self.scalar(&key)?,
                Val::Const(c) => match self.encode(key_ty, c) {
                    Ok(v) => self.scalar(&v)?,
                    Err(_) => c.clone(),
                },
                _ => self.scalar(&key)?,
            }),
        };
        let entries = self
            .map_entries(p, hdr, kv, MAX_MAP_SEARCH)
            .or_else(|| self.swiss_entries(p, hdr, kv, MAX_MAP_SEARCH))
            .ok_or(VarError::UnknownType)?;
        for (k, v) in &entries.pairs {
            if self.key_matches(k, &want) {
                return Ok(Val::Typed(v.clone()));
            }
        }
        if entries.partial.is_some() || entries.pairs.len() >= MAX_MAP_SEARCH {
            return Err(VarError::KeyNotFound(entries.pairs.len()));
        }
        Err(VarError::KeyNotInMap)
    }

    pub(super) fn slice_val(
        &self,
        v: Val,
        lo: Option<Val>,
        hi: Option<Val>,
    ) -> Result<Val, VarError> {
        let lo = lo.map(|l| self.int_index(&l)).transpose()?.unwrap_or(0);
        if let Val::Const(Const::Str(s)) = &v {
            let hi = hi
                .map(|h| self.int_index(&h))
                .transpose()?
                .unwrap_or(s.len() as i128);
            let r = usize::try_from(lo).ok().zip(usize::try_from(hi).ok());
            let part = r.and_then(|(l, h)| s.get(l..h));
            let bad = VarError::SliceBounds {
                lo,
                hi,
                cap: s.len() as u64,
            };
            return Ok(Val::Const(Const::Str(part.ok_or(bad)?.to_vec())));
        }
        let v = self.through_array_pointer(self.typed_value(v)?)?;
        let k = self.kind(v.ty);
        let (elem, base, len, cap) = match k {
            kind::STRING => {
                let ptr = self.read_u64(&v.place, 0)?;
                let len = self.read_u64(&v.place, 8)?;
                (0, ptr, len, len)
            }
            kind::SLICE | kind::ARRAY => {
                let (elem, base, len, cap) = self.sequence(&v)?;
                let Place::Mem(b) = base else {
                    return Err(VarError::NoAddress);
                };
                (elem, b, len, cap)
            }
            _ => return Err(VarError::NotIndexable(self.type_name(v.ty))),
        };
        let hi = hi
            .map(|h| self.int_index(&h))
            .transpose()?
            .unwrap_or(i128::from(len));
        let bad = VarError::SliceBounds { lo, hi, cap };
        let (l, h) = match (u64::try_from(lo), u64::try_from(hi)) {
            (Ok(l), Ok(h)) if l <= h && h <= cap => (l, h),
            _ => return Err(bad),
        };
        if k == kind::STRING {
            let mut b = base.wrapping_add(l).to_le_bytes().to_vec();
            b.extend((h - l).to_le_bytes());
            return Ok(computed(v.ty, b));
        }
        let es = self.size(elem);
        let ty = if k == kind::ARRAY {
            let name = format!("[]{}", self.type_name(elem));
            self.type_by_name(&name)
                .ok_or(VarError::NoSliceType(self.type_name(elem)))?
        } else {
            v.ty
        };
        let mut b = base
            .wrapping_add(l.saturating_mul(es))
            .to_le_bytes()
            .to_vec();
        b.extend((h - l).to_le_bytes());
        b.extend((cap - l).to_le_bytes());
        Ok(computed(ty, b))
    }
}
