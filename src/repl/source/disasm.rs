//! disassemble: the machine code of a function, read from the target (so a
//! core shows what was mapped, and a live process what it runs), in Intel
//! syntax with call and jump targets named (decoded by the engine,
//! `session/code.rs`; laid out here).

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::session::Session;

/// Longer code than this is not disassembled in one go (a function is
/// rarely over a few KiB; `-a` ranges are capped too).
const MAX_BYTES: u64 = crate::session::MAX_CODE;

/// `disassemble [-a START END | FUNC]`
pub fn disassemble(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let bias = s.bias;
    let tab = s.prog.binary().pclntab()?;
    // Run-time [start, end) and the pc to mark.
    let (start, end, mark) = match args {
        [] => {
            let f = s.current_frame()?;
            // Only inlined calls stand before the innermost physical frame.
            let innermost = s.current_g()?.frames[..s.frame].iter().all(|x| x.inlined);
            let link = f.pc.wrapping_sub(bias);
            // A caller's pc is a return address: mark the call before it.
            let inside = if innermost {
                link
            } else {
                link.wrapping_sub(1)
            };
            let (lo, hi) = tab
                .func_bounds(inside)
                .ok_or_else(|| anyhow!("pc {:#x} is in no Go function", f.pc))?;
            (lo + bias, hi + bias, Some(inside + bias))
        }
        ["-a", lo, hi] => (parse_addr(lo)?, parse_addr(hi)?, None),
        [name] => {
            let f = tab
                .func_by_name(name)
                .or_else(|| tab.func_by_name(&format!("main.{name}")))
                .ok_or_else(|| anyhow!("disassemble: no function {name:?}"))?;
            let (lo, hi) = tab
                .func_bounds(f.entry())
                .ok_or_else(|| anyhow!("disassemble: {name} has no code range"))?;
            (lo + bias, hi + bias, None)
        }
        _ => bail!("usage: disassemble [-a START END | FUNC]"),
    };
    if end <= start {
        bail!("disassemble: empty range {start:#x}-{end:#x}");
    }
    if end - start > MAX_BYTES {
        bail!(
            "disassemble: {} bytes is more than {MAX_BYTES}; give a shorter range",
            end - start
        );
    }
    let code = s
        .disassemble(start, end)
        .map_err(|e| anyhow!("disassemble: {e}"))?;
    if let Some(f) = tab.find_func(start.wrapping_sub(bias)) {
        let file = f.file_line(f.entry()).map(|(file, _)| file).unwrap_or("?");
        writeln!(out, "TEXT {}(SB) {file}", f.name().unwrap_or("?"))?;
    }
    for i in &code {
        let pc = i.pc;
        let bytes: String = i.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let line = match (&i.file, i.line) {
            (Some(file), Some(line)) => format!("{}:{line}", crate::repl::base_name(file)),
            _ => String::new(),
        };
        let here = mark.is_some_and(|m| (pc..pc + i.bytes.len() as u64).contains(&m));
        let arrow = if here { "=>" } else { "  " };
        writeln!(out, "{arrow}\t{line}\t{pc:#x}\t{bytes:<20}\t{}", i.text)?;
    }
    Ok(())
}

fn parse_addr(word: &str) -> Result<u64> {
    let hex = word.trim_start_matches("0x");
    u64::from_str_radix(hex, 16).map_err(|_| anyhow!("disassemble: {word:?} is not an address"))
}
