//! Evaluation of each expression form over the frame's scope.

use super::super::format::Dynamic;
use super::super::types::{kind, offset};
use super::super::{Place, Scope, Value, VarError};
use super::ast::{BinOp, Expr, UnOp};
use super::keys::KeyWant;
use super::{at, computed, Const, Val, MAX_MAP_SEARCH};

/// Most interfaces and pointers a selector looks through.
const MAX_HOPS: usize = 8;

impl Scope<'_> {
    /// Evaluates `e`; an error names the sub-expression that failed.
    pub fn eval(&self, e: &Expr) -> Result<Val, VarError> {
        self.eval_inner(e).map_err(|why| at(e, why))
    }

    fn eval_inner(&self, e: &Expr) -> Result<Val, VarError> {
        match e {
            Expr::Ident(n) => self.ident(n),
            Expr::Int(i) | Expr::Char(i) => Ok(Val::Const(Const::Int(*i))),
            Expr::Float(f) => Ok(Val::Const(Const::Float(*f))),
            Expr::Str(s) => Ok(Val::Const(Const::Str(s.clone()))),
            Expr::Paren(x) => self.eval(x),
            Expr::Type(t) => self
                .type_by_name(t)
                .map(Val::Type)
                .ok_or_else(|| VarError::NoType(t.clone())),
            Expr::Field(x, f) => {
                if let Expr::Ident(pkg) = &**x {
                    if self.local(pkg).is_none() {
                        let full = format!("{pkg}.{f}");
                        if let Some(v) = self.global(&full) {
                            return Ok(v);
                        }
                        if let Some(t) = self.index.type_named(&full) {
                            return Ok(Val::Type(t));
                        }
                    }
                }
                let v = self.eval(x)?;
                self.field(v, f)
            }
            Expr::Index(x, i) => {
                let v = self.eval(x)?;
                let i = self.eval(i)?;
                self.index_val(v, i)
            }
            Expr::Slice(x, lo, hi) => {
                let v = self.eval(x)?;
                let lo = lo.as_ref().map(|l| self.eval(l)).transpose()?;
                let hi = hi.as_ref().map(|h| self.eval(h)).transpose()?;
                self.slice_val(v, lo, hi)
            }
            Expr::Assert(x, t) => {
                let v = self.eval(x)?;
                self.assert(v, t)
            }
            Expr::Call(f, args) => self.call(f, args),
            Expr::Unary(UnOp::Deref, x) => {
                let v = self.eval(x)?;
                if let Val::Type(t) = v {
                    let name = format!("*{}", self.type_name(t));
                    return self
                        .type_by_name(&name)
                        .map(Val::Type)
                        .ok_or(VarError::NoType(name));
                }
                self.deref_val(v)
            }
            Expr::Unary(UnOp::Addr, x) => match self.eval(x)? {
                Val::Typed(Value {
                    ty,
                    place: Place::Mem(addr),
                }) => Ok(Val::Addr { to: ty, addr }),
                Val::Typed(Value {
                    place: Place::Unavailable(why),
                    ..
                }) => Err(why),
                _ => Err(VarError::NoAddress),
            },
            Expr::Unary(op, x) => {
                let v = self.eval(x)?;
                self.unary(*op, v)
            }
            Expr::Binary(op @ (BinOp::LAnd | BinOp::LOr), a, b) => {
                // Short-circuit, as Go: the right side may not be readable.
                let l = self.eval(a)?;
                if let Const::Bool(x) = self.scalar(&l)? {
                    if x == (*op == BinOp::LOr) {
                        return Ok(Val::Const(Const::Bool(x)));
                    }
                }
                let r = self.eval(b)?;
                self.binary(*op, l, r)
            }
            Expr::Binary(op, a, b) => {
                let l = self.eval(a)?;
                let r = self.eval(b)?;
                self.binary(*op, l, r)
            }
        }
    }

    fn local(&self, name: &str) -> Option<Value> {
        self.variables(true)
            .into_iter()
            .chain(self.variables(false))
            .flatten()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// A package variable by full name.
    fn global(&self, name: &str) -> Option<Val> {
        let g = self.index.global(name)?;
        Some(Val::Typed(Value {
            ty: g.ty?,
            place: Place::Mem(g.addr.wrapping_add(self.bias)),
        }))
    }

    fn ident(&self, n: &str) -> Result<Val, VarError> {
        if let Some(v) = self.local(n) {
            return Ok(Val::Typed(v));
        }
        if let Some(v) = self.global(n).or_else(|| self.global(&format!("main.{n}"))) {
            return Ok(v);
        }
        match n {
            "nil" => return Ok(Val::Const(Const::Nil)),
            "true" | "false" => return Ok(Val::Const(Const::Bool(n == "true"))),
            _ => {}
        }
        if let Some(t) = self.type_by_name(n) {
            return Ok(Val::Type(t));
        }
        Err(VarError::NoVariable {
            name: n.to_string(),
            function: self.function_name(),
        })
    }

    /// A value in memory or registers, for operations that need one.
    fn typed_value(&self, v: Val) -> Result<Value, VarError> {
        match v {
            Val::Typed(t) => {
                if let Place::Unavailable(why) = &t.place {
                    return Err(why.clone());
                }
                Ok(t)
            }
            Val::Addr { to, addr } => {
                let name = format!("*{}", self.type_name(to));
                let ty = self.type_by_name(&name).ok_or(VarError::NoType(name))?;
                Ok(Value {
                    ty,
                    place: Place::Bytes(addr.to_le_bytes().to_vec()),
                })
            }
            Val::Type(t) => Err(VarError::IsType(self.type_name(t))),
            Val::Const(c) => Err(VarError::ConstNotInMemory {
                ty: super::nums::const_type(&c).into(),
            }),
        }
    }

    pub(super) fn deref_val(&self, v: Val) -> Result<Val, VarError> {
        if let Val::Addr { to, addr } = v {
            return Ok(Val::Typed(Value {
                ty: to,
                place: Place::Mem(addr),
            }));
        }
        let v = self.typed_value(v)?;
        if self.kind(v.ty) != kind::POINTER {
            return Err(VarError::NotPointer(self.type_name(v.ty)));
        }
        let p = self.read_u64(&v.place, 0)?;
        if p == 0 {
            return Err(VarError::NilPointer);
        }
        let to = self.layout(v.ty).and_then(|(_, t)| t.target);
        Ok(Val::Typed(Value {
            ty: to.ok_or(VarError::UnknownPointee)?,
            place: Place::Mem(p),
        }))
    }

    /// `.f` through pointers and interfaces (the dynamic value's field).
    fn field(&self, v: Val, f: &str) -> Result<Val, VarError> {
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
                kind::STRUCT => {
                    let (off, ty) = self.member(t.ty, f).ok_or_else(|| VarError::NoField {
                        field: f.to_string(),
                        ty: self.type_name(t.ty),
                    })?;
                    return Ok(Val::Typed(Value {
                        ty,
                        place: offset(&t.place, off),
                    }));
                }
                _ => return Err(VarError::NoFields(self.type_name(t.ty))),
            }
        }
        Err(VarError::TooDeep)
    }

    fn int_index(&self, i: &Val) -> Result<i128, VarError> {
        match self.scalar(i)? {
            Const::Int(n) => Ok(n),
            Const::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => Ok(f as i128),
            _ => Err(VarError::IndexNotInteger),
        }
    }

    fn index_val(&self, v: Val, i: Val) -> Result<Val, VarError> {
        if let Val::Const(Const::Str(s)) = &v {
            let n = self.int_index(&i)?;
            let b = usize::try_from(n).ok().and_then(|n| s.get(n));
            let b = b.ok_or(VarError::OutOfRange {
                index: n,
                len: s.len() as u64,
            })?;
            return Ok(Val::Const(Const::Int(i128::from(*b))));
        }
        let mut v = self.typed_value(v)?;
        // A pointer to an array indexes the array, as in Go.
        if self.kind(v.ty) == kind::POINTER {
            let to = self.layout(v.ty).and_then(|(_, t)| t.target);
            if to.is_some_and(|t| self.kind(t) == kind::ARRAY) {
                v = self.typed_value(self.deref_val(Val::Typed(v))?)?;
            }
        }
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

    fn slice_val(&self, v: Val, lo: Option<Val>, hi: Option<Val>) -> Result<Val, VarError> {
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
        let v = self.typed_value(v)?;
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

    fn assert(&self, v: Val, t: &str) -> Result<Val, VarError> {
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
            _ => Err(VarError::DynamicType(got)),
        }
    }

    fn call(&self, f: &Expr, args: &[Expr]) -> Result<Val, VarError> {
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
                let v = self.eval(arg)?;
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
        let v = self.eval(arg)?;
        self.convert(v, ty)
    }

    fn len_cap(&self, len: bool, v: Val) -> Result<Val, VarError> {
        let func = if len { "len" } else { "cap" };
        let n: u64 = match &v {
            Val::Const(Const::Str(s)) if len => s.len() as u64,
            _ => {
                let t = self.typed_value(v)?;
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
