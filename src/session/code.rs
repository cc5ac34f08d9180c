//! The program's code and memory as data, for every front end: the
//! machine code of a range disassembled (the REPL's `disassemble`, DAP's
//! `disassemble`), bytes of memory with what could not be read marked
//! (DAP's `readMemory`), and the binary's source files (`sources`,
//! `loadedSources`).

use std::collections::HashMap;

use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, SymbolResolver, SymbolResult,
};

use super::error::{Result, SessionError};
use super::Session;

/// Most code disassembled in one request (a function is rarely over a
/// few KiB).
pub const MAX_CODE: u64 = 64 << 10;
/// Most memory read in one request.
pub const MAX_MEMORY: u64 = 1 << 20;
/// Memory is read in pieces this size once a read fails, to find where
/// the readable part ends.
const PAGE: u64 = 4096;

/// One machine instruction, in Intel syntax with call and jump targets
/// outside the range named.
#[derive(Debug, Clone)]
pub struct Instr {
    /// Its run-time address.
    pub pc: u64,
    pub bytes: Vec<u8>,
    pub text: String,
    /// The source file and line it was compiled from, when known.
    pub file: Option<String>,
    pub line: Option<u32>,
}

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

impl Session<'_> {
    /// The run-time `[start, end)` of the Go function holding run-time
    /// `pc`, and its name.
    pub fn function_at(&self, pc: u64) -> Option<(u64, u64, String)> {
        let tab = self.prog.binary().pclntab().ok()?;
        let link = pc.wrapping_sub(self.bias);
        let (lo, hi) = tab.func_bounds(link)?;
        let name = tab.find_func(link)?.name().ok()?.to_string();
        Some((lo.wrapping_add(self.bias), hi.wrapping_add(self.bias), name))
    }

    /// The instructions of run-time `[start, end)`, read from the target
    /// (a core shows what was mapped, a live process what it runs). At
    /// most [`MAX_CODE`] bytes.
    pub fn disassemble(&self, start: u64, end: u64) -> Result<Vec<Instr>> {
        let len = end
            .checked_sub(start)
            .filter(|&n| n > 0 && n <= MAX_CODE)
            .ok_or(SessionError::CodeRange { start, end })?;
        let bias = self.bias;
        let tab = self.prog.binary().pclntab()?;
        let mut code = vec![0u8; len as usize];
        self.target()?
            .read(start, &mut code)
            .map_err(|e| SessionError::ReadCode(e.to_string()))?;
        let instructions: Vec<Instruction> =
            Decoder::with_ip(64, &code, start, DecoderOptions::NONE)
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
                .and_then(|f| f.name().ok().map(|n| (f.entry().wrapping_add(bias), n)));
            match name {
                Some((entry, n)) if entry == target => names.insert(target, n.to_string()),
                Some((entry, n)) => names.insert(target, format!("{n}+{:#x}", target - entry)),
                None => None,
            };
        }
        let mut fmt = IntelFormatter::with_options(Some(Box::new(Targets(names))), None);
        let o = fmt.options_mut();
        o.set_hex_prefix("0x");
        o.set_hex_suffix("");
        o.set_uppercase_hex(false);
        o.set_space_after_operand_separator(true);
        o.set_branch_leading_zeros(false);
        let mut out = Vec::with_capacity(instructions.len());
        for i in &instructions {
            let pc = i.ip();
            let at = (pc - start) as usize;
            let bytes = code.get(at..at + i.len()).unwrap_or_default().to_vec();
            let place = tab
                .find_func(pc.wrapping_sub(bias))
                .and_then(|f| f.file_line(pc.wrapping_sub(bias)).ok());
            let mut text = String::new();
            fmt.format(i, &mut text);
            out.push(Instr {
                pc,
                bytes,
                text,
                file: place.map(|(file, _)| file.to_string()),
                line: place.map(|(_, line)| line),
            });
        }
        Ok(out)
    }

    /// Up to `count` bytes (at most [`MAX_MEMORY`]) from run-time `addr`:
    /// the readable ones from the start, then how many of the rest could
    /// not be read.
    pub fn read_memory(&self, addr: u64, count: u64) -> Result<(Vec<u8>, u64)> {
        let t = self.target()?;
        let count = count.min(MAX_MEMORY).min(u64::MAX - addr);
        let mut data = vec![0u8; count as usize];
        if t.read(addr, &mut data).is_ok() {
            return Ok((data, 0));
        }
        // Piece by piece, up to the first that cannot be read.
        let mut read = 0u64;
        while read < count {
            let at = addr + read;
            let piece = (PAGE - at % PAGE).min(count - read);
            let buf = &mut data[read as usize..(read + piece) as usize];
            if t.read(at, buf).is_err() {
                break;
            }
            read += piece;
        }
        data.truncate(read as usize);
        Ok((data, count - read))
    }

    /// The source files of the binary's functions, sorted, each once.
    pub fn source_files(&self) -> Vec<String> {
        let Ok(tab) = self.prog.binary().pclntab() else {
            return Vec::new();
        };
        let files: std::collections::BTreeSet<String> = tab
            .functions()
            .filter_map(|f| f.file_line(f.entry()).ok().map(|(f, _)| f.to_string()))
            .collect();
        files.into_iter().collect()
    }
}
