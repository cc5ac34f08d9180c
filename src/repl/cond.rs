//! Breakpoint conditions: `LHS OP LITERAL`, where LHS is a variable path as
//! `print` takes it (or `goroutine`, the id of the goroutine that hit), OP
//! one of `== != < <= > >=`, and LITERAL an integer, a string or a bool.

use anyhow::{anyhow, bail, Result};

use super::state::Session;
use crate::goruntime::vars::{expr, types::kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lit {
    Int(i128),
    Str(Vec<u8>),
    Bool(bool),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cond {
    lhs: String,
    op: Op,
    lit: Lit,
}

/// Parses `text`, with a message saying what is accepted.
pub(super) fn parse(text: &str) -> Result<Cond> {
    const OPS: [(&str, Op); 6] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let usage = || {
        anyhow!("a condition is VAR OP VALUE, OP one of == != < <= > >=, VALUE an integer, \"string\" or true/false: {text:?}")
    };
    let (at, sym, op) = OPS
        .iter()
        .filter_map(|(sym, op)| text.find(sym).map(|i| (i, *sym, *op)))
        .min_by_key(|(i, sym, _)| (*i, usize::MAX - sym.len()))
        .ok_or_else(usage)?;
    let lhs = text[..at].trim().to_string();
    let rhs = text[at + sym.len()..].trim();
    if lhs != "goroutine" {
        expr::parse(&lhs).map_err(|e| anyhow!(e))?;
    }
    let lit = if let Some(q) = rhs.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Lit::Str(unescape(q))
    } else if rhs == "true" || rhs == "false" {
        Lit::Bool(rhs == "true")
    } else if let Some(hex) = rhs.strip_prefix("0x") {
        Lit::Int(i128::from_str_radix(hex, 16).map_err(|_| usage())?)
    } else {
        Lit::Int(rhs.parse().map_err(|_| usage())?)
    };
    if matches!(lit, Lit::Bool(_)) && !matches!(op, Op::Eq | Op::Ne) {
        bail!("booleans compare with == or != only: {text:?}");
    }
    Ok(Cond { lhs, op, lit })
}

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let c = match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some(other) => other,
                None => '\\',
            },
            (c, false) => c,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    out
}

fn compare<T: Ord>(a: T, op: Op, b: T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}

/// Whether `c` holds in the selected frame of the selected goroutine.
pub(super) fn holds(s: &Session, c: &Cond) -> Result<bool> {
    if c.lhs == "goroutine" {
        let Lit::Int(want) = c.lit else {
            bail!("goroutine compares with an integer id");
        };
        return Ok(compare(i128::from(s.current_g()?.id), c.op, want));
    }
    let e = expr::parse(&c.lhs).map_err(|e| anyhow!(e))?;
    let scope = s.scope()?;
    let v = scope.eval(&e).map_err(|e| anyhow!("{}: {e}", c.lhs))?;
    let k = scope.kind(v.ty);
    match (&c.lit, k) {
        (Lit::Int(want), kind::INT..=kind::UINTPTR) => {
            let text = scope.format(&v);
            let got: i128 = text
                .parse()
                .map_err(|_| anyhow!("{} is {text}, not a number", c.lhs))?;
            Ok(compare(got, c.op, *want))
        }
        (Lit::Bool(want), kind::BOOL) => {
            let got = scope.read(&v.place, 0, 1).map_err(|e| anyhow!(e))?[0] != 0;
            Ok(compare(got, c.op, *want))
        }
        (Lit::Str(want), kind::STRING) => {
            let (got, _) = scope
                .string_bytes(&v.place, want.len() as u64 + 1)
                .map_err(|e| anyhow!(e))?;
            Ok(compare(got.as_slice(), c.op, want.as_slice()))
        }
        _ => bail!(
            "cannot compare {} ({}) with that value",
            c.lhs,
            scope.type_name(v.ty)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operators_and_literals() {
        let c = parse("n >= 3").unwrap();
        assert_eq!((c.lhs.as_str(), c.op, c.lit), ("n", Op::Ge, Lit::Int(3)));
        let c = parse("req.Path == \"/a\\\"b\"").unwrap();
        assert_eq!(c.op, Op::Eq);
        assert_eq!(c.lit, Lit::Str(b"/a\"b".to_vec()));
        assert_eq!(parse("ok != true").unwrap().lit, Lit::Bool(true));
        assert_eq!(parse("x<0x10").unwrap().lit, Lit::Int(16));
        assert_eq!(parse("goroutine == 7").unwrap().lhs, "goroutine");
        assert!(parse("n").is_err());
        assert!(parse("n == banana").is_err());
        assert!(parse("ok < true").is_err());
        assert!(parse("1x == 2").is_err());
    }

    #[test]
    fn string_comparison_sees_one_byte_past_the_literal() {
        // "ab" must not equal "abc": holds() reads len+1 bytes for that.
        assert!(compare(&b"abc"[..], Op::Ne, &b"ab"[..]));
        assert!(compare(&b"ab"[..], Op::Eq, &b"ab"[..]));
    }
}
