//! Names for addresses: the package variable (and field path inside it)
//! an address falls in, from the symbol table and DWARF, and the package
//! variable holding a pointer to a channel or sync object.

use std::collections::{HashMap, HashSet};

use crate::goruntime::GoProgram;
use crate::process::{Memory, MemoryExt};

/// The sections package variables live in.
const DATA_SECTIONS: [&str; 4] = [".data", ".bss", ".noptrdata", ".noptrbss"];
/// The sections whose words may point into the heap (a Go linker puts
/// pointer-free variables in the `.nopt*` ones).
const POINTER_SECTIONS: [&str; 2] = [".data", ".bss"];
/// Deepest field path followed.
const MAX_DEPTH: usize = 16;
/// Most bytes of package variables scanned for channel pointers.
const MAX_SCAN: u64 = 64 << 20;
/// Bytes read at a time while scanning.
const CHUNK: u64 = 1 << 20;

/// The package variable (and field path) `addr` falls in, from symbols
/// and DWARF: `main.jobs`, `main.state.mu`, `main.table.RWMutex`. `None`
/// when it is not in the executable's data or bss, or the binary has no
/// symbols. The path stops at a type of package sync, the object a wait
/// names; without DWARF it is the variable alone (`+0x10` when inside).
pub fn name_of(prog: &GoProgram, bias: u64, addr: u64) -> Option<String> {
    let bin = prog.binary();
    let link = addr.checked_sub(bias)?;
    let in_data = DATA_SECTIONS.iter().any(|s| {
        bin.section_range(s)
            .is_some_and(|(lo, hi)| (lo..hi).contains(&link))
    });
    if !in_data {
        return None;
    }
    let (sym, start, _) = bin.symbol_at(link)?;
    let mut name = sym.to_string();
    let mut off = link - start;
    let fields = prog
        .dwarf_types()
        .and_then(|d| Some((d, d.variable_type(sym)?.0)));
    if let Some((d, mut ty)) = fields {
        for _ in 0..MAX_DEPTH {
            if ty.starts_with("sync.") || ty.starts_with("internal/sync.") {
                break;
            }
            let Some(layout) = d.struct_layout(&ty) else {
                break;
            };
            let field = layout.fields.iter().find(|f| {
                f.size
                    .is_some_and(|size| size > 0 && off >= f.offset && off - f.offset < size)
            });
            let Some(f) = field else {
                break;
            };
            name.push('.');
            name.push_str(&f.name);
            off -= f.offset;
            ty = f.type_name.clone();
        }
        if off != 0 {
            name.push_str(&format!("+{off:#x}"));
        }
        return Some(name);
    }
    if off != 0 {
        name.push_str(&format!("+{off:#x}"));
    }
    Some(name)
}

/// The package variable holding a pointer to each of `targets`, when one
/// does and the binary has symbols: the words of `.data` and `.bss` are
/// searched for their addresses (the first slot found wins).
pub fn holders(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    targets: &HashSet<u64>,
) -> HashMap<u64, String> {
    if targets.is_empty() || prog.binary().symbol("runtime.allgs").is_none() {
        // No symbols: no name to give.
        return HashMap::new();
    }
    let mut found: HashMap<u64, u64> = HashMap::new();
    let mut budget = MAX_SCAN;
    for sect in POINTER_SECTIONS {
        let Some((lo, hi)) = prog.binary().section_range(sect) else {
            continue;
        };
        let (Some(lo), Some(hi)) = (lo.checked_add(bias), hi.checked_add(bias)) else {
            continue;
        };
        let mut at = lo;
        while at < hi && budget > 0 {
            let len = CHUNK.min(hi - at).min(budget);
            budget -= len;
            if let Ok(bytes) = mem.read_vec(at, len as usize) {
                for (i, w) in bytes.chunks_exact(8).enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(w);
                    let v = u64::from_le_bytes(b);
                    if targets.contains(&v) {
                        found.entry(v).or_insert(at + 8 * i as u64);
                    }
                }
            }
            at += len;
        }
    }
    found
        .into_iter()
        .filter_map(|(target, slot)| Some((target, name_of(prog, bias, slot)?)))
        .collect()
}
