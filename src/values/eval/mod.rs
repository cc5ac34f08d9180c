//! Go expressions over a frame, as Delve evaluates them (pkg/proc/eval.go):
//! [`parse`] builds an [`ast::Expr`]; [`Scope::evaluate`] computes a
//! [`Val`]. Evaluation only reads the target: results that are not in
//! target memory (arithmetic, `len`, conversions) are [`Val::Const`] or a
//! [`Value`] whose place is [`Place::Bytes`].

pub mod ast;
pub mod callargs;
mod calls;
mod fields;
mod index;
mod keys;
mod lex;
mod names;
mod nums;
mod ops;
mod parse;
mod show;
mod walk;

#[cfg(test)]
mod tests;

pub use parse::parse;
pub use show::Verb;

use super::{Place, Scope, Value, VarError};

/// Most entries of a map searched for a key.
const MAX_MAP_SEARCH: usize = 1 << 16;
/// Most bytes of a string read to compare or concatenate it.
const MAX_STRING: u64 = 1 << 20;

/// An untyped constant, or a computed string or comparison result.
#[derive(Debug, Clone, PartialEq)]
pub enum Const {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(Vec<u8>),
    Nil,
}

/// What an expression evaluates to.
#[derive(Debug, Clone)]
pub enum Val {
    /// A value of a DWARF type (in memory, registers or computed bytes).
    Typed(Value),
    Const(Const),
    /// `&x`: the address of a value of type `to` (DWARF may have no `*T`).
    Addr {
        to: usize,
        addr: u64,
    },
    /// A type name used as an operand (`T(x)`, `whatis T`).
    Type(usize),
}

impl Scope<'_> {
    /// Parses and evaluates `text`.
    pub fn eval_text(&self, text: &str) -> Result<Val, VarError> {
        let e = parse(text)?;
        self.eval(&e)
    }

    /// The Go type of `v`, as `whatis` prints it.
    pub fn val_type(&self, v: &Val) -> String {
        match v {
            Val::Typed(v) => self.type_name(v.ty),
            Val::Type(t) => self.type_name(*t),
            Val::Addr { to, .. } => format!("*{}", self.type_name(*to)),
            Val::Const(c) => match c {
                Const::Int(_) => "untyped int",
                Const::Float(_) => "untyped float",
                Const::Bool(_) => "untyped bool",
                Const::Str(_) => "string",
                Const::Nil => "nil",
            }
            .to_string(),
        }
    }

    /// The address `v` stands for, for `x`: a number, `&v`, a pointer, or
    /// where a slice's or string's bytes are.
    pub fn address_of(&self, v: &Val) -> Result<u64, VarError> {
        use super::types::kind;
        match v {
            Val::Addr { addr, .. } => Ok(*addr),
            Val::Const(Const::Int(i)) => {
                u64::try_from(*i).map_err(|_| VarError::NotRepresentable {
                    value: i.to_string(),
                    ty: "an address".into(),
                })
            }
            Val::Typed(t) => match self.kind(t.ty) {
                kind::POINTER | kind::UNSAFE_POINTER | kind::SLICE | kind::STRING => {
                    self.read_u64(&t.place, 0)
                }
                kind::INT..=kind::UINTPTR => {
                    let n = self.int_of(t)?;
                    u64::try_from(n).map_err(|_| VarError::NotRepresentable {
                        value: n.to_string(),
                        ty: "an address".into(),
                    })
                }
                _ => Err(VarError::NotPointer(self.type_name(t.ty))),
            },
            _ => Err(VarError::NotPointer(self.val_type(v))),
        }
    }
}

/// Names `e` in an error that does not name a sub-expression yet.
fn at(e: &ast::Expr, why: VarError) -> VarError {
    match why {
        VarError::At { .. }
        | VarError::VariableUnavailable { .. }
        | VarError::NoVariable { .. } => why,
        // Kept as they always read (and as tests and users know them).
        VarError::OutOfRange { .. } | VarError::NoField { .. } => why,
        why => VarError::At {
            expr: e.to_string(),
            why: Box::new(why),
        },
    }
}

/// A computed value of type `ty` held in `bytes`.
fn computed(ty: usize, bytes: Vec<u8>) -> Val {
    Val::Typed(Value {
        ty,
        place: Place::Bytes(bytes),
    })
}
