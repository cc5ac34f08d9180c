//! Calls (`len`, `cap`, conversions) and type assertions.

use super::super::format::Dynamic;
use super::super::types::kind;
use super::super::{Place, Scope, Value, VarError};
use super::ast::Expr;
use super::{computed, Const, Val};

impl Scope<'_> {
    pub(super) fn assert(&self, v: Val, t: &str) -> Result<Val, VarError> {
        let v = self.typed_value(v)?;
        if self.kind(v.ty) != kind::INTERFACE {
            return Err(VarError::NotInterface(self.type_name(v.ty)));
        }
        let (got, val) = match self.dynamic(&v)? {
            Dynamic::Nil => ("nil".to_string(), None),
            Dynamic::Value(d) => (self.type_name(d.ty), Some(d)),
            Dynamic::Undescribed { typ, .. } => {
                let name = self
                    .runtime_type(typ)
                    .and_then(|r| self.runtime_type_name(&r))
                    .unwrap_or_else(|_| format!("{typ:#x}"));
                (name, None)
            }
        };
        let want = self
            .type_by_name(t)
            .map_or_else(|| t.to_string(), |w| self.type_name(w));
        match val {
            Some(d) if got == want => Ok(Val::Typed(d)),
            // The assertion holds, but the value has no DWARF type to be
            // an operand of (the interface prints it from the runtime's
            // type descriptor).
            None if got == want && got != "nil" => Err(VarError::NoDwarfType(got)),
            _ => Err(VarError::DynamicType(got)),
        }
    }

    pub(super) fn call(&self, f: &Expr, args: &[Expr]) -> Result<Val, VarError> {
        let name = f.to_string();
        let [arg] = args else {
            return Err(VarError::Arity(name));
        };
        if let Expr::Ident(b) = f {
            let b = b.as_str();
            if b != "len" && b != "cap" {
                return self.conversion(f, arg, name);
            }
            if self.local(b).is_none() {
                let v = self.operand(arg)?;
                return self.len_cap(b == "len", v);
            }
        }
        self.conversion(f, arg, name)
    }

    fn conversion(&self, f: &Expr, arg: &Expr, name: String) -> Result<Val, VarError> {
        let ty = match self.eval(f) {
            Ok(Val::Type(t)) => t,
            Ok(_) => return Err(VarError::NotCallable(name)),
            Err(e) => return Err(e),
        };
        let v = self.operand(arg)?;
        self.convert(v, ty)
    }

    fn len_cap(&self, len: bool, v: Val) -> Result<Val, VarError> {
        let func = if len { "len" } else { "cap" };
        let n: u64 = match &v {
            Val::Const(Const::Str(s)) if len => s.len() as u64,
            _ => {
                let t = self.through_array_pointer(self.typed_value(v)?)?;
                match self.kind(t.ty) {
                    kind::STRING if len => self.read_u64(&t.place, 8)?,
                    kind::SLICE | kind::ARRAY => {
                        let (_, _, l, c) = self.sequence(&t)?;
                        if len {
                            l
                        } else {
                            c
                        }
                    }
                    k @ (kind::MAP | kind::CHAN) => {
                        let (lay, _) = self.layout(t.ty).ok_or(VarError::UnknownType)?;
                        match self.runtime_header(&t, lay)? {
                            None => 0,
                            Some((p, hdr)) => {
                                let names: &[&str] = match (k, len) {
                                    (kind::MAP, true) => &["count", "used"],
                                    (kind::CHAN, true) => &["qcount"],
                                    (kind::CHAN, false) => &["dataqsiz"],
                                    _ => &[],
                                };
                                let off = hdr
                                    .and_then(|h| names.iter().find_map(|n| self.member(h, n)))
                                    .map(|(o, _)| o);
                                let bad = VarError::BadArgument {
                                    func,
                                    ty: self.type_name(t.ty),
                                };
                                let off = off.ok_or(bad)?;
                                self.read_u64(&Place::Mem(p), off)?
                            }
                        }
                    }
                    _ => {
                        return Err(VarError::BadArgument {
                            func,
                            ty: self.type_name(t.ty),
                        })
                    }
                }
            }
        };
        let n = Const::Int(i128::from(n));
        match self.index.type_named("int") {
            Some(int) => self.encode(int, &n),
            None => Ok(Val::Const(n)),
        }
    }

    fn convert(&self, v: Val, ty: usize) -> Result<Val, VarError> {
        // Same layout (a named type and its underlying one): the same bytes.
        if let Val::Typed(t) = &v {
            let same_kind = self.kind(t.ty) == self.kind(ty) && self.size(t.ty) == self.size(ty);
            let numeric = (kind::INT..=kind::FLOAT64).contains(&self.kind(ty));
            if same_kind && !numeric {
                return Ok(Val::Typed(Value {
                    ty,
                    place: t.place.clone(),
                }));
            }
            // string to []byte: a slice header over the string's bytes
            // (read-only, like everything the evaluator makes).
            if self.kind(ty) == kind::SLICE && self.kind(t.ty) == kind::STRING {
                let empty = Value {
                    ty,
                    place: Place::Bytes(vec![0; 24]),
                };
                let elem = self.sequence(&empty).ok().map(|s| s.0);
                if elem.is_some_and(|e| self.size(e) == 1) {
                    let ptr = self.read_u64(&t.place, 0)?;
                    let len = self.read_u64(&t.place, 8)?;
                    let mut b = ptr.to_le_bytes().to_vec();
                    b.extend(len.to_le_bytes());
                    b.extend(len.to_le_bytes());
                    return Ok(computed(ty, b));
                }
            }
            // []byte to string.
            if self.kind(ty) == kind::STRING && self.kind(t.ty) == kind::SLICE {
                let (elem, base, len, _) = self.sequence(t)?;
                if self.size(elem) == 1 {
                    let b = self.read(&base, 0, len.min(super::MAX_STRING))?;
                    return Ok(Val::Const(Const::Str(b)));
                }
            }
        }
        let c = self.scalar(&v)?;
        self.encode(ty, &c)
    }
}
