//! The input format of the `dwarf_index` fuzz target: DWARF sections, each
//! a 4-byte little-endian length then that many bytes, wrapped in a
//! minimal ELF. Shared with goat's unit tests, which replay its findings
//! (src/binary/dwarf_vars/mod.rs).

/// In the order the seeds (scripts/fuzz) write them.
pub const SECTIONS: [&str; 11] = [
    ".debug_abbrev",
    ".debug_info",
    ".debug_str",
    ".debug_line",
    ".debug_ranges",
    ".debug_loc",
    ".debug_rnglists",
    ".debug_loclists",
    ".debug_addr",
    ".debug_str_offsets",
    ".debug_line_str",
];

pub fn split(mut data: &[u8]) -> Vec<(&'static str, &[u8])> {
    let mut out = Vec::new();
    for name in SECTIONS {
        if data.len() < 4 {
            break;
        }
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let rest = &data[4..];
        let len = len.min(rest.len());
        out.push((name, &rest[..len]));
        data = &rest[len..];
    }
    out
}

/// An ELF64 little-endian relocatable file holding `sections` and their
/// names (`.shstrtab`), nothing else.
pub fn elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_at = Vec::new();
    for (n, _) in sections.iter().copied().chain([(".shstrtab", &[][..])]) {
        name_at.push(names.len() as u32);
        names.extend_from_slice(n.as_bytes());
        names.push(0);
    }
    let mut out = vec![0u8; 64];
    let mut placed = Vec::new();
    for (_, d) in sections.iter().copied().chain([("", &names[..])]) {
        placed.push((out.len() as u64, d.len() as u64));
        out.extend_from_slice(d);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; 64]); // the null section
    for (i, &(off, size)) in placed.iter().enumerate() {
        let mut sh = [0u8; 64];
        sh[0..4].copy_from_slice(&name_at[i].to_le_bytes());
        let ty: u32 = if i + 1 == placed.len() { 3 } else { 1 }; // STRTAB : PROGBITS
        sh[4..8].copy_from_slice(&ty.to_le_bytes());
        sh[24..32].copy_from_slice(&off.to_le_bytes());
        sh[32..40].copy_from_slice(&size.to_le_bytes());
        sh[48..56].copy_from_slice(&1u64.to_le_bytes()); // alignment
        out.extend_from_slice(&sh);
    }
    let h = &mut out[..64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // 64-bit
    h[5] = 1; // little-endian
    h[6] = 1; // version
    h[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    h[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[40..48].copy_from_slice(&shoff.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
    h[58..60].copy_from_slice(&64u16.to_le_bytes()); // shentsize
    h[60..62].copy_from_slice(&(placed.len() as u16 + 1).to_le_bytes());
    h[62..64].copy_from_slice(&(placed.len() as u16).to_le_bytes()); // shstrndx
    out
}

/// The ELF the target loads for fuzz input `data`.
pub fn elf_of(data: &[u8]) -> Vec<u8> {
    elf(&split(data))
}
