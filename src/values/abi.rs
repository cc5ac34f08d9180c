//! Go's register ABI on amd64 (`ABIInternal`, cmd/compile/abi-internal.md):
//! which arguments and results of a function go in which registers, which
//! on the stack, and how large the caller's argument frame is. Computed
//! from the parameters' types alone, so a function compiled with
//! optimizations, whose DWARF does not say where each parameter is at the
//! entry, is called as correctly as one built with `-N -l`.

use super::types::kind;
use super::{Scope, VarError};

/// Integer registers: RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11.
pub const INT_REGS: usize = 9;
/// Floating-point registers: X0–X14.
pub const FLOAT_REGS: usize = 15;
/// Nesting of types followed (structs in structs, arrays of one).
const MAX_DEPTH: usize = 32;
/// Most register pieces one value is split into.
const MAX_PIECES: usize = 64;

/// A part of a value held in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// A floating-point register (else an integer one).
    pub float: bool,
    /// Its index in the ABI's sequence of that class.
    pub reg: usize,
    /// Where the part is in the value's bytes, and how long it is.
    pub offset: u64,
    pub size: u64,
}

/// Where one parameter goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Regs(Vec<Piece>),
    /// At this offset from the stack pointer at the call.
    Stack(u64),
}

/// A function's calling sequence.
#[derive(Debug, Clone)]
pub struct Frame {
    pub args: Vec<Slot>,
    pub results: Vec<Slot>,
    /// Bytes of the caller's frame the call uses: stack arguments and
    /// results, and the spill space of register arguments.
    pub size: u64,
}

struct Assigner<'s, 'a> {
    scope: &'s Scope<'a>,
    ints: usize,
    floats: usize,
    pieces: Vec<Piece>,
}

impl Scope<'_> {
    /// Go's alignment of a type (not in DWARF: from its kind and parts).
    pub fn align(&self, ty: usize) -> u64 {
        self.align_at(ty, 0)
    }

    fn align_at(&self, ty: usize, depth: usize) -> u64 {
        if depth > MAX_DEPTH {
            return 8;
        }
        match self.kind(ty) {
            // Scalars align to their size (complex numbers to a part's).
            kind::BOOL..=kind::FLOAT64 => self.size(ty).clamp(1, 8),
            kind::COMPLEX64 => 4,
            kind::STRUCT => {
                let Some((_, t)) = self.layout(ty) else {
                    return 8;
                };
                t.members
                    .iter()
                    .filter_map(|m| m.ty)
                    .map(|m| self.align_at(m, depth + 1))
                    .max()
                    .unwrap_or(1)
            }
            kind::ARRAY => match self.layout(ty).and_then(|(_, t)| t.target) {
                Some(e) => self.align_at(e, depth + 1),
                None => 8,
            },
            _ => 8,
        }
    }

    /// Whether values of the type hold pointers the collector must see.
    pub fn has_pointers(&self, ty: usize) -> bool {
        self.has_pointers_at(ty, 0)
    }

    fn has_pointers_at(&self, ty: usize, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return true;
        }
        match self.kind(ty) {
            kind::BOOL..=kind::COMPLEX128 => false,
            kind::STRUCT => self.layout(ty).is_none_or(|(_, t)| {
                t.members
                    .iter()
                    .any(|m| m.ty.is_none_or(|m| self.has_pointers_at(m, depth + 1)))
            }),
            kind::ARRAY => match self.layout(ty) {
                Some((_, t)) if t.count == Some(0) => false,
                Some((_, t)) => t.target.is_none_or(|e| self.has_pointers_at(e, depth + 1)),
                None => true,
            },
            _ => true,
        }
    }

    /// The calling sequence of a function taking `args` and returning
    /// `results` (types, in declaration order).
    pub fn abi_frame(&self, args: &[usize], results: &[usize]) -> Result<Frame, VarError> {
        let mut a = Assigner {
            scope: self,
            ints: 0,
            floats: 0,
            pieces: Vec::new(),
        };
        let mut off = 0u64;
        let place = |a: &mut Assigner, ty: usize, off: &mut u64| -> Result<Slot, VarError> {
            let size = self.size(ty);
            if size > 0 && a.try_regs(ty)? {
                return Ok(Slot::Regs(std::mem::take(&mut a.pieces)));
            }
            let at = align_up(*off, self.align(ty))?;
            *off = at.checked_add(size).ok_or(VarError::Short)?;
            Ok(Slot::Stack(at))
        };
        let mut arg_slots = Vec::with_capacity(args.len());
        for &t in args {
            arg_slots.push(place(&mut a, t, &mut off)?);
        }
        off = align_up(off, 8)?;
        a.ints = 0;
        a.floats = 0;
        let mut result_slots = Vec::with_capacity(results.len());
        for &t in results {
            result_slots.push(place(&mut a, t, &mut off)?);
        }
        off = align_up(off, 8)?;
        for (slot, &t) in arg_slots.iter().zip(args) {
            if matches!(slot, Slot::Regs(_)) {
                off = align_up(off, self.align(t))?
                    .checked_add(self.size(t))
                    .ok_or(VarError::Short)?;
            }
        }
        Ok(Frame {
            args: arg_slots,
            results: result_slots,
            size: align_up(off, 8)?,
        })
    }
}

impl Assigner<'_, '_> {
    /// Register-assigns a whole value, or leaves the counters as they were.
    fn try_regs(&mut self, ty: usize) -> Result<bool, VarError> {
        let (ints, floats) = (self.ints, self.floats);
        self.pieces.clear();
        let ok = self.assign(ty, 0, 0)?;
        if !ok {
            self.ints = ints;
            self.floats = floats;
            self.pieces.clear();
        }
        Ok(ok)
    }

    fn int(&mut self, offset: u64, size: u64) -> bool {
        self.piece(false, offset, size)
    }

    fn float(&mut self, offset: u64, size: u64) -> bool {
        self.piece(true, offset, size)
    }

    fn piece(&mut self, float: bool, offset: u64, size: u64) -> bool {
        let (next, max) = if float {
            (&mut self.floats, FLOAT_REGS)
        } else {
            (&mut self.ints, INT_REGS)
        };
        if *next >= max || self.pieces.len() >= MAX_PIECES {
            return false;
        }
        self.pieces.push(Piece {
            float,
            reg: *next,
            offset,
            size,
        });
        *next += 1;
        true
    }

    fn assign(&mut self, ty: usize, offset: u64, depth: usize) -> Result<bool, VarError> {
        if depth > MAX_DEPTH {
            return Err(VarError::UnknownType);
        }
        let s = self.scope;
        let size = s.size(ty);
        Ok(match s.kind(ty) {
            kind::BOOL..=kind::UINTPTR if size <= 8 => self.int(offset, size),
            kind::BOOL..=kind::UINTPTR => self.int(offset, 8) && self.int(offset + 8, size - 8),
            kind::FLOAT32 | kind::FLOAT64 => self.float(offset, size),
            kind::COMPLEX64 => self.float(offset, 4) && self.float(offset + 4, 4),
            kind::COMPLEX128 => self.float(offset, 8) && self.float(offset + 8, 8),
            kind::POINTER | kind::MAP | kind::CHAN | kind::FUNC | kind::UNSAFE_POINTER => {
                self.int(offset, 8)
            }
            kind::STRING | kind::INTERFACE => self.int(offset, 8) && self.int(offset + 8, 8),
            kind::SLICE => {
                self.int(offset, 8) && self.int(offset + 8, 8) && self.int(offset + 16, 8)
            }
            kind::STRUCT => {
                let (_, t) = s.layout(ty).ok_or(VarError::UnknownType)?;
                for m in &t.members {
                    let mty = m.ty.ok_or(VarError::UnknownType)?;
                    let at = offset.checked_add(m.offset).ok_or(VarError::Short)?;
                    if !self.assign(mty, at, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            kind::ARRAY => {
                let (_, t) = s.layout(ty).ok_or(VarError::UnknownType)?;
                match (t.count, t.target) {
                    (Some(0), _) => true,
                    (Some(1), Some(e)) => self.assign(e, offset, depth + 1)?,
                    _ => false,
                }
            }
            _ => return Err(VarError::UnknownType),
        })
    }
}

fn align_up(n: u64, align: u64) -> Result<u64, VarError> {
    let a = align.max(1);
    n.checked_add(a - 1)
        .map(|x| x / a * a)
        .ok_or(VarError::Short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::dwarf_vars::VarIndex;
    use crate::process::{Memory, ReadFault};

    /// No memory: the ABI needs types only.
    struct NoMemory;
    impl Memory for NoMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
            Err(ReadFault {
                addr,
                len: buf.len(),
            })
        }
    }

    fn frame_of(index: &VarIndex, name: &str) -> Frame {
        let s = Scope::bare(&NoMemory, index);
        let f = index.function_named(name).expect(name);
        let types = |ret: bool| -> Vec<usize> {
            f.vars
                .iter()
                .filter(|v| v.param && v.result == ret)
                .map(|v| v.ty.expect("typed"))
                .collect()
        };
        s.abi_frame(&types(false), &types(true)).expect("frame")
    }

    fn ints(regs: &[usize]) -> Slot {
        Slot::Regs(
            regs.iter()
                .enumerate()
                .map(|(i, &reg)| Piece {
                    float: false,
                    reg,
                    offset: 8 * i as u64,
                    size: 8,
                })
                .collect(),
        )
    }

    /// The callee fixture's functions, laid out as the compiler does
    /// (the fixture calls them itself, and tests/call.rs calls them).
    #[test]
    fn lays_out_the_callee_fixtures_functions() {
        for flavour in ["go1.19-exe", "go1.27-noopt"] {
            let path = format!(
                "{}/tests/fixtures/bin/{flavour}/callee",
                env!("CARGO_MANIFEST_DIR")
            );
            if !crate::require::require_fixture(std::path::Path::new(&path)) {
                continue;
            }
            let elf = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let index = VarIndex::load(&elf).unwrap();
            // (string, []byte, Pair, any): ten words, nine registers; the
            // interface goes on the stack.
            let f = frame_of(&index, "main.summarize");
            assert_eq!(
                f.args,
                [
                    ints(&[0, 1]),
                    ints(&[2, 3, 4]),
                    ints(&[5, 6, 7]),
                    Slot::Stack(0)
                ],
                "{flavour}"
            );
            let float = Piece {
                float: true,
                reg: 0,
                offset: 0,
                size: 8,
            };
            assert_eq!(
                f.results,
                [ints(&[0, 1]), ints(&[2]), Slot::Regs(vec![float])],
                "{flavour}"
            );
            // The stack interface (16), then spill space for 2+3+3 words.
            assert_eq!(f.size, 16 + 64, "{flavour}");
            // (int, string) -> (Pair, [2]int, float32): an array of two
            // is never in registers.
            let f = frame_of(&index, "main.triple");
            assert_eq!(f.args, [ints(&[0]), ints(&[1, 2])], "{flavour}");
            assert_eq!(f.results[0], ints(&[0, 1, 2]), "{flavour}");
            assert_eq!(f.results[1], Slot::Stack(0), "{flavour}");
            assert_eq!(f.size, 16 + 24, "{flavour}");
        }
    }
}
