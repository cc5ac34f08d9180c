//! A precedence-climbing parser of Go expressions, as Delve's users type
//! them: operands, selectors, index/slice, type assertions, calls
//! (`len`, `cap`, conversions), unary and binary operators.

use super::super::VarError;
use super::ast::{BinOp, Expr, UnOp};
use super::lex::{lex, Tok};

/// Deepest nesting parsed: hostile input cannot exhaust the stack.
const MAX_NESTING: usize = 100;
/// Most tokens in one expression. Every node of the tree takes at least one
/// token, so this bounds the tree's depth too: a chain the parser builds in
/// a loop (`1+1+…+1`, `a.Next.Next…`) is as deep as it is long, and the
/// evaluator, `Display` and `Drop` all recurse on it. 1024 is far beyond
/// what anyone types and keeps that recursion well inside the 8 MiB stack
/// of the thread that runs a session (`tests.rs` checks it).
pub const MAX_TOKENS: usize = 1024;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

/// Parses a whole expression.
pub fn parse(text: &str) -> Result<Expr, VarError> {
    let toks = lex(text)?;
    if toks.len() > MAX_TOKENS {
        return Err(VarError::ExpressionTooLong {
            tokens: toks.len(),
            max: MAX_TOKENS,
        });
    }
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(VarError::Empty);
    }
    let e = p.expr(0)?;
    match p.toks.get(p.pos) {
        None => Ok(e),
        Some((at, _)) => Err(p.unexpected(*at)),
    }
}

fn binop(t: &Tok) -> Option<BinOp> {
    use BinOp::*;
    let Tok::Op(o) = t else { return None };
    Some(match *o {
        "+" => Add,
        "-" => Sub,
        "*" => Mul,
        "/" => Div,
        "%" => Rem,
        "&" => And,
        "|" => Or,
        "^" => Xor,
        "<<" => Shl,
        ">>" => Shr,
        "&^" => AndNot,
        "==" => Eq,
        "!=" => Ne,
        "<" => Lt,
        "<=" => Le,
        ">" => Gt,
        ">=" => Ge,
        "&&" => LAnd,
        "||" => LOr,
        _ => return None,
    })
}

impl Parser<'_> {
    fn unexpected(&self, at: usize) -> VarError {
        VarError::UnexpectedToken {
            at,
            rest: self.text.get(at..).unwrap_or("").chars().take(20).collect(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.text.len(), |(a, _)| *a)
    }

    fn next(&mut self) -> Result<Tok, VarError> {
        let t = self
            .toks
            .get(self.pos)
            .map(|(_, t)| t.clone())
            .ok_or(VarError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(t)
    }

    fn is(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn expect(&mut self, op: &'static str) -> Result<(), VarError> {
        if self.is(op) {
            self.pos += 1;
            return Ok(());
        }
        match self.peek() {
            None => Err(VarError::Expected(op)),
            Some(_) => Err(self.unexpected(self.at())),
        }
    }

    fn nest(&mut self) -> Result<(), VarError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(VarError::TooDeep);
        }
        Ok(())
    }

    /// Binary operators binding tighter than `min`.
    fn expr(&mut self, min: u8) -> Result<Expr, VarError> {
        self.nest()?;
        let mut lhs = self.unary()?;
        while let Some(op) = self.peek().and_then(binop) {
            if op.precedence() <= min {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(op.precedence())?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, VarError> {
        let op = match self.peek() {
            Some(Tok::Op("-")) => UnOp::Neg,
            Some(Tok::Op("+")) => UnOp::Plus,
            Some(Tok::Op("!")) => UnOp::Not,
            Some(Tok::Op("^")) => UnOp::Xor,
            Some(Tok::Op("*")) => UnOp::Deref,
            Some(Tok::Op("&")) => UnOp::Addr,
            _ => return self.primary(),
        };
        self.pos += 1;
        self.nest()?;
        let x = self.unary()?;
        self.depth -= 1;
        Ok(Expr::Unary(op, Box::new(x)))
    }

    fn primary(&mut self) -> Result<Expr, VarError> {
        let mut e = self.operand()?;
        loop {
            if self.is(".") {
                self.pos += 1;
                match self.next()? {
                    Tok::Ident(f) => e = Expr::Field(Box::new(e), f),
                    Tok::Op("(") => {
                        let t = self.type_text(")")?;
                        self.expect(")")?;
                        e = Expr::Assert(Box::new(e), t);
                    }
                    _ => return Err(VarError::ExpectedField(e.to_string())),
                }
            } else if self.is("[") {
                self.pos += 1;
                e = self.index(e)?;
            } else if self.is("(") {
                self.pos += 1;
                let mut args = Vec::new();
                while !self.is(")") {
                    args.push(self.expr(0)?);
                    if !self.is(")") {
                        self.expect(",")?;
                    }
                }
                self.pos += 1;
                e = Expr::Call(Box::new(e), args);
            } else {
                return Ok(e);
            }
        }
    }

    /// After `[`: an index or a slice expression.
    fn index(&mut self, e: Expr) -> Result<Expr, VarError> {
        let lo = if self.is(":") {
            None
        } else {
            Some(Box::new(self.expr(0)?))
        };
        if self.is(":") {
            self.pos += 1;
            let hi = if self.is("]") {
                None
            } else {
                Some(Box::new(self.expr(0)?))
            };
            self.expect("]")?;
            return Ok(Expr::Slice(Box::new(e), lo, hi));
        }
        self.expect("]")?;
        let i = lo.ok_or(VarError::Expected("an index"))?;
        Ok(Expr::Index(Box::new(e), i))
    }

    fn operand(&mut self) -> Result<Expr, VarError> {
        let at = self.at();
        Ok(match self.next()? {
            Tok::Ident(n) => Expr::Ident(n),
            Tok::Int(i) => Expr::Int(i),
            Tok::Float(f) => Expr::Float(f),
            Tok::Char(c) => Expr::Char(c),
            // Delve's quoted package path: "net/http".DefaultClient.
            Tok::Str(s)
                if self.is(".")
                    && matches!(self.toks.get(self.pos + 1), Some((_, Tok::Ident(_)))) =>
            {
                self.pos += 1;
                let Ok(Tok::Ident(n)) = self.next() else {
                    return Err(self.unexpected(at));
                };
                Expr::Ident(format!("{}.{n}", String::from_utf8_lossy(&s)))
            }
            Tok::Str(s) => Expr::Str(s),
            Tok::Op("(") => {
                self.nest()?;
                let e = self.expr(0)?;
                self.depth -= 1;
                self.expect(")")?;
                Expr::Paren(Box::new(e))
            }
            Tok::Op("[") => {
                // A type literal as a conversion's callee: []byte(s).
                self.pos -= 1;
                Expr::Type(self.type_text("(")?)
            }
            _ => return Err(self.unexpected(at)),
        })
    }

    /// The text of a type up to (not including) `end` at nesting level 0.
    fn type_text(&mut self, end: &str) -> Result<String, VarError> {
        let from = self.at();
        let mut level = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Op(o) if *o == end && level == 0 => break,
                Tok::Op("(" | "[") => level += 1,
                Tok::Op(")" | "]") => level = level.saturating_sub(1),
                _ => {}
            }
            self.pos += 1;
        }
        let to = self.at();
        let t = self.text.get(from..to).unwrap_or("").trim().to_string();
        if t.is_empty() {
            return Err(VarError::Expected("a type"));
        }
        Ok(t)
    }
}
