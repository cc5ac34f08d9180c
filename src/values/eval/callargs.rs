//! Arguments of a function call (`call`): each evaluated operand as the
//! bytes of its parameter's type. A string literal, or a value boxed into
//! an `interface{}`, needs memory of the target's own: such bytes are
//! listed as [`NewBlock`]s, which the tracer has the runtime allocate, and
//! the words that point at them as references to be filled in then.

use super::super::types::kind;
use super::super::{Place, Scope, Value};
use super::{Const, Val};

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
    pub fn arg(&mut self, param: usize, name: &str, v: Val) -> Result<Arg, String> {
        let s = self.scope;
        let pk = s.kind(param);
        let size = s.size(param);
        let pname = s.type_name(param);
        // The runtime's largest argument frame bounds any one argument.
        if size > MAX_ARG {
            return Err(format!("{pname} is too large to pass (argument {name})"));
        }
        let zeros = || Arg {
            bytes: vec![0; size as usize],
            refs: Vec::new(),
        };
        let arg = match v {
            Val::Type(t) => return Err(format!("{} is a type, not a value", s.type_name(t))),
            Val::Const(Const::Nil) => match pk {
                kind::POINTER
                | kind::SLICE
                | kind::MAP
                | kind::CHAN
                | kind::FUNC
                | kind::INTERFACE
                | kind::UNSAFE_POINTER => zeros(),
                _ => return Err(format!("cannot use nil as {pname} (argument {name})")),
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
                let ty = s
                    .type_by_name(tname)
                    .ok_or_else(|| format!("the program has no type {tname} to box {name} as"))?;
                let concrete = match c {
                    Const::Str(b) => self.string(b),
                    c => self.constant(ty, &c, name)?,
                };
                self.boxed(param, ty, concrete, name)?
            }
            Val::Const(c) => self.constant(param, &c, name)?,
            Val::Addr { to, addr } => {
                if !matches!(pk, kind::POINTER | kind::UNSAFE_POINTER) {
                    return Err(format!(
                        "cannot use &{} (a pointer) as {pname} (argument {name})",
                        s.type_name(to)
                    ));
                }
                let want = s.layout(param).and_then(|(_, t)| t.target);
                if pk == kind::POINTER && want.is_some_and(|w| s.type_name(w) != s.type_name(to)) {
                    return Err(format!(
                        "cannot use *{} as {pname} (argument {name})",
                        s.type_name(to)
                    ));
                }
                Arg {
                    bytes: addr.to_le_bytes().to_vec(),
                    refs: Vec::new(),
                }
            }
            Val::Typed(v) => self.typed(param, v, name)?,
        };
        if arg.bytes.len() as u64 != size {
            return Err(format!(
                "argument {name}: {} bytes for a {size}-byte {pname}",
                arg.bytes.len()
            ));
        }
        if self.check_escape {
            let refs: Vec<u64> = arg.refs.iter().map(|r| r.0).collect();
            self.escapes(param, &arg.bytes, 0, &refs, 0).map_err(|at| {
                format!(
                    "cannot pass {name}: it points into a goroutine's stack ({at:#x}), \
                         which the function could keep past the frame's life \
                         (call -unsafe passes it anyway)"
                )
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
    fn constant(&mut self, ty: usize, c: &Const, name: &str) -> Result<Arg, String> {
        let s = self.scope;
        let k = s.kind(ty);
        let tname = s.type_name(ty);
        if !matches!(k, kind::BOOL..=kind::COMPLEX128 | kind::STRING) {
            return Err(format!(
                "cannot use {} as {tname} (argument {name})",
                super::nums::const_type(c)
            ));
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
                return Err(format!("{i} overflows {tname} (argument {name})"));
            }
        }
        if let (kind::INT..=kind::UINTPTR, Const::Float(f)) = (k, c) {
            if f.fract() != 0.0 {
                return Err(format!("{f} truncated to {tname} (argument {name})"));
            }
        }
        match s
            .encode(ty, c)
            .map_err(|e| format!("argument {name}: {e}"))?
        {
            Val::Typed(Value {
                place: Place::Bytes(b),
                ..
            }) => Ok(Arg {
                bytes: b,
                refs: Vec::new(),
            }),
            _ => Err(format!(
                "cannot use {} as {tname} (argument {name})",
                super::nums::const_type(c)
            )),
        }
    }

    /// A value of the program's as parameter `param`.
    fn typed(&mut self, param: usize, v: Value, name: &str) -> Result<Arg, String> {
        let s = self.scope;
        let (pk, vk) = (s.kind(param), s.kind(v.ty));
        let (pname, vname) = (s.type_name(param), s.type_name(v.ty));
        let bytes = s
            .read(&v.place, 0, s.size(v.ty))
            .map_err(|e| format!("argument {name}: {e}"))?;
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
                    .map_err(|e| format!("argument {name}: its itab: {e}"))?,
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
        Err(format!("cannot use {vname} as {pname} (argument {name})"))
    }

    /// `concrete` (a value of type `ty`) in an interface parameter.
    fn boxed(&mut self, param: usize, ty: usize, concrete: Arg, name: &str) -> Result<Arg, String> {
        let s = self.scope;
        let (pname, tname) = (s.type_name(param), s.type_name(ty));
        if s.member(param, "tab").is_some() {
            return Err(format!(
                "cannot convert {tname} to {pname} (argument {name}): goat boxes values only \
                 into interface{{}} (a non-empty interface needs the program's itab); pass a \
                 {pname} value of the program's"
            ));
        }
        // A named type's descriptor is on the type its typedef names.
        let resolved = s.layout(ty).map(|(t, _)| t);
        let rel = s
            .index
            .runtime_type_of(ty)
            .or_else(|| resolved.and_then(|t| s.index.runtime_type_of(t)))
            .ok_or_else(|| format!("{tname} has no runtime type in the program: cannot box it"))?;
        let base = s.types.map_or(0, |(b, _)| b);
        let rtype = base
            .checked_add(rel)
            .and_then(|a| a.checked_add(s.bias))
            .ok_or_else(|| format!("{tname}: bad runtime type address"))?;
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
