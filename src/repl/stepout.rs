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

use super::exec::{finish_stop, run_to_stop};
use super::locate::StepKind;
use super::state::Session;
use crate::tracer::{FrameCond, TempAction, TempBreakpoint};

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
        let (entry, end) = (f.entry(), f.end()?);
        let len = end.saturating_sub(entry).min(MAX_CODE_BYTES);
        let Some(code) = self.prog.binary().read_static(entry, len as usize) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut dec = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            if insn.mnemonic() != Mnemonic::Ret {
                continue;
            }
            let Ok(sp_delta) = f.sp_delta(insn.ip()) else {
                continue;
            };
            out.push(TempBreakpoint {
                addr: insn.ip() + self.bias,
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

    /// `NAME = VALUE` of each result of the function stopped at its RET.
    fn return_values(&self) -> Vec<(String, String)> {
        let Ok(scope) = self.scope() else {
            return Vec::new();
        };
        match scope.results() {
            Ok(vars) => vars
                .iter()
                .map(|(name, v)| (name.clone(), scope.format(v)))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// `stepout`: to the caller, with the returned values.
pub(super) fn stepout(s: &mut Session, out: &mut dyn Write) -> Result<()> {
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
