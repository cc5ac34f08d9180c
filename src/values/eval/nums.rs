//! Scalars read from the target and written back as computed values, and
//! type lookup by Go name.

use super::super::types::kind;
use super::super::{Scope, Value, VarError};
use super::{computed, Const, Val, MAX_STRING};

impl Scope<'_> {
    /// An integer of kind INT..UINTPTR, sign-extended by its size.
    pub(crate) fn int_of(&self, v: &Value) -> Result<i128, VarError> {
        let size = self.size(v.ty).clamp(1, 8);
        let b = self.read(&v.place, 0, size)?;
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(&b);
        let u = u64::from_le_bytes(w);
        let k = self.kind(v.ty);
        if (kind::INT..=kind::INT64).contains(&k) {
            let shift = 64 - 8 * b.len() as u32;
            return Ok(i128::from(((u << shift) as i64) >> shift));
        }
        Ok(i128::from(u))
    }

    /// `v` as a constant, when it is a scalar (numbers, bools, strings, and
    /// pointer-like words as their address).
    pub(super) fn scalar(&self, v: &Val) -> Result<Const, VarError> {
        let t = match v {
            Val::Const(c) => return Ok(c.clone()),
            Val::Addr { addr, .. } => return Ok(Const::Int(i128::from(*addr))),
            Val::Type(t) => return Err(VarError::IsType(self.type_name(*t))),
            Val::Typed(t) => t,
        };
        let k = self.kind(t.ty);
        Ok(match k {
            kind::BOOL => Const::Bool(self.read(&t.place, 0, 1)?[0] != 0),
            kind::INT..=kind::UINTPTR => Const::Int(self.int_of(t)?),
            kind::FLOAT32 => {
                let b = self.read(&t.place, 0, 4)?;
                Const::Float(f64::from(f32::from_le_bytes(
                    b[..4].try_into().unwrap_or([0; 4]),
                )))
            }
            kind::FLOAT64 => {
                let b = self.read(&t.place, 0, 8)?;
                Const::Float(f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
            }
            kind::STRING => {
                let (b, len) = self.string_bytes(&t.place, MAX_STRING)?;
                if len > MAX_STRING {
                    return Err(VarError::TooLong(len));
                }
                Const::Str(b)
            }
            kind::POINTER
            | kind::UNSAFE_POINTER
            | kind::CHAN
            | kind::MAP
            | kind::FUNC
            | kind::SLICE
            | kind::INTERFACE => Const::Int(i128::from(self.read_u64(&t.place, 0)?)),
            _ => {
                return Err(VarError::BadOperand {
                    op: "a scalar operation",
                    ty: self.type_name(t.ty),
                })
            }
        })
    }

    /// `c` as a value of type `ty` (Go's conversion: integers wrap to the
    /// type's size, floats truncate toward zero into integers).
    pub(super) fn encode(&self, ty: usize, c: &Const) -> Result<Val, VarError> {
        let k = self.kind(ty);
        let size = self.size(ty);
        let bad = || VarError::BadConversion {
            from: const_type(c).into(),
            to: self.type_name(ty),
        };
        match (k, c) {
            (kind::INT..=kind::UINTPTR | kind::POINTER | kind::UNSAFE_POINTER, _) => {
                let n = match c {
                    Const::Int(i) => *i,
                    Const::Float(f) if k < kind::POINTER && f.is_finite() => *f as i128,
                    _ => return Err(bad()),
                };
                let bytes = (n as u128 as u64).to_le_bytes();
                Ok(computed(ty, bytes[..(size.clamp(1, 8) as usize)].to_vec()))
            }
            (kind::FLOAT32 | kind::FLOAT64, Const::Int(_) | Const::Float(_)) => {
                let f = match c {
                    Const::Int(i) => *i as f64,
                    Const::Float(f) => *f,
                    _ => 0.0,
                };
                Ok(computed(
                    ty,
                    match k {
                        kind::FLOAT32 => (f as f32).to_le_bytes().to_vec(),
                        _ => f.to_le_bytes().to_vec(),
                    },
                ))
            }
            (kind::BOOL, Const::Bool(b)) => Ok(computed(ty, vec![u8::from(*b)])),
            (kind::STRING, Const::Str(s)) => Ok(Val::Const(Const::Str(s.clone()))),
            (kind::STRING, Const::Int(r)) => {
                // string(rune): invalid code points become U+FFFD, as in Go.
                let ch = u32::try_from(*r)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                Ok(Val::Const(Const::Str(ch.to_string().into_bytes())))
            }
            _ => Err(bad()),
        }
    }

    /// A type by Go name: as DWARF spells it, with `main.` for unqualified
    /// names, and Go's aliases `byte` and `rune`.
    pub(crate) fn type_by_name(&self, name: &str) -> Option<usize> {
        let name = &without_aliases(name);
        let stars = name.len() - name.trim_start_matches('*').len();
        let base = &name[stars..];
        self.index.type_named(name).or_else(|| {
            let qualified =
                !base.contains('.') && base.chars().next().is_some_and(char::is_alphabetic);
            qualified
                .then(|| {
                    self.index
                        .type_named(&format!("{}main.{base}", &name[..stars]))
                })
                .flatten()
        })
    }
}

/// `name` with Go's aliases `byte` and `rune` spelled as DWARF names their
/// types (`[]byte` is `[]uint8`), where they stand as whole identifiers.
fn without_aliases(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(start) = rest.find(|c: char| c.is_alphanumeric() || c == '_') {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let end = from
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(from.len());
        let word = &from[..end];
        // A package's own `byte` (`pkg.byte`) is not the alias.
        let qualified = out.ends_with('.');
        out.push_str(match word {
            "byte" if !qualified => "uint8",
            "rune" if !qualified => "int32",
            w => w,
        });
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

/// The Go type of an untyped constant.
pub(super) fn const_type(c: &Const) -> &'static str {
    match c {
        Const::Int(_) => "untyped int",
        Const::Float(_) => "untyped float",
        Const::Bool(_) => "untyped bool",
        Const::Str(_) => "string",
        Const::Nil => "nil",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aliases_become_dwarf_names_only_as_whole_identifiers() {
        for (name, want) in [
            ("byte", "uint8"),
            ("[]byte", "[]uint8"),
            ("*[4]rune", "*[4]int32"),
            ("map[string][]byte", "map[string][]uint8"),
            ("main.bytes", "main.bytes"),
            ("pkg.byte", "pkg.byte"),
            ("[]main.Inner", "[]main.Inner"),
        ] {
            assert_eq!(super::without_aliases(name), want, "{name}");
        }
    }
}
