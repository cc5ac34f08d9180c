//! Printing a [`Val`]: Go syntax as `format` prints target values, or with
//! a Delve format prefix (`print %x n`).

use super::super::types::kind;
use super::super::{format::quote, Place, Scope, Value, VarError};
use super::{Const, Val};

/// A `print %VERB` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Hex,
    UpperHex,
    Octal,
    Binary,
    Decimal,
    Str,
    Value,
    Quote,
}

impl Verb {
    pub fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "%x" => Verb::Hex,
            "%X" => Verb::UpperHex,
            "%o" => Verb::Octal,
            "%b" => Verb::Binary,
            "%d" => Verb::Decimal,
            "%s" => Verb::Str,
            "%v" => Verb::Value,
            "%q" => Verb::Quote,
            _ => return None,
        })
    }
}

/// Go's `%v` of a float64 (shortest representation; exponent past 1e21).
fn float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4) {
        let s = format!("{f:e}");
        // Rust: 1e21, Go: 1e+21.
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        };
    }
    f.to_string()
}

fn int_with(n: i128, verb: Verb) -> String {
    let (sign, m) = if n < 0 {
        ("-", n.unsigned_abs())
    } else {
        ("", n.unsigned_abs())
    };
    match verb {
        Verb::Hex => format!("{sign}{m:x}"),
        Verb::UpperHex => format!("{sign}{m:X}"),
        Verb::Octal => format!("{sign}{m:o}"),
        Verb::Binary => format!("{sign}{m:b}"),
        Verb::Quote => match u32::try_from(n).ok().and_then(char::from_u32) {
            Some(c) => format!("'{c}'"),
            None => n.to_string(),
        },
        _ => n.to_string(),
    }
}

impl Scope<'_> {
    /// `v` as `print` shows it.
    pub fn show(&self, v: &Val, verb: Option<Verb>) -> Result<String, VarError> {
        match v {
            Val::Type(t) => Err(VarError::IsType(self.type_name(*t))),
            Val::Addr { to, addr } => Ok(format!("(*{})({addr:#x})", self.type_name(*to))),
            Val::Const(c) => Ok(show_const(c, verb)),
            Val::Typed(t) => Ok(match verb {
                Some(verb) => self.typed_with(t, verb),
                None => self.format(t),
            }),
        }
    }

    /// Integers (also those inside slices and arrays) in the verb's base;
    /// strings as `%s`/`%x`; anything else as without a verb.
    fn typed_with(&self, t: &Value, verb: Verb) -> String {
        let k = self.kind(t.ty);
        let scalar = || self.scalar(&Val::Typed(t.clone()));
        match k {
            kind::INT..=kind::UINTPTR => match self.int_of(t) {
                Ok(n) => int_with(n, verb),
                Err(_) => self.format(t),
            },
            kind::STRING => match scalar() {
                Ok(c) => show_const(&c, Some(verb)),
                Err(_) => self.format(t),
            },
            kind::SLICE | kind::ARRAY if !matches!(verb, Verb::Value | Verb::Decimal) => {
                let Ok((elem, base, len, _)) = self.sequence(t) else {
                    return self.format(t);
                };
                if !(kind::INT..=kind::UINTPTR).contains(&self.kind(elem)) {
                    return self.format(t);
                }
                let es = self.size(elem);
                let shown = len.min(self.lim().array_values);
                let items: Vec<String> = (0..shown)
                    .map(|i| {
                        let e = Value {
                            ty: elem,
                            place: super::super::types::offset(&base, i * es),
                        };
                        self.int_of(&e)
                            .map_or_else(|_| "?".into(), |n| int_with(n, verb))
                    })
                    .collect();
                let more = if len > shown {
                    format!(",...+{} more", len - shown)
                } else {
                    String::new()
                };
                let head = match (k, &base) {
                    (kind::SLICE, Place::Mem(0)) => return self.format(t),
                    (kind::SLICE, _) => {
                        let cap = self.sequence(t).map_or(0, |s| s.3);
                        format!("{} len: {len}, cap: {cap}, ", self.type_name(t.ty))
                    }
                    _ => format!("{} ", self.type_name(t.ty)),
                };
                format!("{head}[{}{more}]", items.join(","))
            }
            _ => self.format(t),
        }
    }
}

fn show_const(c: &Const, verb: Option<Verb>) -> String {
    match (c, verb) {
        (Const::Int(n), Some(v)) => int_with(*n, v),
        (Const::Int(n), None) => n.to_string(),
        (Const::Float(f), _) => float(*f),
        (Const::Bool(b), _) => b.to_string(),
        (Const::Nil, _) => "nil".into(),
        (Const::Str(s), Some(Verb::Str)) => String::from_utf8_lossy(s).into_owned(),
        (Const::Str(s), Some(Verb::Hex)) => s.iter().map(|b| format!("{b:02x}")).collect(),
        (Const::Str(s), Some(Verb::UpperHex)) => s.iter().map(|b| format!("{b:02X}")).collect(),
        (Const::Str(s), _) => quote(s),
    }
}
