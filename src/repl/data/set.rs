//! set: writing a variable of the live target through its tracer
//! (`/proc/PID/mem`, read back), with what Delve's `setValue` allows
//! (pkg/proc/eval.go): numbers converted and range-checked to the
//! variable's type, bools, pointers from an address, nil or a pointer of
//! the same type, and string/slice headers copied from a value of the same
//! type. What cannot be written safely is refused with one line: a value
//! not in memory (held in registers, or optimized out: the next
//! instruction would use the register), interfaces, maps, channels,
//! functions and composite values, and a pointer or header of another type.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::session::Session;
use crate::values::eval::{Const, Val};
use crate::values::types::kind;
use crate::values::{Place, Scope, Value};

/// `set EXPR = VALUE`
pub fn set(s: &mut Session, args: &[&str], _out: &mut dyn Write) -> Result<()> {
    let text = args.join(" ");
    let Some((lhs, rhs)) = split_assignment(&text) else {
        bail!("usage: set EXPR = VALUE");
    };
    let (addr, bytes) = {
        let scope = s.scope()?;
        let dst = scope.eval_text(lhs).map_err(|e| anyhow!(e))?;
        let src = scope.eval_text(rhs).map_err(|e| anyhow!(e))?;
        encode(&scope, lhs, &dst, &src)?
    };
    s.control()?.process().write_memory(addr, bytes)?;
    Ok(())
}

/// `EXPR = VALUE` split at the first `=` that is not part of `==`, `!=`,
/// `<=` or `>=`.
fn split_assignment(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let at = (0..b.len()).find(|&i| {
        b[i] == b'='
            && b.get(i + 1) != Some(&b'=')
            && (i == 0 || !matches!(b[i - 1], b'=' | b'!' | b'<' | b'>'))
    })?;
    let (lhs, rhs) = (text[..at].trim(), text[at + 1..].trim());
    (!lhs.is_empty() && !rhs.is_empty()).then_some((lhs, rhs))
}

/// Where to write and what: the bytes of `src` as a value of `dst`'s type.
fn encode(scope: &Scope, lhs: &str, dst: &Val, src: &Val) -> Result<(u64, Vec<u8>)> {
    let (ty, addr) = match dst {
        Val::Typed(Value {
            ty,
            place: Place::Mem(addr),
        }) => (*ty, *addr),
        Val::Typed(Value {
            place: Place::Unavailable(why),
            ..
        }) => bail!("set: {lhs} cannot be written: {why}"),
        Val::Typed(_) => bail!(
            "set: {lhs} is not in memory here (held in registers by optimized code, or computed); \
             writing it is not supported"
        ),
        Val::Const(_) => bail!("set: {lhs} is a constant, not a variable"),
        Val::Addr { .. } => bail!("set: {lhs} is an address, not a variable"),
        Val::Type(_) => bail!("set: {lhs} is a type, not a variable"),
    };
    let k = scope.kind(ty);
    let size = scope.size(ty);
    let name = scope.type_name(ty);
    let bytes = match k {
        kind::INT..=kind::UINTPTR => {
            let n = int_value(scope, src)
                .ok_or_else(|| anyhow!("set: cannot assign {} to {lhs} ({name})", what(scope, src)))?;
            int_bytes(n, size, (kind::INT..=kind::INT64).contains(&k))
                .ok_or_else(|| anyhow!("set: {n} does not fit in {lhs} ({name})"))?
        }
        kind::FLOAT32 | kind::FLOAT64 => {
            let f = float_value(scope, src)
                .ok_or_else(|| anyhow!("set: cannot assign {} to {lhs} ({name})", what(scope, src)))?;
            if k == kind::FLOAT32 {
                let g = f as f32;
                if f.is_finite() && !g.is_finite() {
                    bail!("set: {f} overflows {lhs} ({name})");
                }
                g.to_le_bytes().to_vec()
            } else {
                f.to_le_bytes().to_vec()
            }
        }
        kind::BOOL => match bool_value(scope, src) {
            Some(b) => vec![u8::from(b)],
            None => bail!("set: cannot assign {} to {lhs} ({name})", what(scope, src)),
        },
        kind::POINTER => pointer_bytes(scope, ty, src)
            .ok_or_else(|| anyhow!("set: cannot assign {} to {lhs} ({name}): a pointer takes nil, an address or a {name}", what(scope, src)))?,
        kind::STRING | kind::SLICE => header_bytes(scope, ty, src, size).ok_or_else(|| {
            anyhow!(
                "set: cannot assign {} to {lhs} ({name}): only another {name} value in the \
                 program can be copied (goat does not allocate in the target)",
                what(scope, src)
            )
        })?,
        _ => bail!(
            "set: {lhs} is a {name}; goat writes numbers, bools, pointers, strings and slices \
             only (not interfaces, maps, channels, functions or composite values)"
        ),
    };
    if bytes.len() as u64 != size {
        bail!(
            "set: {lhs} ({name}) is {size} bytes; cannot write {} bytes",
            bytes.len()
        );
    }
    Ok((addr, bytes))
}

/// How the refusal names the value offered.
fn what(scope: &Scope, v: &Val) -> String {
    match v {
        Val::Const(Const::Int(n)) => n.to_string(),
        Val::Const(Const::Float(f)) => f.to_string(),
        Val::Const(Const::Bool(b)) => b.to_string(),
        Val::Const(Const::Str(_)) => "a string literal".into(),
        Val::Const(Const::Nil) => "nil".into(),
        other => format!("a value of type {}", scope.val_type(other)),
    }
}

fn int_value(scope: &Scope, v: &Val) -> Option<i128> {
    match v {
        Val::Const(Const::Int(n)) => Some(*n),
        // An integral float constant, as Go converts `x = 3.0`.
        Val::Const(Const::Float(f)) if f.fract() == 0.0 && f.abs() < 1e38 => Some(*f as i128),
        Val::Typed(t) if (kind::INT..=kind::UINTPTR).contains(&scope.kind(t.ty)) => {
            scope.int_of(t).ok()
        }
        _ => None,
    }
}

fn int_bytes(n: i128, size: u64, signed: bool) -> Option<Vec<u8>> {
    let bits = u32::try_from(size.checked_mul(8)?)
        .ok()
        .filter(|b| (8..=64).contains(b))?;
    let fits = if signed {
        let lim = 1i128 << (bits - 1);
        (-lim..lim).contains(&n)
    } else {
        (0..(1i128 << bits)).contains(&n)
    };
    fits.then(|| n.to_le_bytes()[..size as usize].to_vec())
}

fn float_value(scope: &Scope, v: &Val) -> Option<f64> {
    match v {
        Val::Const(Const::Float(f)) => Some(*f),
        Val::Const(Const::Int(n)) => Some(*n as f64),
        Val::Typed(t) => {
            let k = scope.kind(t.ty);
            let b = scope.read(&t.place, 0, scope.size(t.ty)).ok()?;
            match k {
                kind::FLOAT32 => Some(f64::from(f32::from_le_bytes(b.get(..4)?.try_into().ok()?))),
                kind::FLOAT64 => Some(f64::from_le_bytes(b.get(..8)?.try_into().ok()?)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn bool_value(scope: &Scope, v: &Val) -> Option<bool> {
    match v {
        Val::Const(Const::Bool(b)) => Some(*b),
        Val::Typed(t) if scope.kind(t.ty) == kind::BOOL => {
            Some(scope.read(&t.place, 0, 1).ok()?.first()? != &0)
        }
        _ => None,
    }
}

/// A pointer of type `ty` from nil, an address, `&v` of the pointee type
/// or a pointer value of the same type.
fn pointer_bytes(scope: &Scope, ty: usize, src: &Val) -> Option<Vec<u8>> {
    let name = scope.type_name(ty);
    let addr = match src {
        Val::Const(Const::Nil) => 0,
        Val::Const(Const::Int(n)) => u64::try_from(*n).ok()?,
        Val::Addr { to, addr } if format!("*{}", scope.type_name(*to)) == name => *addr,
        Val::Typed(t) if scope.kind(t.ty) == kind::POINTER && scope.type_name(t.ty) == name => {
            scope.read_u64(&t.place, 0).ok()?
        }
        _ => return None,
    };
    Some(addr.to_le_bytes().to_vec())
}

/// A string or slice header copied from a value of the same type (or nil
/// for a slice).
fn header_bytes(scope: &Scope, ty: usize, src: &Val, size: u64) -> Option<Vec<u8>> {
    match src {
        Val::Const(Const::Nil) if scope.kind(ty) == kind::SLICE => {
            Some(vec![0; usize::try_from(size).ok()?])
        }
        Val::Typed(t) if scope.type_name(t.ty) == scope.type_name(ty) => {
            scope.read(&t.place, 0, size).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_assignment_only() {
        assert_eq!(split_assignment("x = 5"), Some(("x", "5")));
        assert_eq!(split_assignment("a[i==1] = b"), Some(("a[i==1]", "b")));
        assert_eq!(split_assignment("x == 5"), None);
        assert_eq!(split_assignment("x != 5"), None);
        assert_eq!(split_assignment("= 5"), None);
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(int_bytes(127, 1, true), Some(vec![127]));
        assert_eq!(int_bytes(128, 1, true), None);
        assert_eq!(int_bytes(-1, 1, true), Some(vec![0xff]));
        assert_eq!(int_bytes(-1, 8, false), None);
        assert_eq!(int_bytes(255, 1, false), Some(vec![255]));
        assert_eq!(int_bytes(1 << 40, 4, false), None);
    }
}
