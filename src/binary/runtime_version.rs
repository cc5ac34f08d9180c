//! The Go version a binary's runtime reports (`runtime.Version()`), for
//! executables that carry no `.go.buildinfo` (vendors strip it, or zero it).
//!
//! The linker stores the toolchain's version in the string variable
//! `runtime.buildVersion`. With a symbol table goat reads it by name. A
//! stripped binary still has its pclntab, and `runtime.schedinit` keeps the
//! variable alive with `if buildVersion == "" { buildVersion = "unknown" }`
//! (every release 1.19–1.27): the `MOVQ $7, buildVersion+8(SB)` that stores
//! the length of "unknown" names the variable's address.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Register};

use super::pclntab::Pclntab;
use super::Binary;

/// Longest version string goat accepts: vendor suffixes are a few dozen
/// bytes ("go1.25-20250209-RC00 X:boringcrypto"); more is not a version.
const MAX_VERSION: u64 = 128;
/// `runtime.schedinit` is a few KiB in every release; the store is in its
/// first half. Bounds the decoding of a hostile function table.
const MAX_SCHEDINIT: u64 = 16 << 10;
/// `len("unknown")`, the fallback schedinit stores.
const UNKNOWN_LEN: u64 = 7;

/// The version string in `runtime.buildVersion`, found by symbol or through
/// `runtime.schedinit`; `None` when neither leads to a plausible string.
pub(super) fn find(bin: &Binary, tab: Option<&Pclntab>) -> Option<String> {
    let header = bin
        .symbol("runtime.buildVersion")
        .or_else(|| tab.and_then(|t| from_schedinit(bin, t)))?;
    read_string(bin, header)
}

/// The address of `runtime.buildVersion`: the memory operand, minus the
/// 8 bytes of the string's data pointer, of schedinit's `MOVQ $7, [RIP+d]`
/// that follows a `CMPQ [RIP+d], $0` of the same address.
fn from_schedinit(bin: &Binary, tab: &Pclntab) -> Option<u64> {
    let entry = tab.func_by_name("runtime.schedinit")?.entry();
    let (start, end) = tab.func_bounds(entry)?;
    let len = end.checked_sub(start)?.min(MAX_SCHEDINIT);
    let code = bin.read_static(start, usize::try_from(len).ok()?)?;
    let mut decoder = Decoder::with_ip(64, code, start, DecoderOptions::NONE);
    let mut compared: Option<u64> = None;
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() || insn.memory_base() != Register::RIP {
            continue;
        }
        let target = insn.memory_displacement64();
        match insn.code() {
            Code::Cmp_rm64_imm8 | Code::Cmp_rm64_imm32 if insn.immediate(1) == 0 => {
                compared = Some(target);
            }
            Code::Mov_rm64_imm32
                if insn.immediate(1) == UNKNOWN_LEN && compared == Some(target) =>
            {
                return target.checked_sub(8);
            }
            _ => {}
        }
    }
    None
}

/// The Go string whose header is at link-time `header`, if it is a
/// plausible version: short, printable, starting "go" or "devel".
fn read_string(bin: &Binary, header: u64) -> Option<String> {
    let words = bin.read_static(header, 16)?;
    let ptr = u64::from_le_bytes(words.get(..8)?.try_into().ok()?);
    let len = u64::from_le_bytes(words.get(8..16)?.try_into().ok()?);
    if len == 0 || len > MAX_VERSION {
        return None;
    }
    let bytes = bin.read_static(ptr, usize::try_from(len).ok()?)?;
    let text = std::str::from_utf8(bytes).ok()?;
    let plausible = (text.starts_with("go") || text.starts_with("devel"))
        && text.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    plausible.then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(flavour: &str, ver: &str) -> Binary {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/bin/{ver}-{flavour}/states"));
        Binary::open(&p).unwrap_or_else(|e| {
            panic!(
                "fixture {} missing ({e}): run scripts/build-fixtures",
                p.display()
            )
        })
    }

    /// Stripped binaries have no `runtime.buildVersion` symbol: schedinit
    /// leads to the same string buildinfo holds, on every release.
    #[test]
    fn schedinit_leads_to_the_build_version() {
        for ver in ["go1.19", "go1.21", "go1.24", "go1.27"] {
            let bin = fixture("stripped", ver);
            assert!(bin.symbol("runtime.buildVersion").is_none());
            let tab = bin.pclntab().unwrap();
            let found = find(&bin, Some(tab)).unwrap_or_else(|| panic!("{ver}: not found"));
            assert_eq!(Some(found.as_str()), bin.build_info_version(), "{ver}");
            let by_symbol = find(&fixture("exe", ver), None).unwrap();
            assert_eq!(found, by_symbol, "{ver}");
        }
    }

    #[test]
    fn implausible_strings_are_refused() {
        let bin = fixture("exe", "go1.27");
        // The header of a non-string: the pclntab's first bytes.
        let text = bin.section_range(".text").unwrap().0;
        assert_eq!(read_string(&bin, text), None);
        assert_eq!(read_string(&bin, u64::MAX - 4), None);
    }
}
