//! Requests about the program's memory and code: `readMemory` and
//! `disassemble`, from addresses as DAP passes them.

use serde_json::{json, Value as Json};

use super::errors::text;
use crate::session::Session;

/// An address as DAP passes it (`memoryReference`: `0x…`, or decimal).
fn address(text: Option<&str>) -> Result<u64, String> {
    let t = text.ok_or("no memoryReference")?.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| format!("{t:?} is not an address"))
}

/// `memoryReference` moved by `offset` bytes (negative too).
fn offset_address(args: &Json) -> Result<u64, String> {
    let base = address(args["memoryReference"].as_str())?;
    let offset = args["offset"].as_i64().unwrap_or(0);
    base.checked_add_signed(offset)
        .ok_or_else(|| format!("{base:#x} moved by {offset} is no address"))
}

/// `readMemory`: the readable bytes from the start, base64, and how many
/// after them could not be read; `count` bounded (`session::MAX_MEMORY`).
pub(super) fn read_memory(s: &Session, args: &Json) -> Result<Json, String> {
    use base64::Engine;
    let addr = offset_address(args)?;
    let count = args["count"].as_u64().ok_or("readMemory: no count")?;
    let (data, unreadable) = s.read_memory(addr, count).map_err(text)?;
    let mut body = json!({
        "address": format!("{addr:#x}"),
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
    });
    if unreadable > 0 {
        body["unreadableBytes"] = json!(unreadable);
    }
    Ok(body)
}

/// Most instructions one `disassemble` answers with.
const MAX_INSTRUCTIONS: i64 = 10_000;

/// `disassemble`: `instructionCount` instructions from the one at
/// `memoryReference` + `offset`, moved by `instructionOffset` (negative
/// too). x86 code cannot be decoded backwards, so the function holding
/// the address is decoded whole and the window taken from it; what falls
/// outside it is listed as invalid, as the protocol asks for exactly the
/// count.
pub(super) fn disassemble(s: &Session, args: &Json) -> Result<Json, String> {
    let addr = offset_address(args)?;
    let count = args["instructionCount"]
        .as_i64()
        .ok_or("disassemble: no instructionCount")?;
    if !(0..=MAX_INSTRUCTIONS).contains(&count) {
        return Err(format!(
            "disassemble: {count} instructions (at most {MAX_INSTRUCTIONS})"
        ));
    }
    let shift = args["instructionOffset"].as_i64().unwrap_or(0);
    let (start, end, function) = s
        .function_at(addr)
        .ok_or_else(|| format!("disassemble: {addr:#x} is in no Go function"))?;
    let end = end.min(start.saturating_add(crate::session::MAX_CODE));
    let code = s.disassemble(start, end).map_err(text)?;
    let at = code
        .iter()
        .position(|i| i.pc <= addr && addr < i.pc + i.bytes.len() as u64)
        .unwrap_or(0) as i64;
    let mut out = Vec::new();
    let first = at.saturating_add(shift);
    for k in first..first.saturating_add(count) {
        let Some(i) = usize::try_from(k).ok().and_then(|k| code.get(k)) else {
            // Outside the function: an address one byte a step away.
            let pc = match k < 0 {
                true => start.saturating_sub(k.unsigned_abs()),
                false => end.saturating_add(k as u64 - code.len() as u64),
            };
            out.push(json!({
                "address": format!("{pc:#x}"),
                "instruction": "",
                "presentationHint": "invalid",
            }));
            continue;
        };
        let bytes: String = i.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut ins = json!({
            "address": format!("{:#x}", i.pc),
            "instructionBytes": bytes,
            "instruction": i.text,
        });
        if i.pc == start {
            ins["symbol"] = json!(function);
        }
        if let (Some(file), Some(line)) = (&i.file, i.line) {
            ins["location"] = json!({"name": crate::session::base_name(file), "path": file});
            ins["line"] = json!(line);
        }
        out.push(ins);
    }
    Ok(json!({ "instructions": out }))
}
