//! Breakpoint conditions: any boolean expression `print` evaluates
//! (`n >= 3 && req.Path == "/a"`), where `goroutine` is the id of the
//! goroutine that hit (as Delve's `cond` takes it).

use super::error::{Result, SessionError};
use super::Session;
use crate::values::eval::{self, ast, Const, Val};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    text: String,
    expr: ast::Expr,
}

/// Parses `text`, with a message saying what is accepted.
pub fn parse(text: &str) -> Result<Cond> {
    let expr = eval::parse(text).map_err(|e| SessionError::BadCondition {
        text: text.to_string(),
        why: e,
    })?;
    Ok(Cond {
        text: text.to_string(),
        expr,
    })
}

/// `c`'s expression with every `goroutine` (the id of the goroutine that
/// hit, as Delve's `cond` takes it) replaced by `id`.
fn with_goroutine(e: &ast::Expr, id: i128) -> ast::Expr {
    use ast::Expr::*;
    let sub = |x: &ast::Expr| Box::new(with_goroutine(x, id));
    match e {
        Ident(g) if g == "goroutine" => Int(id),
        Field(x, n) => Field(sub(x), n.clone()),
        Index(x, i) => Index(sub(x), sub(i)),
        Slice(x, lo, hi) => Slice(sub(x), lo.as_deref().map(sub), hi.as_deref().map(sub)),
        Assert(x, t) => Assert(sub(x), t.clone()),
        Call(f, args) => Call(sub(f), args.iter().map(|a| with_goroutine(a, id)).collect()),
        Unary(op, x) => Unary(*op, sub(x)),
        Binary(op, l, r) => Binary(*op, sub(l), sub(r)),
        Paren(x) => Paren(sub(x)),
        other => other.clone(),
    }
}

/// Whether `c` holds in the selected frame of the selected goroutine.
pub(crate) fn holds(s: &Session, c: &Cond) -> Result<bool> {
    let expr = with_goroutine(&c.expr, i128::from(s.current_g()?.id));
    let scope = s.scope()?;
    match scope.eval(&expr)? {
        Val::Const(Const::Bool(b)) => Ok(b),
        v => match scope.show(&v, None).as_deref() {
            Ok("true") => Ok(true),
            Ok("false") => Ok(false),
            _ => Err(SessionError::NotABool {
                text: c.text.clone(),
                ty: scope.val_type(&v),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expressions() {
        assert!(parse("n >= 3").is_ok());
        assert!(parse("req.Path == \"/a\\\"b\"").is_ok());
        assert!(parse("ok != true && x<0x10").is_ok());
        let c = parse("goroutine == 7 && (n > goroutine || f(goroutine))").unwrap();
        let want = parse("7 == 7 && (n > 7 || f(7))").unwrap();
        assert_eq!(with_goroutine(&c.expr, 7), want.expr);
        assert!(parse("n ==").is_err());
        assert!(parse("1x == 2").is_err());
    }
}
