//! Arguments of a function call (`call`): each evaluated operand as the
//! bytes of its parameter's type. A string literal, or a value boxed into
//! an `interface{}`, needs memory of the target's own: such bytes are
//! listed as [`NewBlock`]s, which the tracer has the runtime allocate, and
//! the words that point at them as references to be filled in then.

use super::super::types::kind;
use super::super::{Place, Scope, Value};
use super::{Const, Val};
use crate::values::VarError;

/// Why a value cannot be passed as a call's argument.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("{ty} is too large to pass (argument {name})")]
    TooLarge { ty: String, name: String },
    #[error("{ty} is a type, not a value")]
    IsType { ty: String },
    /// `what` names the value's type as Go would (`nil`, `&T (a pointer)`).
    #[error("cannot use {what} as {ty} (argument {name})")]
    Mismatch {
        what: String,
        ty: String,
        name: String,
    },
    #[error("the program has no type {ty} to box {name} as")]
    NoBoxType { ty: String, name: String },
    #[error("{value} overflows {ty} (argument {name})")]
    Overflows {
        value: String,
        ty: String,
        name: String,
    },
    #[error("{value} truncated to {ty} (argument {name})")]
    Truncated {
        value: String,
        ty: String,
        name: String,
    },
    #[error("argument {name}: {got} bytes for a {size}-byte {ty}")]
    Size {
        name: String,
        got: usize,
        size: u64,
        ty: String,
    },
    #[error(
        "cannot pass {name}: it points into a goroutine's stack ({at:#x}), which the \
         function could keep past the frame's life (call -unsafe passes it anyway)"
    )]
    PointsIntoStack { name: String, at: u64 },
    #[error("argument {name}: {what}{source}")]
    Read {
        name: String,
        /// `its itab: ` when the read was of the interface's itab.
        what: &'static str,
        source: VarError,
    },
    #[error(
        "cannot convert {from} to {ty} (argument {name}): goat boxes values only into \
         interface{{}} (a non-empty interface needs the program's itab); pass a {ty} value \
         of the program's"
    )]
    NonEmptyInterface {
        from: String,
        ty: String,
        name: String,
    },
    #[error("{ty} has no runtime type in the program: cannot box it")]
    NoRuntimeType { ty: String },
    #[error("{ty}: bad runtime type address")]
    BadRuntimeType { ty: String },
}

/// `ArgError::Read` for argument `name`.
fn read_failed<'n>(name: &'n str, what: &'static str) -> impl Fn(VarError) -> ArgError + 'n {
    move |source| ArgError::Read {
        name: name.to_string(),
        what,
        source,
    }
}

/// Deepest type nesting looked through for pointers (escape check).
const MAX_DEPTH: usize = 16;
/// Largest argument passed (the runtime's largest call frame).
const MAX_ARG: u64 = 65536;
/// Most array elements looked through for pointers.
const MAX_ELEMS: u64 = 4096;

/// One argument's bytes; `refs` are the offsets of words that are the
/// address of block `n` once placed.
#[derive(Debug, Clone, Default)]
pub struct Arg {
    pub bytes: Vec<u8>,
    pub refs: Vec<(u64, usize)>,
}

/// Bytes to place in the target (see the module docs).
#[derive(Debug, Clone)]
pub struct NewBlock {
    pub bytes: Vec<u8>,
    /// Words that are the address of an earlier block.
    pub refs: Vec<(u64, usize)>,
    /// Run-time address of the runtime type, for a value with pointers
    /// (the collector then scans the block); 0 for plain bytes.
    pub rtype: u64,
}

/// Marshals the arguments of one call.
pub struct Marshal<'s, 'a> {
    scope: &'s Scope<'a>,
    pub blocks: Vec<NewBlock>,
    /// `[lo, hi)` of every goroutine stack: no argument may point into one
    /// (the function could keep the pointer past the frame's life).
    stacks: Vec<(u64, u64)>,
    check_escape: bool,
}

impl<'s, 'a> Marshal<'s, 'a> {
    pub fn new(scope: &'s Scope<'a>, stacks: Vec<(u64, u64)>, check_escape: bool) -> Self {
        Marshal {
            scope,
            blocks: Vec::new(),
            stacks,
            check_escape,
        }
    }

    /// `v` as parameter `name` of type `param`.
    pub fn arg(&mut self, param: usize, name: &str, v: Val) -> Result<Arg, ArgError> {
        let s = self.scope;
        let pk = s.kind(param);
        let size = s.size(param);
        let pname = s.type_name(param);
        // The runtime's largest argument frame bounds any one argument.
        if size > MAX_ARG {
            return Err(ArgError::TooLarge {
                ty: pname,
                name: name.into(),
            });
        }
        let zeros = || Arg {
            bytes: vec![0; size as usize],
            refs: Vec::new(),
        };
        let arg = match v {
            Val::Type(t) => return Err(ArgError::IsType { ty: s.type_name(t) }),
            Val::Const(Const::Nil) => match pk {
                kind::POINTER
                | kind::SLICE
                | kind::MAP
                | kind::CHAN
                | kind::FUNC
                | kind::INTERFACE
                | kind::UNSAFE_POINTER => zeros(),
                _ => {
                    return Err(ArgError::Mismatch {
                        what: "nil".into(),
                        ty: pname,
                        name: name.into(),
                    })
                }
            },
            Val::Const(Const::Str(b)) if pk == kind::STRING => self.string(b),
            Val::Const(c) if pk == kind::INTERFACE => {
                // A constant's default type, as Go gives it in an interface.
                let tname = match c {
                    Const::Int(_) => "int",
                    Const::Float(_) => "float64",
                    Const::Bool(_) => "bool",
                    _ => "string",
                };
                let ty = s.type_by_name(tname).ok_or_else(|| ArgError::NoBoxType {
                    ty: tname.into(),
                    name: name.into(),
                })?;
                let concrete = match c {
                    Const::Str(b) => self.string(b),
                    c => self.constant(ty, &c, name)?,
                };
                self.boxed(param, ty, concrete, name)?
            }
            Val::Const(c) => self.constant(param, &c, name)?,
            Val::Addr { to, addr } => {
                if !matches!(pk, kind::POINTER | kind::UNSAFE_POINTER) {
                    return Err(ArgError::Mismatch {
                        what: format!("&{} (a pointer)", s.type_name(to)),
                        ty: pname,
                        name: name.into(),
                    });
                }
                let want = s.layout(param).and_then(|(_, t)| t.target);
                if pk == kind::POINTER && want.is_some_and(|w| s.type_name(w) != s.type_name(to)) {
                    return Err(ArgError::Mismatch {
                        what: format!("*{}", s.type_name(to)),
                        ty: pname,
                        name: name.into(),
                    });
                }
                Arg {
                    bytes: addr.to_le_bytes().to_vec(),
                    refs: Vec::new(),
                }
            }
            Val::Typed(v) => self.typed(param, v, name)?,
        };
        if arg.bytes.len() as u64 != size {
            return Err(ArgError::Size {
                name: name.into(),
                got: arg.bytes.len(),
                size,
                ty: pname,
            });
        }
        if self.check_escape {
            let refs: Vec<u64> = arg.refs.iter().map(|r| r.0).collect();
            self.escapes(param, &arg.bytes, 0, &refs, 0).map_err(|at| {
                ArgError::PointsIntoStack {
                    name: name.into(),
                    at,
                }
            })?;
        }
        Ok(arg)
    }

    /// A string literal: its bytes in a block of their own.
    fn string(&mut self, b: Vec<u8>) -> Arg {
        let len = b.len() as u64;
        let mut bytes = vec![0u8; 16];
        bytes[8..].copy_from_slice(&len.to_le_bytes());
        if len == 0 {
            return Arg {
                bytes,
                refs: Vec::new(),
            };
        }
        self.blocks.push(NewBlock {
            bytes: b,
            refs: Vec::new(),
            rtype: 0,
        });
        Arg {
            bytes,
            refs: vec![(0, self.blocks.len() - 1)],
        }
    }

    /// An untyped constant as a value of type `ty`, which must hold it.
    fn constant(&mut self, ty: usize, c: &Const, name: &str) -> Result<Arg, ArgError> {
        let s = self.scope;
        let k = s.kind(ty);
        let tname = s.type_name(ty);
        if !matches!(k, kind::BOOL..=kind::COMPLEX128 | kind::STRING) {
            return Err(ArgError::Mismatch {
                what: super::nums::const_type(c).to_string(),
                ty: tname,
                name: name.into(),
            });
        }
        if let (kind::INT..=kind::UINTPTR, Const::Int(i)) = (k, c) {
            let bits = (s.size(ty) * 8).min(64) as u32;
            let signed = k < kind::UINT;
            let (lo, hi) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if !(lo..=hi).contains(i) {
                return Err(ArgError::Overflows {
                    value: i.to_string(),
                    ty: tname,
                    name: name.into(),
                });
            }
        }
        if let (kind::INT..=kind::UINTPTR, Const::Float(f)) = (k, c) {
            if f.fract() != 0.0 {
                return Err(ArgError::Truncated {
                    value: f.to_string(),
                    ty: tname,
                    name: name.into(),
                });
            }
        }
        match s.encode(ty, c).map_err(read_failed(name, ""))? {
            Val::Typed(Value {
                place: Place::Bytes(b),
                ..
            }) => Ok(Arg {
                bytes: b,
                refs: Vec::new(),
            }),
            _ => Err(ArgError::Mismatch {
                what: super::nums::const_type(c).to_string(),
                ty: tname,
                name: name.into(),
            }),
        }
    }

    /// A value of the program's as parameter `param`.
    fn typed(&mut self, param: usize, v: Value, name: &str) -> Result<Arg, ArgError> {
        let s = self.scope;
        let (pk, vk) = (s.kind(param), s.kind(v.ty));
        let (pname, vname) = (s.type_name(param), s.type_name(v.ty));
        let bytes = s
            .read(&v.place, 0, s.size(v.ty))
            .map_err(read_failed(name, ""))?;
        let own = Arg {
            bytes,
            refs: Vec::new(),
        };
        if pk == kind::INTERFACE && vk != kind::INTERFACE {
            return self.boxed(param, v.ty, own, name);
        }
        if pname == vname {
            return Ok(own);
        }
        let from_iface = vk == kind::INTERFACE && s.member(v.ty, "tab").is_some();
        if pk == kind::INTERFACE && s.member(param, "tab").is_none() && from_iface {
            // A non-empty interface to interface{}: the dynamic type is
            // the itab's second word.
            let word = |b: &[u8], at: usize| {
                u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
            };
            let (tab, data) = (word(&own.bytes, 0), word(&own.bytes, 8));
            let typ = match tab {
                0 => 0,
                t => s
                    .read_u64(&Place::Mem(t), 8)
                    .map_err(read_failed(name, "its itab: "))?,
            };
            let mut bytes = typ.to_le_bytes().to_vec();
            bytes.extend(data.to_le_bytes());
            return Ok(Arg {
                bytes,
                refs: Vec::new(),
            });
        }
        // Numbers, booleans and strings of the same kind and size pass as
        // they are (Delve converts as leniently); anything else must be of
        // the very type.
        let scalar = matches!(pk, kind::BOOL..=kind::COMPLEX128 | kind::STRING);
        if scalar && pk == vk && s.size(param) == s.size(v.ty) {
            return Ok(own);
        }
        Err(ArgError::Mismatch {
            what: vname,
            ty: pname,
            name: name.into(),
        })
    }

    /// `concrete` (a value of type `ty`) in an interface parameter.
    fn boxed(
        &mut self,
        param: usize,
        ty: usize,
        concrete: Arg,
        name: &str,
    ) -> Result<Arg, ArgError> {
        let s = self.scope;
        let (pname, tname) = (s.type_name(param), s.type_name(ty));
        if s.member(param, "tab").is_some() {
            return Err(ArgError::NonEmptyInterface {
                from: tname,
                ty: pname,
                name: name.into(),
            });
        }
        // A named type's descriptor is on the type its typedef names.
        let resolved = s.layout(ty).map(|(t, _)| t);
        let rel = s
            .index
            .runtime_type_of(ty)
            .or_else(|| resolved.and_then(|t| s.index.runtime_type_of(t)))
            .ok_or_else(|| ArgError::NoRuntimeType { ty: tname.clone() })?;
        let base = s.types.map_or(0, |(b, _)| b);
        let rtype = base
            .checked_add(rel)
            .and_then(|a| a.checked_add(s.bias))
            .ok_or_else(|| ArgError::BadRuntimeType { ty: tname.clone() })?;
        // Pointer-shaped values are the data word itself (the runtime's
        // descriptor says: size and pointer bytes both 8).
        let at = Place::Mem(rtype);
        let direct = matches!((s.read_u64(&at, 0), s.read_u64(&at, 8)), (Ok(8), Ok(8)));
        let mut bytes = rtype.to_le_bytes().to_vec();
        if direct && concrete.bytes.len() == 8 {
            bytes.extend(&concrete.bytes);
            let refs = concrete.refs.iter().map(|&(o, b)| (o + 8, b)).collect();
            return Ok(Arg { bytes, refs });
        }
        self.blocks.push(NewBlock {
            bytes: concrete.bytes,
            refs: concrete.refs,
            rtype: if s.has_pointers(ty) { rtype } else { 0 },
        });
        bytes.extend([0u8; 8]);
        Ok(Arg {
            bytes,
            refs: vec![(8, self.blocks.len() - 1)],
        })
    }

    /// The first pointer of a value of type `ty` (its bytes at `off`)
    /// into a goroutine stack; words in `skip` are blocks goat places.
    fn escapes(
        &self,
        ty: usize,
        bytes: &[u8],
        off: u64,
        skip: &[u64],
        depth: usize,
    ) -> Result<(), u64> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let s = self.scope;
        let word_at = |o: u64| -> Option<u64> {
            let i = usize::try_from(o).ok()?;
            Some(u64::from_le_bytes(
                bytes.get(i..i.checked_add(8)?)?.try_into().ok()?,
            ))
        };
        let check = |o: u64| -> Result<(), u64> {
            if skip.contains(&o) {
                return Ok(());
            }
            match word_at(o) {
                Some(p) if self.stacks.iter().any(|&(lo, hi)| lo <= p && p < hi) => Err(p),
                _ => Ok(()),
            }
        };
        match s.kind(ty) {
            kind::POINTER
            | kind::UNSAFE_POINTER
            | kind::MAP
            | kind::CHAN
            | kind::FUNC
            | kind::STRING
            | kind::SLICE => check(off),
            kind::INTERFACE => check(off + 8),
            kind::STRUCT => {
                let Some((_, t)) = s.layout(ty) else {
                    return Ok(());
                };
                for m in &t.members {
                    if let Some(mt) = m.ty {
                        self.escapes(mt, bytes, off + m.offset, skip, depth + 1)?;
                    }
                }
                Ok(())
            }
            kind::ARRAY => {
                let Some((_, t)) = s.layout(ty) else {
                    return Ok(());
                };
                let (Some(e), Some(n)) = (t.target, t.count) else {
                    return Ok(());
                };
                let step = s.size(e);
                if step == 0 || !s.has_pointers(e) {
                    return Ok(());
                }
                for i in 0..n.min(MAX_ELEMS) {
                    self.escapes(e, bytes, off + i * step, skip, depth + 1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
