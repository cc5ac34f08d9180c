//! `stepout`, showing what the function returned as Delve does (`Values
//! returned:`). The results are read at the function's own RET, in its
//! frame, where DWARF says where they are (registers in optimized code,
//! the frame with `-N -l`); after the return that frame is gone. So the
//! step first runs to any RET of the frame (or straight to the caller, if
//! the function leaves another way: a panic, a `runtime.Goexit`), reads
//! them there, then goes on to the caller.

use std::io::Write;

use anyhow::{anyhow, Result};
use iced_x86::{Decoder, DecoderOptions, Mnemonic};

use crate::binary::Func;
use crate::process::Regs;
use crate::repl::exec::{finish_stop, run_to_stop};
use crate::session::Session;
use crate::session::StepKind;
use crate::tracer::{FrameCond, TempAction, TempBreakpoint};
use crate::values::types::kind;
use crate::values::{Place, Scope, Value};

/// Most bytes of one function decoded when looking for its RETs.
const MAX_CODE_BYTES: u64 = 1 << 20;

impl Session<'_> {
    /// A stop at each RET of the selected goroutine's innermost frame, in
    /// that frame; none when that frame is an inlined call (it has no RET).
    fn ret_temps(&self) -> Result<Vec<TempBreakpoint>> {
        let g = self.current_g()?;
        let Some(top) = g.frames.first().filter(|f| !f.inlined) else {
            return Ok(Vec::new());
        };
        let tab = self.prog.binary().pclntab()?;
        let link = top.pc.wrapping_sub(self.bias);
        let f = tab
            .find_func(link)
            .ok_or_else(|| anyhow!("pc {:#x} is in no Go function", top.pc))?;
        let mut out = Vec::new();
        for pc in self.ret_pcs(&f)? {
            let Ok(sp_delta) = f.sp_delta(pc) else {
                continue;
            };
            out.push(TempBreakpoint {
                addr: pc + self.bias,
                g: g.gp,
                frame: Some(FrameCond {
                    cfa: top.fp,
                    sp_delta: i64::from(sp_delta),
                }),
                action: TempAction::Stop,
            });
        }
        Ok(out)
    }

    /// Link-time addresses of `f`'s RET instructions.
    pub(in crate::repl) fn ret_pcs(&self, f: &Func<'_>) -> Result<Vec<u64>> {
        let (entry, end) = (f.entry(), f.end()?);
        let len = end.saturating_sub(entry).min(MAX_CODE_BYTES);
        let Some(code) = self.prog.binary().read_static(entry, len as usize) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            if insn.mnemonic() == Mnemonic::Ret {
                out.push(insn.ip());
            }
        }
        Ok(out)
    }

    /// `NAME = VALUE` of each result of the function stopped at its RET.
    /// Where optimized code's DWARF has no location for a result, the
    /// register Go's internal ABI returns it in holds it at the RET.
    pub(in crate::repl) fn return_values(&self) -> Vec<(String, String)> {
        let Ok(scope) = self.scope() else {
            return Vec::new();
        };
        let Ok(mut vars) = scope.results() else {
            return Vec::new();
        };
        if let Some(regs) = scope.regs {
            from_abi_registers(&scope, &regs, &mut vars);
        }
        vars.iter()
            .map(|(name, v)| (name.clone(), scope.format(v)))
            .collect()
    }
}

/// The integer registers of Go's internal ABI (1.17+, every release goat
/// supports), in assignment order.
fn int_registers(r: &Regs) -> [u64; 9] {
    [r.rax, r.rbx, r.rcx, r.rdi, r.rsi, r.r8, r.r9, r.r10, r.r11]
}

/// Registers a result of type `ty` takes, for the kinds whose assignment
/// is plain (integers, pointers, strings, slices, interfaces); `None` for
/// the others (floats, structs, arrays), whose rules goat does not follow.
fn words_of(scope: &Scope<'_>, ty: usize) -> Option<usize> {
    let k = scope.kind(ty);
    match k {
        kind::BOOL..=kind::UINTPTR
        | kind::CHAN
        | kind::FUNC
        | kind::MAP
        | kind::POINTER
        | kind::UNSAFE_POINTER => (scope.size(ty) <= 8).then_some(1),
        kind::STRING | kind::INTERFACE => Some(2),
        kind::SLICE => Some(3),
        _ => None,
    }
}

/// Fills the results DWARF left without a place from the ABI registers,
/// when every result is of a kind [`words_of`] knows and all fit (then
/// each is in the registers that follow the previous one's).
fn from_abi_registers(scope: &Scope<'_>, regs: &Regs, vars: &mut [(String, Value)]) {
    let mut words = Vec::with_capacity(vars.len());
    for (_, v) in vars.iter() {
        match words_of(scope, v.ty) {
            Some(n) => words.push(n),
            None => return,
        }
    }
    let ints = int_registers(regs);
    if words.iter().sum::<usize>() > ints.len() {
        return;
    }
    let mut next = 0;
    for ((_, v), n) in vars.iter_mut().zip(words) {
        let taken = &ints[next..next + n];
        next += n;
        if !matches!(v.place, Place::Unavailable(_)) {
            continue;
        }
        let mut bytes: Vec<u8> = taken.iter().flat_map(|w| w.to_le_bytes()).collect();
        // A scalar narrower than its register is its low bytes.
        let size = usize::try_from(scope.size(v.ty)).unwrap_or(0);
        if n == 1 && size < bytes.len() {
            bytes.truncate(size);
        }
        v.place = Place::Bytes(bytes);
    }
}

/// `stepout`: to the caller, with the returned values.
pub(in crate::repl) fn stepout(s: &mut Session, out: &mut dyn Write) -> Result<()> {
    let rets = s.ret_temps()?;
    let mut temps = s.step_plan(StepKind::Out)?;
    if rets.is_empty() {
        run_to_stop(s, temps, &[], out)?;
        return finish_stop(s, out);
    }
    let silent: Vec<u64> = rets.iter().map(|t| t.addr).collect();
    temps.extend(rets);
    if run_to_stop(s, temps, &silent, out)?.is_none() {
        // Stopped elsewhere (shown): a breakpoint, Ctrl-C, the caller.
        return finish_stop(s, out);
    }
    let values = s.return_values();
    let temps = s.step_plan(StepKind::Out)?;
    run_to_stop(s, temps, &[], out)?;
    if !values.is_empty() && !s.is_done() {
        writeln!(out, "Values returned:")?;
        for (name, v) in values {
            writeln!(out, "\t{name}: {v}")?;
        }
        writeln!(out)?;
    }
    finish_stop(s, out)
}
