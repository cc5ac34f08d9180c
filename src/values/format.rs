//! Values printed as Go (Delve-like), with caps on string bytes, elements,
//! depth and pointer cycles.

use std::collections::HashSet;
use std::fmt::Write;

use super::types::{kind, offset};
use super::{Place, Scope, Value, VarError};

/// Fields of one struct shown (DWARF lists them; no Go struct has more).
const MAX_FIELDS: usize = 1024;

impl Scope<'_> {
    /// Formats `v` as Go, within the scope's [`Limits`](super::limits::Limits).
    pub fn format(&self, v: &Value) -> String {
        let mut seen = HashSet::new();
        self.budget.reset();
        self.fmt_value(v, 0, &mut seen)
    }

    /// The limits in force, never above their maximum (a `Scope` built by
    /// hand could hold anything).
    pub(super) fn lim(&self) -> super::limits::Limits {
        self.limits.clamped()
    }

    pub(super) fn fmt_value(&self, v: &Value, depth: usize, seen: &mut HashSet<u64>) -> String {
        if !self.budget.take() {
            return "<print limit reached>".into();
        }
        let Some(_inside) = self.budget.enter() else {
            return format!("({}) <nested too deeply>", self.type_name(v.ty));
        };
        match self.try_fmt(v, depth, seen) {
            Ok(s) => s,
            Err(why) => format!("({}) <{why}>", self.type_name(v.ty)),
        }
    }

    fn try_fmt(
        &self,
        v: &Value,
        depth: usize,
        seen: &mut HashSet<u64>,
    ) -> Result<String, VarError> {
        if let Place::Unavailable(why) = &v.place {
            return Err(why.clone());
        }
        let name = self.type_name(v.ty);
        let (lay, t) = self.layout(v.ty).ok_or(VarError::UnknownType)?;
        let lim = self.lim();
        let size = t.size.unwrap_or(0);
        let k = self.kind(v.ty);
        let int = |signed: bool| -> Result<String, VarError> {
            let b = self.read(&v.place, 0, size.min(8))?;
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(&b);
            let u = u64::from_le_bytes(w);
            if signed && size > 0 && size < 8 {
                let shift = 64 - 8 * size;
                return Ok((((u << shift) as i64) >> shift).to_string());
            }
            Ok(if signed {
                (u as i64).to_string()
            } else {
                u.to_string()
            })
        };
        match k {
            kind::BOOL => Ok((self.read(&v.place, 0, 1)?[0] != 0).to_string()),
            kind::INT..=kind::INT64 => int(true),
            kind::UINT..=kind::UINT64 => int(false),
            kind::UINTPTR | kind::UNSAFE_POINTER | kind::FUNC => {
                let p = self.read_u64(&v.place, 0)?;
                Ok(match k {
                    kind::FUNC if p == 0 => "nil".into(),
                    kind::FUNC => self.func_name(p).unwrap_or_else(|| format!("{p:#x}")),
                    _ => format!("{p:#x}"),
                })
            }
            kind::FLOAT32 | kind::FLOAT64 | kind::COMPLEX64 | kind::COMPLEX128 => {
                let b = self.read(&v.place, 0, size)?;
                let f = |b: &[u8]| match b.len() {
                    4 => f32::from_le_bytes(b.try_into().unwrap_or([0; 4])).to_string(),
                    _ => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])).to_string(),
                };
                match k {
                    kind::COMPLEX64 | kind::COMPLEX128 => {
                        let h = b.len() / 2;
                        Ok(format!("({} + {}i)", f(&b[..h]), f(&b[h..])))
                    }
                    _ => Ok(f(&b)),
                }
            }
            kind::STRING => {
                let (bytes, len) = self.string_bytes(&v.place, lim.string_len)?;
                let mut s = quote(&bytes);
                if len > bytes.len() as u64 {
                    let _ = write!(s, "...+{} more", len - bytes.len() as u64);
                }
                Ok(s)
            }
            kind::SLICE | kind::ARRAY => {
                let (elem, base, len, cap) = self.sequence(v)?;
                let mut s = match k {
                    kind::SLICE => format!("{name} len: {len}, cap: {cap}, "),
                    _ => format!("{name} "),
                };
                // A nil slice (no array) is not an empty one: say so, as Delve does.
                if k == kind::SLICE && matches!(base, Place::Mem(0)) {
                    s.push_str("nil");
                    return Ok(s);
                }
                if depth >= lim.depth && len > 0 {
                    s.push_str("[...]");
                    return Ok(s);
                }
                let es = self.size(elem);
                s.push('[');
                for i in 0..len.min(lim.array_values) {
                    if i > 0 {
                        s.push(',');
                    }
                    let e = Value {
                        ty: elem,
                        place: offset(&base, i * es),
                    };
                    s.push_str(&self.fmt_value(&e, depth + 1, seen));
                }
                if len > lim.array_values {
                    let sep = if lim.array_values > 0 { "," } else { "" };
                    let _ = write!(s, "{sep}...+{} more", len - lim.array_values);
                }
                s.push(']');
                Ok(s)
            }
            kind::STRUCT => {
                if depth >= lim.depth {
                    return Ok(format!("{name} {{...}}"));
                }
                let mut s = format!("{name} {{");
                // Delve does not cut a struct's fields by max-array-values;
                // DWARF's member list is finite, but bounded all the same.
                for (i, m) in t.members.iter().take(MAX_FIELDS).enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    let val = match m.ty {
                        Some(ty) => {
                            let e = Value {
                                ty,
                                place: offset(&v.place, m.offset),
                            };
                            self.fmt_value(&e, depth + 1, seen)
                        }
                        None => "?".into(),
                    };
                    let _ = write!(s, "{}: {val}", m.name);
                }
                if t.members.len() > MAX_FIELDS {
                    let _ = write!(s, ", ...+{} more", t.members.len() - MAX_FIELDS);
                }
                s.push('}');
                Ok(s)
            }
            kind::POINTER => {
                let p = self.read_u64(&v.place, 0)?;
                let target = t.target.filter(|_| p != 0);
                match target {
                    None if p == 0 => Ok(format!("{name} nil")),
                    Some(to)
                        if matches!(self.kind(to), kind::STRUCT | kind::ARRAY)
                            && depth < lim.depth
                            && seen.insert(p) =>
                    {
                        let pointee = Value {
                            ty: to,
                            place: Place::Mem(p),
                        };
                        // As Delve: following a pointer is no nesting level
                        // of its own (the struct or array it shows is).
                        Ok(format!("*{}", self.fmt_value(&pointee, depth, seen)))
                    }
                    _ => Ok(format!("({name})({p:#x})")),
                }
            }
            kind::MAP => self.fmt_map(v, lay, &name, depth, seen),
            kind::CHAN => self.fmt_chan(v, lay, &name, depth, seen),
            kind::INTERFACE => self.fmt_interface(v, &name, depth, seen),
            _ => {
                let b = self.read(&v.place, 0, size.min(64))?;
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
                Ok(format!("{name} [{}]", hex.join(" ")))
            }
        }
    }

    fn fmt_interface(
        &self,
        v: &Value,
        name: &str,
        depth: usize,
        seen: &mut HashSet<u64>,
    ) -> Result<String, VarError> {
        match self.dynamic(v)? {
            Dynamic::Nil => Ok(format!("{name} nil")),
            Dynamic::Undescribed { typ, data } => {
                // No DWARF for it: the runtime's descriptor still names it.
                let t = self.runtime_type(typ);
                Ok(match t.and_then(|t| Ok((self.runtime_type_name(&t)?, t))) {
                    Ok((dyn_name, t)) => {
                        format!(
                            "{name}({dyn_name}) {}",
                            self.fmt_runtime_value(&t, typ, data)
                        )
                    }
                    Err(why) => format!("{name}(<partial: type {typ:#x}: {why}>) {data:#x}"),
                })
            }
            Dynamic::Value(inner) => {
                // The interface is a wrapper, not a nesting level of its own.
                let text = self.fmt_value(&inner, depth, seen);
                Ok(format!("{name}({}) {text}", self.type_name(inner.ty)))
            }
        }
    }

    /// What the interface value `v` holds.
    pub fn dynamic(&self, v: &Value) -> Result<Dynamic, VarError> {
        let (tab_or_type, data) = (self.read_u64(&v.place, 0)?, self.read_u64(&v.place, 8)?);
        if tab_or_type == 0 {
            return Ok(Dynamic::Nil);
        }
        // Optimized code's DWARF can point at a reused slot: a type pointer
        // outside the type section (or misaligned) means the value is stale.
        let in_types = |p: u64| {
            let link = p.wrapping_sub(self.bias);
            match self.types {
                Some((b, e)) if (b..e).contains(&link) && link.is_multiple_of(8) => Ok(link - b),
                Some(_) => Err(VarError::StaleType(p)),
                None => Ok(link),
            }
        };
        let typ = if self.member(v.ty, "tab").is_some() {
            // itab: the interface type, then the dynamic type.
            in_types(self.read_u64(&Place::Mem(tab_or_type), 0)?)?;
            self.read_u64(&Place::Mem(tab_or_type), 8)?
        } else {
            tab_or_type
        };
        let rel = in_types(typ)?;
        let Some(dyn_ty) = self.index.by_runtime_type(rel) else {
            return Ok(Dynamic::Undescribed { typ, data });
        };
        // A pointer-shaped type (its descriptor's Size_ and PtrBytes both 8:
        // pointers, maps, channels, funcs, and structs or arrays of one
        // such) is held in the data word itself, not behind it.
        let at = Place::Mem(typ);
        let direct = match (self.read_u64(&at, 0), self.read_u64(&at, 8)) {
            (Ok(size), Ok(ptr_bytes)) => size == 8 && ptr_bytes == 8,
            _ => self.pointer_shaped(dyn_ty, 0),
        };
        let place = if direct {
            Place::Bytes(data.to_le_bytes().to_vec())
        } else {
            Place::Mem(data)
        };
        Ok(Dynamic::Value(Value { ty: dyn_ty, place }))
    }

    /// A func value's name: a func value points at a closure record whose
    /// first word is the code address (closures are named `f.funcN`).
    fn func_name(&self, p: u64) -> Option<String> {
        let pc = self.read_u64(&Place::Mem(p), 0).ok()?;
        let f = self.index.function(pc.wrapping_sub(self.bias))?;
        Some(f.name.clone())
    }
}

/// What an interface holds.
pub enum Dynamic {
    Nil,
    /// A value of a type DWARF describes.
    Value(Value),
    /// A type only the runtime's descriptor at `typ` describes.
    Undescribed {
        typ: u64,
        data: u64,
    },
}

impl Scope<'_> {
    /// Whether `ty` is one pointer as far as its DWARF type tells (the
    /// compiler's rule before Go 1.26: a pointer-like kind, or a struct or
    /// array of exactly one such).
    fn pointer_shaped(&self, ty: usize, depth: usize) -> bool {
        let Some((_, t)) = self.layout(ty).filter(|_| depth < 8) else {
            return false;
        };
        match self.kind(ty) {
            kind::POINTER | kind::CHAN | kind::MAP | kind::FUNC | kind::UNSAFE_POINTER => true,
            kind::STRUCT => match &t.members[..] {
                [m] => m.ty.is_some_and(|m| self.pointer_shaped(m, depth + 1)),
                _ => false,
            },
            kind::ARRAY => {
                t.count == Some(1) && t.target.is_some_and(|e| self.pointer_shaped(e, depth + 1))
            }
            _ => false,
        }
    }
}

/// Go-style double-quoted string (`strconv.Quote`): valid UTF-8 printable
/// text as is, control characters and invalid bytes escaped.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                // Go escapes non-printable runes; Rust's closest test.
                c if c.is_control() || c == '\u{feff}' => {
                    let _ = write!(s, "\\u{:04x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(b"a\"b\\\n\x00\xff"), r#""a\"b\\\n\x00\xff""#);
        assert_eq!(quote("世界".as_bytes()), "\"世界\"");
        assert_eq!(quote(b"\xe4\xb8"), r#""\xe4\xb8""#);
    }

    #[test]
    fn offsets_into_bytes() {
        assert_eq!(
            offset(&Place::Bytes(vec![1, 2, 3]), 1),
            Place::Bytes(vec![2, 3])
        );
        assert_eq!(offset(&Place::Mem(0x10), 8), Place::Mem(0x18));
        assert!(matches!(
            offset(&Place::Bytes(vec![1]), 5),
            Place::Unavailable(_)
        ));
    }
}
