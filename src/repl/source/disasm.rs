//! disassemble: the machine code of a function, read from the target (so a
//! core shows what was mapped, and a live process what it runs), in Intel
//! syntax with call and jump targets named.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, bail, Result};
use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, SymbolResolver, SymbolResult,
};

use crate::session::Session;

/// Longer code than this is not disassembled in one go (a function is
/// rarely over a few KiB; `-a` ranges are capped too).
const MAX_BYTES: u64 = 64 << 10;

/// Names branch targets from a table made before formatting (the formatter
/// wants an owned resolver).
struct Targets(HashMap<u64, String>);

impl SymbolResolver for Targets {
    fn symbol(
        &mut self,
        _instruction: &Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        self.0
            .get(&address)
            .map(|name| SymbolResult::with_str(address, name.as_str()))
    }
}

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
    let mut code = vec![0u8; (end - start) as usize];
    s.target()?
        .read(start, &mut code)
        .map_err(|e| anyhow!("disassemble: cannot read the code: {e}"))?;

    let instructions: Vec<Instruction> = Decoder::with_ip(64, &code, start, DecoderOptions::NONE)
        .into_iter()
        .collect();
    let mut names = HashMap::new();
    for i in &instructions {
        let target = i.near_branch_target();
        if target == 0 || (start..end).contains(&target) {
            continue;
        }
        let name = tab
            .find_func(target.wrapping_sub(bias))
            .and_then(|f| f.name().ok().map(|n| (f.entry() + bias, n)));
        match name {
            Some((entry, n)) if entry == target => names.insert(target, n.to_string()),
            Some((entry, n)) => names.insert(target, format!("{n}+{:#x}", target - entry)),
            None => None,
        };
    }
    if let Some(f) = tab.find_func(start.wrapping_sub(bias)) {
        let file = f.file_line(f.entry()).map(|(file, _)| file).unwrap_or("?");
        writeln!(out, "TEXT {}(SB) {file}", f.name().unwrap_or("?"))?;
    }
    let mut fmt = IntelFormatter::with_options(Some(Box::new(Targets(names))), None);
    let o = fmt.options_mut();
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_uppercase_hex(false);
    o.set_space_after_operand_separator(true);
    o.set_branch_leading_zeros(false);
    let mut text = String::new();
    for i in &instructions {
        let pc = i.ip();
        let at = (pc - start) as usize;
        let bytes: String = code[at..at + i.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let line = tab
            .find_func(pc.wrapping_sub(bias))
            .and_then(|f| f.file_line(pc.wrapping_sub(bias)).ok())
            .map(|(file, line)| format!("{}:{line}", crate::repl::base_name(file)))
            .unwrap_or_default();
        text.clear();
        fmt.format(i, &mut text);
        let here = mark.is_some_and(|m| (pc..pc + i.len() as u64).contains(&m));
        let arrow = if here { "=>" } else { "  " };
        writeln!(out, "{arrow}\t{line}\t{pc:#x}\t{bytes:<20}\t{text}")?;
    }
    Ok(())
}

fn parse_addr(word: &str) -> Result<u64> {
    let hex = word.trim_start_matches("0x");
    u64::from_str_radix(hex, 16).map_err(|_| anyhow!("disassemble: {word:?} is not an address"))
}
