//! The `print` grammar: `[&] *... NAME ( .FIELD | [INDEX] )*`, where NAME is
//! a variable of the frame or a package variable (`main.counter`, or just
//! `counter` for package main).

use super::types::kind;
use super::{Place, Scope, Value, VarError};

/// One parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub address_of: bool,
    pub derefs: usize,
    pub name: String,
    pub path: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(u64),
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_alphabetic() || f == '_' || f == '~')
        && c.all(|x| x.is_alphanumeric() || x == '_')
}

/// Parses `text`; errors say what was expected.
pub fn parse(text: &str) -> Result<Expr, VarError> {
    let mut rest = text.trim();
    let address_of = rest.starts_with('&');
    rest = rest.trim_start_matches('&').trim_start();
    let derefs = rest.len() - rest.trim_start_matches('*').len();
    rest = rest.trim_start_matches('*').trim_start();
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let name = &rest[..end];
    if !is_ident(name) {
        return Err(VarError::ExpectedName(text.to_string()));
    }
    let mut path = Vec::new();
    rest = &rest[end..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if !is_ident(&r[..end]) {
                return Err(VarError::ExpectedField(text.to_string()));
            }
            path.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| VarError::MissingBracket(text.to_string()))?;
            let n = r[..close]
                .trim()
                .parse()
                .map_err(|_| VarError::BadIndex(text.to_string()))?;
            path.push(Step::Index(n));
            rest = &r[close + 1..];
        } else {
            return Err(VarError::Unexpected {
                rest: rest.to_string(),
                text: text.to_string(),
            });
        }
    }
    Ok(Expr {
        address_of,
        derefs,
        name: name.to_string(),
        path,
    })
}

impl Scope<'_> {
    /// A package variable by full name.
    fn global(&self, name: &str) -> Option<Value> {
        let g = self.index.global(name)?;
        Some(Value {
            ty: g.ty?,
            place: Place::Mem(g.addr.wrapping_add(self.bias)),
        })
    }

    /// Evaluates `e`: the value, and its address when it is in memory.
    pub fn eval(&self, e: &Expr) -> Result<Value, VarError> {
        let mut path = &e.path[..];
        let local = self
            .variables(true)
            .into_iter()
            .chain(self.variables(false))
            .flatten()
            .find(|(n, _)| *n == e.name)
            .map(|(_, v)| v);
        let mut v = match local {
            Some(v) => v,
            None => {
                let qualified = match path.first() {
                    Some(Step::Field(f)) => self.global(&format!("{}.{f}", e.name)),
                    _ => None,
                };
                if qualified.is_some() {
                    path = &path[1..];
                }
                qualified
                    .or_else(|| self.global(&e.name))
                    .or_else(|| self.global(&format!("main.{}", e.name)))
                    .ok_or_else(|| VarError::NoVariable {
                        name: e.name.clone(),
                        function: self.function_name(),
                    })?
            }
        };
        if let Place::Unavailable(why) = &v.place {
            if !path.is_empty() || e.derefs > 0 || e.address_of {
                return Err(VarError::VariableUnavailable {
                    name: e.name.clone(),
                    why: Box::new(why.clone()),
                });
            }
        }
        for step in path {
            v = match step {
                Step::Field(f) => self.field(v, f)?,
                Step::Index(i) => self.index_of(v, *i)?,
            };
        }
        for _ in 0..e.derefs {
            v = self.deref(v)?;
        }
        Ok(v)
    }

    fn deref(&self, v: Value) -> Result<Value, VarError> {
        if self.kind(v.ty) != kind::POINTER {
            return Err(VarError::NotPointer(self.type_name(v.ty)));
        }
        let p = self.read_u64(&v.place, 0)?;
        if p == 0 {
            return Err(VarError::NilPointer);
        }
        let to = self.layout(v.ty).and_then(|(_, t)| t.target);
        Ok(Value {
            ty: to.ok_or(VarError::UnknownPointee)?,
            place: Place::Mem(p),
        })
    }

    fn field(&self, v: Value, f: &str) -> Result<Value, VarError> {
        let v = if self.kind(v.ty) == kind::POINTER {
            self.deref(v)?
        } else {
            v
        };
        if self.kind(v.ty) != kind::STRUCT {
            return Err(VarError::NoFields(self.type_name(v.ty)));
        }
        let (off, ty) = self.member(v.ty, f).ok_or_else(|| VarError::NoField {
            field: f.to_string(),
            ty: self.type_name(v.ty),
        })?;
        Ok(Value {
            ty,
            place: super::types::offset(&v.place, off),
        })
    }

    fn index_of(&self, v: Value, i: u64) -> Result<Value, VarError> {
        let k = self.kind(v.ty);
        let (elem, base, len) = match k {
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
        if i >= len {
            return Err(VarError::OutOfRange { index: i, len });
        }
        let es = self.size(elem);
        Ok(Value {
            ty: elem,
            place: super::types::offset(&base, i.saturating_mul(es)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        let e = parse("&**a.b[3].c").unwrap();
        assert!(e.address_of);
        assert_eq!(e.derefs, 2);
        assert_eq!(e.name, "a");
        assert_eq!(
            e.path,
            vec![
                Step::Field("b".into()),
                Step::Index(3),
                Step::Field("c".into())
            ]
        );
        assert_eq!(parse("main.counter").unwrap().path.len(), 1);
        assert!(parse("a[").is_err());
        assert!(parse("a[-1]").is_err());
        assert!(parse("1x").is_err());
        assert!(parse("a..b").is_err());
        assert!(parse("a b").is_err());
    }
}
