//! The syntax tree of an expression. `Display` prints it back as Go, so an
//! error can name the sub-expression that failed.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
    Xor,
    Deref,
    Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    AndNot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LAnd,
    LOr,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Rem => "%",
            And => "&",
            Or => "|",
            Xor => "^",
            Shl => "<<",
            Shr => ">>",
            AndNot => "&^",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            LAnd => "&&",
            LOr => "||",
        }
    }

    /// Go's precedence (5 binds tightest).
    pub fn precedence(self) -> u8 {
        use BinOp::*;
        match self {
            Mul | Div | Rem | Shl | Shr | And | AndNot => 5,
            Add | Sub | Or | Xor => 4,
            Eq | Ne | Lt | Le | Gt | Ge => 3,
            LAnd => 2,
            LOr => 1,
        }
    }

    pub fn is_comparison(self) -> bool {
        use BinOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A name; package-qualified names (`main.x`, `"net/http".x`) are
    /// resolved at evaluation, when it is known what is a variable.
    Ident(String),
    Int(i128),
    Float(f64),
    /// A rune literal.
    Char(i128),
    Str(Vec<u8>),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    /// `x.(T)`, T as written.
    Assert(Box<Expr>, String),
    /// `f(args)`: `len`, `cap` or a conversion.
    Call(Box<Expr>, Vec<Expr>),
    /// A type that is not an expression (`[]T`, `map[K]V`), as written.
    Type(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Paren(Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Ident(n) => write!(f, "{n}"),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Float(x) => write!(f, "{x:?}"),
            Expr::Char(c) => match u32::try_from(*c).ok().and_then(char::from_u32) {
                Some(c) => write!(f, "{c:?}"),
                None => write!(f, "{c}"),
            },
            Expr::Str(s) => write!(f, "{}", crate::values::format::quote(s)),
            Expr::Field(x, n) => write!(f, "{x}.{n}"),
            Expr::Index(x, i) => write!(f, "{x}[{i}]"),
            Expr::Slice(x, lo, hi) => {
                write!(f, "{x}[")?;
                if let Some(lo) = lo {
                    write!(f, "{lo}")?;
                }
                write!(f, ":")?;
                if let Some(hi) = hi {
                    write!(f, "{hi}")?;
                }
                write!(f, "]")
            }
            Expr::Assert(x, t) => write!(f, "{x}.({t})"),
            Expr::Call(x, args) => {
                write!(f, "{x}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
            Expr::Type(t) => write!(f, "{t}"),
            Expr::Unary(op, x) => {
                let s = match op {
                    UnOp::Neg => "-",
                    UnOp::Plus => "+",
                    UnOp::Not => "!",
                    UnOp::Xor => "^",
                    UnOp::Deref => "*",
                    UnOp::Addr => "&",
                };
                write!(f, "{s}{x}")
            }
            Expr::Binary(op, a, b) => write!(f, "{a} {} {b}", op.symbol()),
            Expr::Paren(x) => write!(f, "({x})"),
        }
    }
}
