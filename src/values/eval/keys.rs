//! Map keys Go compares structurally: `m[k]` with a struct or array key
//! (field by field, element by element, strings by content, as Go's `==`),
//! interface keys against a constant (`m["s"]` in a `map[any]int`), and
//! scalar keys by value.

use super::super::format::Dynamic;
use super::super::types::{kind, offset};
use super::{Const, Val};
use crate::values::{Scope, Value, VarError};

/// Nesting followed when comparing (a key type cannot nest deeper in
/// practice; the bound keeps hostile DWARF from recursing forever).
const MAX_DEPTH: usize = 16;
/// Elements of an array key compared at most.
const MAX_ELEMS: u64 = 1 << 12;

/// What the keys of a map are compared with.
pub(super) enum KeyWant {
    /// A number, string, bool or pointer's value.
    Scalar(Const),
    /// A value of the key's own (struct or array) type.
    Same(Value),
    /// A constant, against an interface key's dynamic value.
    Dynamic(Const),
    /// A struct or array, against an interface key's dynamic value of the
    /// same type.
    DynamicSame(Value),
}

impl Scope<'_> {
    /// The key to look for in a map whose keys are of type `key_ty`, when
    /// that type is a struct, an array or an interface.
    pub(super) fn composite_key(&self, key_ty: usize, key: &Val) -> Result<KeyWant, VarError> {
        match (self.kind(key_ty), key) {
            (kind::INTERFACE, Val::Typed(v)) if self.kind(v.ty) == kind::INTERFACE => {
                match self.dynamic(v)? {
                    Dynamic::Value(inner) => self.dynamic_key(inner),
                    _ => Err(VarError::UnsupportedKey(self.type_name(v.ty))),
                }
            }
            (kind::INTERFACE, Val::Typed(v)) => self.dynamic_key(v.clone()),
            (kind::INTERFACE, k) => Ok(KeyWant::Dynamic(self.scalar(k)?)),
            (_, Val::Typed(v)) if self.type_name(v.ty) == self.type_name(key_ty) => {
                Ok(KeyWant::Same(v.clone()))
            }
            (_, Val::Typed(v)) => Err(VarError::KeyType {
                want: self.type_name(key_ty),
                have: self.type_name(v.ty),
            }),
            _ => Err(VarError::UnsupportedKey(self.type_name(key_ty))),
        }
    }

    /// What an interface key holding `v` must hold.
    fn dynamic_key(&self, v: Value) -> Result<KeyWant, VarError> {
        match self.kind(v.ty) {
            kind::STRUCT | kind::ARRAY => Ok(KeyWant::DynamicSame(v)),
            _ => Ok(KeyWant::Dynamic(self.scalar(&Val::Typed(v))?)),
        }
    }

    /// Whether the map key `k` is the one wanted.
    pub(super) fn key_matches(&self, k: &Value, want: &KeyWant) -> bool {
        match want {
            // A string key can only equal `want` at the same length: check
            // it before reading the bytes, and read no more than `want`
            // has. Reading every key in full (up to MAX_STRING each, for as
            // many keys as MAX_MAP_SEARCH) took minutes over hostile memory
            // (found by the value_print fuzz target).
            KeyWant::Scalar(Const::Str(w)) if self.kind(k.ty) == kind::STRING => {
                let n = w.len() as u64;
                self.read_u64(&k.place, 8).is_ok_and(|len| len == n)
                    && self.string_bytes(&k.place, n).is_ok_and(|(b, _)| b == *w)
            }
            KeyWant::Scalar(c) => self.scalar(&Val::Typed(k.clone())).is_ok_and(|x| x == *c),
            KeyWant::Same(w) => self.equal(k, w, 0).unwrap_or(false),
            KeyWant::Dynamic(c) => match self.dynamic(k) {
                Ok(Dynamic::Value(inner)) => self.scalar(&Val::Typed(inner)).is_ok_and(|x| x == *c),
                _ => false,
            },
            KeyWant::DynamicSame(w) => match self.dynamic(k) {
                Ok(Dynamic::Value(inner)) => {
                    self.type_name(inner.ty) == self.type_name(w.ty)
                        && self.equal(&inner, w, 0).unwrap_or(false)
                }
                _ => false,
            },
        }
    }

    /// Go's `==` on two values of one type.
    fn equal(&self, a: &Value, b: &Value, depth: usize) -> Result<bool, VarError> {
        if depth > MAX_DEPTH {
            return Err(VarError::UnsupportedKey(self.type_name(a.ty)));
        }
        let (_, t) = self.layout(a.ty).ok_or(VarError::UnknownType)?;
        match self.kind(a.ty) {
            kind::STRUCT => {
                for m in &t.members {
                    let Some(ty) = m.ty else {
                        return Err(VarError::UnknownType);
                    };
                    let field = |v: &Value| Value {
                        ty,
                        place: offset(&v.place, m.offset),
                    };
                    if !self.equal(&field(a), &field(b), depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            kind::ARRAY => {
                let (elem, n) = (t.target.ok_or(VarError::UnknownType)?, t.count.unwrap_or(0));
                if n > MAX_ELEMS {
                    return Err(VarError::UnsupportedKey(self.type_name(a.ty)));
                }
                let es = self.size(elem);
                for i in 0..n {
                    let at = |v: &Value| Value {
                        ty: elem,
                        place: offset(&v.place, i.saturating_mul(es)),
                    };
                    if !self.equal(&at(a), &at(b), depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            kind::INTERFACE => match (self.dynamic(a)?, self.dynamic(b)?) {
                (Dynamic::Nil, Dynamic::Nil) => Ok(true),
                (Dynamic::Value(x), Dynamic::Value(y)) if x.ty == y.ty => {
                    self.equal(&x, &y, depth + 1)
                }
                _ => Ok(false),
            },
            kind::POINTER | kind::CHAN | kind::UNSAFE_POINTER => {
                Ok(self.read_u64(&a.place, 0)? == self.read_u64(&b.place, 0)?)
            }
            kind::COMPLEX64 | kind::COMPLEX128 => {
                let size = self.size(a.ty);
                let (x, y) = (self.read(&a.place, 0, size)?, self.read(&b.place, 0, size)?);
                let half = |v: &[u8], i: usize| -> f64 {
                    let h = v.len() / 2;
                    let p = &v[i * h..(i + 1) * h];
                    match p.len() {
                        4 => f64::from(f32::from_le_bytes(p.try_into().unwrap_or([0; 4]))),
                        _ => f64::from_le_bytes(p.try_into().unwrap_or([0; 8])),
                    }
                };
                Ok(half(&x, 0) == half(&y, 0) && half(&x, 1) == half(&y, 1))
            }
            _ => Ok(self.scalar(&Val::Typed(a.clone()))? == self.scalar(&Val::Typed(b.clone()))?),
        }
    }
}
