//! Breakpoint conditions: any boolean expression `print` evaluates
//! (`n >= 3 && req.Path == "/a"`), plus `goroutine OP N`, the id of the
//! goroutine that hit (as Delve's `cond` takes it).

use anyhow::{anyhow, bail, Result};

use super::state::Session;
use crate::goruntime::vars::eval::{self, ast, Const, Val};

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cond {
    text: String,
    expr: ast::Expr,
}

/// Parses `text`, with a message saying what is accepted.
pub(super) fn parse(text: &str) -> Result<Cond> {
    let expr = eval::parse(text).map_err(|e| anyhow!("condition {text:?}: {e}"))?;
    Ok(Cond {
        text: text.to_string(),
        expr,
    })
}

/// `goroutine OP N`: the goroutine id compared with a number.
fn goroutine_test(e: &ast::Expr) -> Option<(ast::BinOp, i128)> {
    match e {
        ast::Expr::Binary(op, l, r) if op.is_comparison() => match (&**l, &**r) {
            (ast::Expr::Ident(g), ast::Expr::Int(n)) if g == "goroutine" => Some((*op, *n)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `c` holds in the selected frame of the selected goroutine.
pub(super) fn holds(s: &Session, c: &Cond) -> Result<bool> {
    if let Some((op, want)) = goroutine_test(&c.expr) {
        let id = i128::from(s.current_g()?.id);
        let cmp = ast::Expr::Binary(
            op,
            Box::new(ast::Expr::Int(id)),
            Box::new(ast::Expr::Int(want)),
        );
        let scope = s.scope()?;
        return match scope.eval(&cmp) {
            Ok(Val::Const(Const::Bool(b))) => Ok(b),
            _ => bail!("goroutine compares with an integer id"),
        };
    }
    let scope = s.scope()?;
    match scope.eval(&c.expr).map_err(|e| anyhow!(e))? {
        Val::Const(Const::Bool(b)) => Ok(b),
        v => match scope.show(&v, None).as_deref() {
            Ok("true") => Ok(true),
            Ok("false") => Ok(false),
            _ => bail!(
                "condition {:?} is a {}, not a bool",
                c.text,
                scope.val_type(&v)
            ),
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
        let c = parse("goroutine == 7").unwrap();
        assert_eq!(goroutine_test(&c.expr), Some((ast::BinOp::Eq, 7)));
        assert!(parse("n ==").is_err());
        assert!(parse("1x == 2").is_err());
    }
}
