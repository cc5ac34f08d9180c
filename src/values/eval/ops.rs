//! Unary and binary operators with Go's typing rules: an untyped constant
//! takes the other operand's type; two typed operands must have the same
//! type; integers of a type wrap to its size; comparisons are untyped bool.

use super::super::types::kind;
use super::super::{Scope, VarError};
use super::ast::{BinOp, UnOp};
use super::nums::const_type;
use super::{Const, Val, MAX_STRING};

impl Scope<'_> {
    fn typed_ty(&self, v: &Val) -> Option<usize> {
        match v {
            Val::Typed(t) => Some(t.ty),
            _ => None,
        }
    }

    fn name_of(&self, v: &Val) -> String {
        match v {
            Val::Const(c) => const_type(c).to_string(),
            v => self.val_type(v),
        }
    }

    pub(super) fn unary(&self, op: UnOp, v: Val) -> Result<Val, VarError> {
        let ty = self.typed_ty(&v);
        let bad = || VarError::BadOperand {
            op: match op {
                UnOp::Neg => "-",
                UnOp::Plus => "+",
                UnOp::Not => "!",
                _ => "^",
            },
            ty: self.name_of(&v),
        };
        let c = match (op, self.scalar(&v)?) {
            (UnOp::Plus, c @ (Const::Int(_) | Const::Float(_))) => c,
            (UnOp::Neg, Const::Int(i)) => Const::Int(i.checked_neg().ok_or(VarError::Overflow)?),
            (UnOp::Neg, Const::Float(f)) => Const::Float(-f),
            (UnOp::Not, Const::Bool(b)) => Const::Bool(!b),
            (UnOp::Xor, Const::Int(i)) => {
                // ^x of an unsigned type flips its bits only.
                match ty.filter(|t| (kind::UINT..=kind::UINTPTR).contains(&self.kind(*t))) {
                    Some(t) => {
                        let bits = 8 * self.size(t).clamp(1, 8) as u32;
                        Const::Int(i ^ ((1i128 << bits) - 1))
                    }
                    None => Const::Int(!i),
                }
            }
            _ => return Err(bad()),
        };
        self.typed(ty, c)
    }

    /// `c` with type `ty` when there is one.
    fn typed(&self, ty: Option<usize>, c: Const) -> Result<Val, VarError> {
        match ty {
            Some(t) => self.encode(t, &c),
            None => Ok(Val::Const(c)),
        }
    }

    pub(super) fn binary(&self, op: BinOp, a: Val, b: Val) -> Result<Val, VarError> {
        if let Some(r) = self.nil_comparison(op, &a, &b)? {
            return Ok(Val::Const(Const::Bool(r)));
        }
        let (ta, tb) = (self.typed_ty(&a), self.typed_ty(&b));
        // Shifts: the count is any integer; the result has the left type.
        let shift = matches!(op, BinOp::Shl | BinOp::Shr);
        if let (Some(x), Some(y), false) = (ta, tb, shift) {
            if x != y && self.type_name(x) != self.type_name(y) {
                return Err(VarError::Mismatched {
                    left: self.type_name(x),
                    right: self.type_name(y),
                });
            }
        }
        let ty = if shift { ta } else { ta.or(tb) };
        let (ca, cb) = (self.scalar(&a)?, self.scalar(&b)?);
        let float_ty = ty.is_some_and(|t| matches!(self.kind(t), kind::FLOAT32 | kind::FLOAT64));
        let int_ty = ty.is_some_and(|t| (kind::INT..=kind::UINTPTR).contains(&self.kind(t)));
        // Untyped constants take the operand type's kind.
        let (ca, cb) = match (ca, cb) {
            (Const::Int(x), Const::Float(y)) if !int_ty || shift => {
                (Const::Float(x as f64), Const::Float(y))
            }
            (Const::Float(x), Const::Int(y)) if !int_ty && !shift => {
                (Const::Float(x), Const::Float(y as f64))
            }
            (Const::Int(x), Const::Int(y)) if float_ty && !shift => {
                (Const::Float(x as f64), Const::Float(y as f64))
            }
            (Const::Float(x), y) if int_ty && x.fract() == 0.0 && x.abs() < 1e30 => {
                (Const::Int(x as i128), y)
            }
            (x, Const::Float(y)) if int_ty && !shift && y.fract() == 0.0 && y.abs() < 1e30 => {
                (x, Const::Int(y as i128))
            }
            p => p,
        };
        let bad = |c: &Const| VarError::BadOperand {
            op: op.symbol(),
            ty: ty.map_or_else(|| const_type(c).to_string(), |t| self.type_name(t)),
        };
        let r = match (&ca, &cb) {
            (Const::Int(x), Const::Int(y)) => int_op(op, *x, *y)?,
            (Const::Float(x), Const::Float(y)) => float_op(op, *x, *y).ok_or_else(|| bad(&ca))?,
            (Const::Str(x), Const::Str(y)) => match op {
                BinOp::Add if (x.len() + y.len()) as u64 <= MAX_STRING => {
                    Const::Str([x.as_slice(), y.as_slice()].concat())
                }
                BinOp::Add => return Err(VarError::TooLong((x.len() + y.len()) as u64)),
                o if o.is_comparison() => Const::Bool(compare(o, x, y)),
                _ => return Err(bad(&ca)),
            },
            (Const::Bool(x), Const::Bool(y)) => match op {
                BinOp::Eq => Const::Bool(x == y),
                BinOp::Ne => Const::Bool(x != y),
                BinOp::LAnd => Const::Bool(*x && *y),
                BinOp::LOr => Const::Bool(*x || *y),
                _ => return Err(bad(&ca)),
            },
            _ => {
                return Err(VarError::Mismatched {
                    left: self.name_of(&a),
                    right: self.name_of(&b),
                })
            }
        };
        match r {
            Const::Bool(_) if op.is_comparison() => Ok(Val::Const(r)),
            r => self.typed(ty, r),
        }
    }

    /// `x == nil` / `x != nil` for pointer-like values (their first word).
    fn nil_comparison(&self, op: BinOp, a: &Val, b: &Val) -> Result<Option<bool>, VarError> {
        let other = match (a, b) {
            (Val::Const(Const::Nil), o) | (o, Val::Const(Const::Nil)) => o,
            _ => return Ok(None),
        };
        let is_nil = match other {
            Val::Const(Const::Nil) => true,
            Val::Typed(t)
                if matches!(
                    self.kind(t.ty),
                    kind::POINTER
                        | kind::UNSAFE_POINTER
                        | kind::SLICE
                        | kind::MAP
                        | kind::CHAN
                        | kind::FUNC
                        | kind::INTERFACE
                ) =>
            {
                self.read_u64(&t.place, 0)? == 0
            }
            Val::Addr { addr, .. } => *addr == 0,
            o => {
                return Err(VarError::Mismatched {
                    left: self.name_of(o),
                    right: "nil".into(),
                })
            }
        };
        match op {
            BinOp::Eq => Ok(Some(is_nil)),
            BinOp::Ne => Ok(Some(!is_nil)),
            _ => Err(VarError::BadOperand {
                op: op.symbol(),
                ty: "nil".into(),
            }),
        }
    }
}

fn compare<T: PartialOrd + ?Sized>(op: BinOp, x: &T, y: &T) -> bool {
    match op {
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        _ => x >= y,
    }
}

/// Integer arithmetic, checked (i128 holds any 64-bit result but products
/// and shifts of constants can still overflow it).
fn int_op(op: BinOp, x: i128, y: i128) -> Result<Const, VarError> {
    use BinOp::*;
    let shift = |y: i128| {
        u32::try_from(y)
            .ok()
            .filter(|s| *s < 127)
            .ok_or(VarError::BadShift(y))
    };
    Ok(Const::Int(match op {
        Add => x.checked_add(y).ok_or(VarError::Overflow)?,
        Sub => x.checked_sub(y).ok_or(VarError::Overflow)?,
        Mul => x.checked_mul(y).ok_or(VarError::Overflow)?,
        Div | Rem if y == 0 => return Err(VarError::DivideByZero),
        Div => x.checked_div(y).ok_or(VarError::Overflow)?,
        Rem => x.checked_rem(y).ok_or(VarError::Overflow)?,
        And => x & y,
        Or => x | y,
        Xor => x ^ y,
        AndNot => x & !y,
        Shl => {
            let s = shift(y)?;
            let r = x.checked_shl(s).ok_or(VarError::Overflow)?;
            if r >> s != x {
                return Err(VarError::Overflow);
            }
            r
        }
        Shr => x >> shift(y)?,
        c if c.is_comparison() => return Ok(Const::Bool(compare(c, &x, &y))),
        _ => {
            return Err(VarError::BadOperand {
                op: op.symbol(),
                ty: "integer".into(),
            })
        }
    }))
}

fn float_op(op: BinOp, x: f64, y: f64) -> Option<Const> {
    use BinOp::*;
    Some(Const::Float(match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        c if c.is_comparison() => return Some(Const::Bool(compare(c, &x, &y))),
        _ => return None,
    }))
}
