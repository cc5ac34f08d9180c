//! Variables of a stack frame: where DWARF says each lives at the frame's
//! pc ([`locate`]), Go-style formatting of values ([`format`]) and the
//! tiny `print` expression grammar ([`expr`]).
//!
//! Registers are known only for the innermost frame of a goroutine that runs
//! on a thread; a value that needs any other register is reported as
//! unavailable, never guessed.

pub mod abi;
mod chans;
pub mod children;
mod error;
pub mod eval;
pub mod format;
#[cfg(test)]
mod hostile_tests;
pub mod limits;
mod maps;
mod rtype;
pub use rtype::type_name_at;
mod swiss;
pub mod types;

use gimli::{EndianSlice, EvaluationResult, LittleEndian, Location};

pub use error::VarError;

use crate::binary::dwarf_vars::{Type, VarIndex};
use crate::process::{Memory, Regs};

/// Largest value read in one piece (bigger arrays are shown in part).
pub const MAX_VALUE_BYTES: u64 = 1 << 20;
/// Most steps of one location expression.
const MAX_EVAL_STEPS: usize = 256;

/// Where a value's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In target memory at this (run-time) address.
    Mem(u64),
    /// Assembled from registers or constants.
    Bytes(Vec<u8>),
    /// Not recoverable at this pc: the reason.
    Unavailable(VarError),
}

/// A typed value of the target.
#[derive(Debug, Clone)]
pub struct Value {
    /// `.debug_info` offset of its type.
    pub ty: usize,
    pub place: Place,
}

/// What evaluating a frame's variables needs.
pub struct Scope<'a> {
    pub mem: &'a dyn Memory,
    pub index: &'a VarIndex,
    /// Run-time minus link-time addresses.
    pub bias: u64,
    /// Link-time pc used to pick scopes and location list entries.
    pub pc: u64,
    /// The canonical frame address (the caller's SP: goat's `Frame::fp`).
    pub cfa: u64,
    /// Link-time `[runtime.types, runtime.etypes)`: `DW_AT_go_runtime_type`
    /// is an offset from its start, and every `*_type` points inside it.
    pub types: Option<(u64, u64)>,
    /// 0 for the physical function's own variables; N for those of the call
    /// inlined N levels deep at `pc`.
    pub inline_depth: usize,
    /// A caller's link-time return address (`pc` is the call, one before).
    pub ret_pc: Option<u64>,
    /// The selected frame's function (an inlined call's own name), for messages.
    pub function: Option<String>,
    /// The frame's source line (locals declared after it are not shown).
    pub line: Option<u64>,
    /// The thread's registers, for the innermost frame of a running goroutine.
    pub regs: Option<Regs>,
    /// Run-time address of the selected goroutine's `runtime.g`: where
    /// `runtime.curg` is (as in Delve).
    pub curg: Option<u64>,
    /// How much of a value is printed (the session's `config`).
    pub limits: limits::Limits,
    /// What is left of one print's bound on values formatted.
    pub budget: limits::Budget,
}

impl<'a> Scope<'a> {
    /// A scope of no frame (no pc, no registers): values read from memory
    /// through DWARF and, at `types` (run-time bounds of the module's type
    /// section), runtime type descriptors. What the heap's typed walk needs.
    pub fn frameless(
        mem: &'a dyn Memory,
        index: &'a VarIndex,
        bias: u64,
        types: Option<(u64, u64)>,
    ) -> Scope<'a> {
        Scope {
            mem,
            index,
            bias,
            pc: 0,
            cfa: 0,
            types,
            inline_depth: 0,
            ret_pc: None,
            function: None,
            line: None,
            regs: None,
            curg: None,
            limits: limits::Limits::DEFAULT,
            budget: limits::Budget::new(),
        }
    }

    /// Memory and types only, at no pc: what tests of the formatting need.
    #[cfg(test)]
    pub(crate) fn bare(mem: &'a dyn Memory, index: &'a VarIndex) -> Scope<'a> {
        Self::frameless(mem, index, 0, None)
    }
}

impl Scope<'_> {
    pub fn ty(&self, ty: usize) -> Option<&Type> {
        self.index.ty(ty)
    }

    /// Reads `len` bytes of `place` starting at `offset`.
    pub fn read(&self, place: &Place, offset: u64, len: u64) -> Result<Vec<u8>, VarError> {
        let len = len.min(MAX_VALUE_BYTES);
        match place {
            Place::Mem(a) => {
                let mut buf = vec![0u8; len as usize];
                self.mem.read(a.wrapping_add(offset), &mut buf)?;
                Ok(buf)
            }
            Place::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(len as usize);
                b.get(start..end).map(<[u8]>::to_vec).ok_or(VarError::Short)
            }
            Place::Unavailable(why) => Err(why.clone()),
        }
    }

    pub fn read_u64(&self, place: &Place, offset: u64) -> Result<u64, VarError> {
        let b = self.read(place, offset, 8)?;
        Ok(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
    }

    /// Evaluates a location expression of `size` bytes.
    pub fn locate(&self, expr: &[u8], encoding: gimli::Encoding, size: u64) -> Place {
        match self.evaluate(expr, encoding, size) {
            Ok(p) => p,
            Err(why) => Place::Unavailable(why),
        }
    }

    fn evaluate(
        &self,
        expr: &[u8],
        encoding: gimli::Encoding,
        size: u64,
    ) -> Result<Place, VarError> {
        if expr.is_empty() {
            return Err(VarError::OptimizedOut);
        }
        let e = gimli::Expression(EndianSlice::new(expr, LittleEndian));
        let mut eval = e.evaluation(encoding);
        let mut step = eval.evaluate();
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > MAX_EVAL_STEPS {
                return Err(VarError::LocationTooLong);
            }
            let r = step.map_err(VarError::BadLocation)?;
            step = match r {
                EvaluationResult::Complete => break,
                EvaluationResult::RequiresCallFrameCfa => eval.resume_with_call_frame_cfa(self.cfa),
                EvaluationResult::RequiresFrameBase => eval.resume_with_frame_base(self.cfa),
                EvaluationResult::RequiresRelocatedAddress(a) => {
                    eval.resume_with_relocated_address(a.wrapping_add(self.bias))
                }
                EvaluationResult::RequiresMemory { address, size, .. } => {
                    let mut b = [0u8; 8];
                    let n = usize::from(size).min(8);
                    self.mem.read(address, &mut b[..n])?;
                    eval.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(b)))
                }
                EvaluationResult::RequiresRegister { register, .. } => {
                    match self.register(register.0) {
                        Some(v) => eval.resume_with_register(gimli::Value::Generic(v)),
                        None => return Err(VarError::RegisterNotSaved),
                    }
                }
                _ => return Err(VarError::UnsupportedOperation),
            };
        }
        let pieces = eval.result();
        if let [p] = &pieces[..] {
            if let Location::Address { address } = p.location {
                return Ok(Place::Mem(address));
            }
        }
        let mut bytes = Vec::new();
        for p in &pieces {
            let len = p
                .size_in_bits
                .map_or(size.saturating_sub(bytes.len() as u64), |b| b / 8)
                .min(MAX_VALUE_BYTES);
            match p.location {
                Location::Address { address } => {
                    bytes.extend(self.read(&Place::Mem(address), 0, len)?);
                }
                Location::Register { register } => match self.register(register.0) {
                    Some(v) => bytes.extend(v.to_le_bytes().iter().take(len as usize)),
                    None => return Err(VarError::PieceInRegister),
                },
                Location::Value { value } => {
                    let v = value.to_u64(u64::MAX).unwrap_or(0);
                    bytes.extend(v.to_le_bytes().iter().take(len as usize));
                }
                Location::Empty => return Err(VarError::OptimizedOut),
                _ => return Err(VarError::UnsupportedLocation),
            }
        }
        Ok(Place::Bytes(bytes))
    }

    /// A general register by DWARF number, when known.
    fn register(&self, n: u16) -> Option<u64> {
        let r = self.regs.as_ref()?;
        Some(match n {
            0 => r.rax,
            1 => r.rdx,
            2 => r.rcx,
            3 => r.rbx,
            4 => r.rsi,
            5 => r.rdi,
            6 => r.rbp,
            7 => r.rsp,
            8 => r.r8,
            9 => r.r9,
            10 => r.r10,
            11 => r.r11,
            12 => r.r12,
            13 => r.r13,
            14 => r.r14,
            15 => r.r15,
            16 => r.rip,
            _ => return None,
        })
    }

    /// The variables in scope at the frame's pc (params first when `params`).
    pub fn variables(&self, params: bool) -> Result<Vec<(String, Value)>, VarError> {
        self.variables_where(|v| v.param == params)
    }

    /// The arguments a call passed in (parameters that are no result).
    pub fn arguments(&self) -> Result<Vec<(String, Value)>, VarError> {
        self.variables_where(|v| v.param && !v.result)
    }

    /// The function's results (Go marks them `DW_AT_variable_parameter`).
    pub fn results(&self) -> Result<Vec<(String, Value)>, VarError> {
        self.variables_where(|v| v.param && v.result)
    }

    fn variables_where(
        &self,
        want: impl Fn(&crate::binary::dwarf_vars::Var) -> bool,
    ) -> Result<Vec<(String, Value)>, VarError> {
        let f = self
            .index
            .function(self.pc)
            .ok_or(VarError::NoFunction(self.pc))?;
        let mut out = Vec::new();
        let declared = |d: Option<u64>| matches!((d, self.line), (Some(d), Some(l)) if d > l);
        let vars = f
            .vars_at(self.pc, self.inline_depth)
            .ok_or(VarError::NoInlinedCall {
                depth: self.inline_depth,
                pc: self.pc,
            })?;
        let mut shown: Vec<_> = vars
            .iter()
            .filter(|v| want(v) && v.in_scope(self.pc) && (v.param || !declared(v.decl_line)))
            .collect();
        // Delve's order: outer blocks first, then by declaration line (the
        // compiler's DWARF order is neither); stable, as arguments keep
        // theirs.
        shown.sort_by_key(|v| (v.block_depth, v.decl_line.unwrap_or(0)));
        for v in shown {
            let Some(ty) = v.ty else { continue };
            let size = self.ty(ty).and_then(|t| t.size).unwrap_or(8);
            let mut place = match v.location.at(self.pc) {
                Some(expr) => self.locate(expr, f.encoding, size),
                None => Place::Unavailable(VarError::OptimizedOut),
            };
            // In a caller, a value in a register at the call was spilled
            // before it (Go has no callee-saved registers): the entry from
            // the return address on says where, if it is memory.
            let in_register = matches!(&place, Place::Unavailable(w) if w.is_register());
            if let (true, Some(ret)) = (in_register, self.ret_pc) {
                if let Some(expr) = v.location.at(ret) {
                    let after = self.locate(expr, f.encoding, size);
                    if !matches!(after, Place::Unavailable(_)) {
                        place = after;
                    }
                }
            }
            out.push((v.name.clone(), Value { ty, place }));
        }
        Ok(out)
    }

    /// The package variables of the frame's function's package, by name
    /// within it (`counter` for `main.counter`), sorted: a debugger's
    /// "Globals" scope. A variable DWARF gives no type is left out (its
    /// bytes cannot be read as anything).
    pub fn package_variables(&self) -> Vec<(String, Value)> {
        let name = self.function_name();
        let prefix = format!("{}.", package_of(&name));
        let mut out: Vec<(String, Value)> = self
            .index
            .globals()
            .filter_map(|(n, g)| {
                let short = n.strip_prefix(&prefix)?;
                let ty = g.ty?;
                let place = Place::Mem(g.addr.wrapping_add(self.bias));
                Some((short.to_string(), Value { ty, place }))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The name of the function at the frame's pc.
    pub fn function_name(&self) -> String {
        if let Some(f) = &self.function {
            return f.clone();
        }
        self.index
            .function(self.pc)
            .map_or_else(|| "??".to_string(), |f| f.name.clone())
    }
}

/// The package a Go function belongs to, as the runtime's
/// `funcpkgpath` reads it: up to the first dot after the last slash
/// (`net/http.(*conn).serve` → `net/http`, `main.main.func1` → `main`).
pub fn package_of(function: &str) -> &str {
    let from = function.rfind('/').map_or(0, |i| i + 1);
    match function[from..].find('.') {
        Some(dot) => &function[..from + dot],
        None => function,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ReadFault;

    /// 0x100 bytes at 0x1000 holding their offset.
    struct Mem;
    impl Memory for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
            let fault = ReadFault {
                addr,
                len: buf.len(),
            };
            if addr < 0x1000 || addr + buf.len() as u64 > 0x1100 {
                return Err(fault);
            }
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (addr - 0x1000) as u8 + i as u8;
            }
            Ok(())
        }
    }

    const ENC: gimli::Encoding = gimli::Encoding {
        format: gimli::Format::Dwarf32,
        version: 4,
        address_size: 8,
    };

    fn scope<'a>(index: &'a VarIndex, regs: Option<Regs>) -> Scope<'a> {
        Scope {
            mem: &Mem,
            index,
            bias: 0x100,
            pc: 0,
            cfa: 0x1080,
            types: None,
            inline_depth: 0,
            ret_pc: None,
            function: None,
            line: None,
            regs,
            curg: None,
            limits: limits::Limits::DEFAULT,
            budget: limits::Budget::new(),
        }
    }

    #[test]
    fn locations_from_cfa_fbreg_addr_registers_and_pieces() {
        let index = VarIndex::default();
        let s = scope(&index, None);
        assert_eq!(s.locate(&[0x9c], ENC, 8), Place::Mem(0x1080));
        // DW_OP_fbreg -8
        assert_eq!(s.locate(&[0x91, 0x78], ENC, 8), Place::Mem(0x1078));
        // DW_OP_addr 0xf00, relocated by the bias.
        let mut addr = vec![0x03];
        addr.extend(0xf00u64.to_le_bytes());
        assert_eq!(s.locate(&addr, ENC, 8), Place::Mem(0x1000));
        // No registers: a register location is unavailable, never guessed.
        assert!(matches!(s.locate(&[0x50], ENC, 8), Place::Unavailable(_)));
        assert_eq!(
            s.locate(&[], ENC, 8),
            Place::Unavailable(VarError::OptimizedOut)
        );
        // DW_OP_piece 8 with nothing before it: that half is gone.
        assert!(matches!(
            s.locate(&[0x93, 8, 0x91, 0x00, 0x93, 8], ENC, 16),
            Place::Unavailable(_)
        ));

        let regs = Regs {
            rax: 0x1122,
            ..Regs::default()
        };
        let s = scope(&index, Some(regs));
        let mut want = 0x1122u64.to_le_bytes().to_vec();
        assert_eq!(s.locate(&[0x50], ENC, 8), Place::Bytes(want.clone()));
        // DW_OP_reg0 DW_OP_piece 8 DW_OP_fbreg -16 DW_OP_piece 8
        want.extend(0x70..0x78u8);
        assert_eq!(
            s.locate(&[0x50, 0x93, 8, 0x91, 0x70, 0x93, 8], ENC, 16),
            Place::Bytes(want)
        );
        // A read outside memory is an error, not zeros.
        assert!(s.read(&Place::Mem(0x10f8), 0, 16).is_err());
        assert_eq!(
            s.read_u64(&Place::Bytes(vec![1; 8]), 0),
            Ok(0x0101010101010101)
        );
    }

    #[test]
    fn package_of_reads_as_the_runtime_does() {
        assert_eq!(package_of("main.main.func1"), "main");
        assert_eq!(package_of("net/http.(*conn).serve"), "net/http");
        assert_eq!(package_of("example.com/a/b.F"), "example.com/a/b");
        assert_eq!(package_of("nodot"), "nodot");
        assert_eq!(package_of("a/b/"), "a/b/");
    }
}
