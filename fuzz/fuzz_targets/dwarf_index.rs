//! The DWARF type index (`DwarfTypes`) and the variable index (`VarIndex`)
//! on arbitrary section contents. The input is split into DWARF sections
//! (each a 4-byte little-endian length, then that many bytes; the last one
//! takes what is left), wrapped in a minimal ELF so that both loaders run
//! from their public entry point, as they do on an executable.
#![no_main]

use goat::binary::dwarf::DwarfTypes;
use goat::binary::dwarf_vars::VarIndex;
use libfuzzer_sys::fuzz_target;

#[path = "sections_elf.rs"]
mod sections_elf;

fuzz_target!(|data: &[u8]| {
    let file = sections_elf::elf_of(data);
    if let Ok(types) = DwarfTypes::load(&file) {
        let _ = types.unit_errors();
        for name in ["runtime.g", "runtime.m", "runtime.hmap", "main.Request"] {
            let _ = types.struct_layout(name);
        }
        let _ = types.field_offset("runtime.g", "sched.sp");
        let _ = types.variable_address("runtime.allgs");
        let _ = types.variable_type("runtime.allgs");
    }
    if let Ok(vars) = VarIndex::load(&file) {
        for (_, g) in vars.globals().take(64) {
            if let Some(t) = g.ty {
                let _ = vars.ty(t);
            }
        }
        let _ = vars.function(0x401000);
        let _ = vars.type_named("int");
    }
});
