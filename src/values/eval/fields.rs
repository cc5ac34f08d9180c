//! Selectors, `x.f`: through pointers, through an interface to its
//! dynamic value, into a channel's `runtime.hchan` (Delve's `ch.qcount`,
//! `ch.sendq`), and to promoted fields: `f` declared by a struct embedded
//! in `x` (directly or through an embedded pointer, at any depth), found as
//! the Go compiler finds it: the shallowest embedding wins, and two at the
//! same depth make the selector ambiguous. `conn.fd` for a `*net.TCPConn`
//! is `conn.conn.fd`, the form Delve and Go users write.

use std::collections::HashSet;

use super::super::format::Dynamic;
use super::super::types::{kind, offset};
use super::super::{Scope, Value, VarError};
use super::Val;

/// Most interfaces and pointers a selector looks through.
const MAX_HOPS: usize = 8;

/// Embedding levels searched: Go programs rarely nest more than three.
const MAX_DEPTH: usize = 16;
/// Struct types examined in all, so a hostile or huge DWARF stays cheap.
const MAX_STRUCTS: usize = 1024;

/// One embedded field on the way to the promoted one.
#[derive(Clone, Copy)]
struct Step {
    offset: u64,
    ty: usize,
}

/// A struct type reached by a path of embedded fields.
struct Reached {
    ty: usize,
    path: Vec<Step>,
}

impl Scope<'_> {
    /// `.f` through pointers and interfaces (the dynamic value's field).
    pub(super) fn field(&self, v: Val, f: &str) -> Result<Val, VarError> {
        let mut v = v;
        for _ in 0..MAX_HOPS {
            if let Val::Addr { .. } = v {
                v = self.deref_val(v)?;
                continue;
            }
            let t = self.typed_value(v)?;
            match self.kind(t.ty) {
                kind::POINTER => v = self.deref_val(Val::Typed(t))?,
                kind::INTERFACE => match self.dynamic(&t)? {
                    Dynamic::Value(d) => v = Val::Typed(d),
                    Dynamic::Nil => return Err(VarError::NilPointer),
                    Dynamic::Undescribed { .. } => {
                        return Err(VarError::NoFields(self.type_name(t.ty)))
                    }
                },
                // A channel is a pointer to its runtime.hchan (its DWARF
                // type a typedef of *hchan<T>): its fields are the hchan's.
                kind::CHAN => match self.layout(t.ty) {
                    Some((ptr, _)) if ptr != t.ty && self.kind(ptr) == kind::POINTER => {
                        v = Val::Typed(Value {
                            ty: ptr,
                            place: t.place,
                        })
                    }
                    _ => return Err(VarError::NoFields(self.type_name(t.ty))),
                },
                kind::STRUCT => {
                    if let Some((off, ty)) = self.member(t.ty, f) {
                        return Ok(Val::Typed(Value {
                            ty,
                            place: offset(&t.place, off),
                        }));
                    }
                    return self.promoted_field(t, f);
                }
                _ => return Err(VarError::NoFields(self.type_name(t.ty))),
            }
        }
        Err(VarError::TooDeep)
    }

    /// `v.f` for struct `v` that does not declare `f` itself.
    pub(super) fn promoted_field(&self, v: Value, f: &str) -> Result<Val, VarError> {
        let no_field = || VarError::NoField {
            field: f.to_string(),
            ty: self.type_name(v.ty),
        };
        let (path, off, ty) = self.promotion(v.ty, f)?.ok_or_else(no_field)?;
        let mut cur = v;
        for step in path {
            let field = Value {
                ty: step.ty,
                place: offset(&cur.place, step.offset),
            };
            cur = if self.kind(step.ty) == kind::POINTER {
                self.typed_value(self.deref_val(Val::Typed(field))?)?
            } else {
                field
            };
        }
        Ok(Val::Typed(Value {
            ty,
            place: offset(&cur.place, off),
        }))
    }

    /// The embedded fields from struct type `ty` to the struct declaring
    /// `f` (breadth first), with `f`'s offset and type there.
    #[allow(clippy::type_complexity)]
    fn promotion(&self, ty: usize, f: &str) -> Result<Option<(Vec<Step>, u64, usize)>, VarError> {
        let mut level = vec![Reached {
            ty,
            path: Vec::new(),
        }];
        let mut seen = HashSet::from([self.struct_id(ty)]);
        let mut examined = 0usize;
        for depth in 0..MAX_DEPTH {
            let mut found = None;
            let mut next = Vec::new();
            for r in &level {
                examined += 1;
                if examined > MAX_STRUCTS {
                    return Ok(None);
                }
                let Some((_, t)) = self.layout(r.ty) else {
                    continue;
                };
                // The struct itself declares f only below the top level
                // (the caller looked there already).
                if depth > 0 {
                    if let Some(m) = t.members.iter().find(|m| m.name == f) {
                        if found.is_some() {
                            return Err(VarError::AmbiguousField {
                                field: f.to_string(),
                                ty: self.type_name(ty),
                            });
                        }
                        found = m.ty.map(|mt| (r.path.clone(), m.offset, mt));
                        continue;
                    }
                }
                for m in t.members.iter().filter(|m| m.embedded) {
                    let Some(mt) = m.ty else { continue };
                    let inner = if self.kind(mt) == kind::POINTER {
                        self.layout(mt).and_then(|(_, p)| p.target)
                    } else {
                        Some(mt)
                    };
                    let Some(inner) = inner.filter(|&i| self.kind(i) == kind::STRUCT) else {
                        continue;
                    };
                    if !seen.insert(self.struct_id(inner)) {
                        continue;
                    }
                    let mut path = r.path.clone();
                    path.push(Step {
                        offset: m.offset,
                        ty: mt,
                    });
                    next.push(Reached { ty: inner, path });
                }
            }
            if found.is_some() || next.is_empty() {
                return Ok(found);
            }
            level = next;
        }
        Ok(None)
    }

    /// A struct type's identity through typedefs.
    fn struct_id(&self, ty: usize) -> usize {
        self.layout(ty).map_or(ty, |(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::dwarf_vars::{Member, Type, VarIndex};
    use crate::process::{Memory, ReadFault};
    use crate::values::Place;

    /// Memory holding `words` from 0x1000.
    struct Words(Vec<u64>);

    impl Memory for Words {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
            let bytes: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
            let fault = ReadFault {
                addr,
                len: buf.len(),
            };
            let at = addr.checked_sub(0x1000).ok_or(fault)? as usize;
            let src = bytes.get(at..at + buf.len()).ok_or(fault)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    fn ty(tag: gimli::DwTag, name: &str, k: u8, target: Option<usize>) -> Type {
        Type {
            tag,
            name: name.into(),
            size: Some(8),
            kind: k,
            target,
            elem: None,
            key: None,
            encoding: 0,
            count: None,
            members: Vec::new(),
        }
    }

    /// A struct of (name, offset, type, embedded) fields.
    fn st(name: &str, fields: &[(&str, u64, usize, bool)]) -> Type {
        let mut t = ty(gimli::DW_TAG_structure_type, name, kind::STRUCT, None);
        t.members = fields
            .iter()
            .map(|&(n, offset, ty, embedded)| Member {
                name: n.into(),
                offset,
                ty: Some(ty),
                embedded,
            })
            .collect();
        t
    }

    const INT: usize = 1;
    const OUTER: usize = 2;
    const MID: usize = 3;
    const INNER: usize = 4;
    const PTR: usize = 5;
    const PTR_TO: usize = 6;
    const TWIN_A: usize = 7;
    const TWIN_B: usize = 8;
    const TWINS: usize = 9;
    const SELF_REF: usize = 10;
    const SELF_PTR: usize = 11;
    const CHAN: usize = 12;
    const HCHAN_PTR: usize = 13;
    const HCHAN: usize = 14;

    /// Outer {A; Mid; *Ptr}, Mid {B; Inner}, Inner {C; E}, Ptr {C; D};
    /// Twins {TwinA; TwinB}, both declaring X; SelfRef {*SelfRef; V}.
    fn index() -> VarIndex {
        let mut ix = VarIndex::default();
        let b = gimli::DW_TAG_base_type;
        ix.types.insert(INT, ty(b, "int", kind::INT, None));
        let outer = [
            ("A", 0, INT, false),
            ("Mid", 8, MID, true),
            ("Ptr", 32, PTR, true),
        ];
        ix.types.insert(OUTER, st("main.Outer", &outer));
        let mid = [("B", 0, INT, false), ("Inner", 8, INNER, true)];
        ix.types.insert(MID, st("main.Mid", &mid));
        let inner = [("C", 0, INT, false), ("E", 8, INT, false)];
        ix.types.insert(INNER, st("main.Inner", &inner));
        let p = gimli::DW_TAG_pointer_type;
        ix.types
            .insert(PTR, ty(p, "*main.Ptr", kind::POINTER, Some(PTR_TO)));
        let ptr = [("C", 0, INT, false), ("D", 8, INT, false)];
        ix.types.insert(PTR_TO, st("main.Ptr", &ptr));
        ix.types
            .insert(TWIN_A, st("main.TwinA", &[("X", 0, INT, false)]));
        ix.types
            .insert(TWIN_B, st("main.TwinB", &[("X", 0, INT, false)]));
        let twins = [("TwinA", 0, TWIN_A, true), ("TwinB", 8, TWIN_B, true)];
        ix.types.insert(TWINS, st("main.Twins", &twins));
        let self_ref = [("SelfRef", 0, SELF_PTR, true), ("V", 8, INT, false)];
        ix.types.insert(SELF_REF, st("main.SelfRef", &self_ref));
        let sp = ty(p, "*main.SelfRef", kind::POINTER, Some(SELF_REF));
        ix.types.insert(SELF_PTR, sp);
        // chan int: a typedef of *hchan<int>, as Go's DWARF has it.
        let td = gimli::DW_TAG_typedef;
        ix.types
            .insert(CHAN, ty(td, "chan int", kind::CHAN, Some(HCHAN_PTR)));
        let hp = ty(p, "*hchan<int>", kind::POINTER, Some(HCHAN));
        ix.types.insert(HCHAN_PTR, hp);
        let hchan = [("qcount", 0, INT, false), ("dataqsiz", 8, INT, false)];
        ix.types.insert(HCHAN, st("hchan<int>", &hchan));
        ix
    }

    fn at(ty: usize, addr: u64) -> Value {
        Value {
            ty,
            place: Place::Mem(addr),
        }
    }

    fn int(s: &Scope, v: Result<Val, VarError>) -> Result<u64, VarError> {
        let v = s.typed_value(v?)?;
        s.read_u64(&v.place, 0)
    }

    #[test]
    fn promoted_fields_follow_go_s_depth_rule() {
        // Outer at 0x1000: A=1, B=2, C=3, E=4, Ptr=0x1028; Ptr {C=5, D=6}.
        let mem = Words(vec![1, 2, 3, 4, 0x1028, 5, 6]);
        let ix = index();
        let s = Scope::bare(&mem, &ix);
        let o = || at(OUTER, 0x1000);
        assert_eq!(int(&s, s.promoted_field(o(), "B")).ok(), Some(2));
        assert_eq!(int(&s, s.promoted_field(o(), "E")).ok(), Some(4));
        assert_eq!(int(&s, s.promoted_field(o(), "D")).ok(), Some(6));
        // C is Inner's at depth 2 and Ptr's at depth 1: the shallower wins.
        assert_eq!(int(&s, s.promoted_field(o(), "C")).ok(), Some(5));
        assert!(matches!(
            s.promoted_field(o(), "Z"),
            Err(VarError::NoField { .. })
        ));
    }

    #[test]
    fn nil_embedded_pointers_ambiguity_and_cycles_are_errors() {
        // Ptr is nil: D cannot be reached; B still can.
        let mem = Words(vec![1, 2, 3, 4, 0, 0, 0]);
        let ix = index();
        let s = Scope::bare(&mem, &ix);
        let o = || at(OUTER, 0x1000);
        assert!(matches!(
            s.promoted_field(o(), "D"),
            Err(VarError::NilPointer)
        ));
        assert_eq!(int(&s, s.promoted_field(o(), "B")).ok(), Some(2));
        assert!(matches!(
            s.promoted_field(at(TWINS, 0x1000), "X"),
            Err(VarError::AmbiguousField { .. })
        ));
        // A struct embedding a pointer to itself ends the search.
        assert!(matches!(
            s.promoted_field(at(SELF_REF, 0x1000), "W"),
            Err(VarError::NoField { .. })
        ));
    }

    #[test]
    fn a_channel_s_fields_are_its_hchan_s() {
        // A channel variable at 0x1000 pointing at its hchan at 0x1008,
        // then a nil one at 0x1018.
        let mem = Words(vec![0x1008, 3, 5, 0]);
        let ix = index();
        let s = Scope::bare(&mem, &ix);
        let ch = Val::Typed(at(CHAN, 0x1000));
        assert_eq!(int(&s, s.field(ch.clone(), "qcount")).ok(), Some(3));
        assert_eq!(int(&s, s.field(ch.clone(), "dataqsiz")).ok(), Some(5));
        assert!(matches!(
            s.field(ch, "sendq"),
            Err(VarError::NoField { .. })
        ));
        let nil = Val::Typed(at(CHAN, 0x1018));
        assert!(matches!(s.field(nil, "qcount"), Err(VarError::NilPointer)));
    }
}
