//! A channel's element type by name (`int`, `struct {}`), from the
//! runtime type descriptor `hchan.elemtype` points at: its `str` (a
//! `nameOff` into the module's types, a flags byte, a varint length,
//! the bytes). The layout is `vars/rtype.rs`'s, the same from 1.19 to
//! 1.27; the name is read from the executable's file, where the types
//! section is, so a core that did not dump it still names it.

use crate::goruntime::GoProgram;
use crate::process::{Memory, MemoryExt};

const OFF_TFLAG: u64 = 20;
const OFF_STR: u64 = 40;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// Longest name read.
const MAX_NAME: u64 = 1 << 10;
const MAX_VARINT: usize = 10;

/// The name of the type whose descriptor is at run-time `typ`.
pub fn name(prog: &GoProgram, mem: &dyn Memory, typ: u64) -> Option<String> {
    let (types, etypes) = prog.binary().pclntab().ok()?.types()?;
    let mut tflag = [0u8; 1];
    mem.read(typ.checked_add(OFF_TFLAG)?, &mut tflag).ok()?;
    let str_off = mem.read_u32(typ.checked_add(OFF_STR)?).ok()? as i32;
    let start = types.checked_add(u64::try_from(str_off).ok()?)?;
    if start >= etypes {
        return None;
    }
    let head_len = usize::try_from((etypes - start).min(1 + MAX_VARINT as u64)).ok()?;
    let head = prog.binary().read_static(start, head_len)?;
    let (len, n) = varint(head.get(1..)?)?;
    let body = start.checked_add(1 + n as u64)?;
    if body.checked_add(len)? > etypes || len > MAX_NAME {
        return None;
    }
    let bytes = prog
        .binary()
        .read_static(body, usize::try_from(len).ok()?)?;
    let name = String::from_utf8_lossy(bytes).into_owned();
    Some(if tflag[0] & TFLAG_EXTRA_STAR != 0 {
        name.strip_prefix('*').map(str::to_string).unwrap_or(name)
    } else {
        name
    })
}

/// A varint and the bytes it took.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(MAX_VARINT).enumerate() {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}
