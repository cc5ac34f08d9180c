//! Evaluation of each expression form over the frame's scope.

use super::super::types::kind;
use super::super::{Place, Scope, Value, VarError};
use super::ast::{BinOp, Expr, UnOp};
use super::{at, Const, Val};

impl Scope<'_> {
    /// Evaluates `e`; an error names the sub-expression that failed.
    pub fn eval(&self, e: &Expr) -> Result<Val, VarError> {
        self.eval_inner(e).map_err(|why| at(e, why))
    }

    /// `e` as an operand of a larger expression: a variable that is
    /// optimized out or unavailable there, or whose slot holds a stale
    /// interface or slice header at this pc, is an error that names it
    /// (alone, `print` shows it as `(T) <optimized out>`).
    pub(super) fn operand(&self, e: &Expr) -> Result<Val, VarError> {
        let v = self.eval(e)?;
        let (Some(name), Val::Typed(t)) = (variable_name(e), &v) else {
            return Ok(v);
        };
        let why = match &t.place {
            Place::Unavailable(why) => Some(why.clone()),
            _ => self.stale(t),
        };
        match why {
            Some(why) => Err(VarError::VariableUnavailable {
                name: name.to_string(),
                why: Box::new(why),
            }),
            None => Ok(v),
        }
    }

    /// Why `v`, a variable's value, is stale (optimized code's DWARF can
    /// name a slot the value has left): an interface whose type word is no
    /// type, a slice header Go would never make.
    fn stale(&self, v: &Value) -> Option<VarError> {
        let why = match self.kind(v.ty) {
            kind::INTERFACE => self.dynamic(v).err()?,
            kind::SLICE => self.sequence(v).err()?,
            _ => return None,
        };
        matches!(why, VarError::StaleType(_) | VarError::StaleSlice { .. }).then_some(why)
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
                    if let Some(v) = self.qualified(pkg, f) {
                        return v;
                    }
                }
                let v = self.operand(x)?;
                self.field(v, f)
            }
            Expr::Index(x, i) => {
                let v = self.operand(x)?;
                let i = self.operand(i)?;
                self.index_val(v, i)
            }
            Expr::Slice(x, lo, hi) => {
                let v = self.operand(x)?;
                let lo = lo.as_ref().map(|l| self.operand(l)).transpose()?;
                let hi = hi.as_ref().map(|h| self.operand(h)).transpose()?;
                self.slice_val(v, lo, hi)
            }
            Expr::Assert(x, t) => {
                let v = self.operand(x)?;
                self.assert(v, t)
            }
            Expr::Call(f, args) => self.call(f, args),
            Expr::Unary(UnOp::Deref, x) => {
                let v = self.operand(x)?;
                if let Val::Type(t) = v {
                    let name = format!("*{}", self.type_name(t));
                    return self
                        .type_by_name(&name)
                        .map(Val::Type)
                        .ok_or(VarError::NoType(name));
                }
                self.deref_val(v)
            }
            Expr::Unary(UnOp::Addr, x) => match self.operand(x)? {
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
                let v = self.operand(x)?;
                self.unary(*op, v)
            }
            Expr::Binary(op @ (BinOp::LAnd | BinOp::LOr), a, b) => {
                // Short-circuit, as Go: the right side may not be readable.
                let l = self.operand(a)?;
                if let Const::Bool(x) = self.scalar(&l)? {
                    if x == (*op == BinOp::LOr) {
                        return Ok(Val::Const(Const::Bool(x)));
                    }
                }
                let r = self.operand(b)?;
                self.binary(*op, l, r)
            }
            Expr::Binary(op, a, b) => {
                let l = self.operand(a)?;
                let r = self.operand(b)?;
                self.binary(*op, l, r)
            }
        }
    }

    /// A value in memory or registers, for operations that need one.
    pub(super) fn typed_value(&self, v: Val) -> Result<Value, VarError> {
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
}

/// The variable `e` names, if it is one (possibly in parentheses).
fn variable_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Ident(n) => Some(n),
        Expr::Paren(x) => variable_name(x),
        _ => None,
    }
}
