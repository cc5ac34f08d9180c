//! The executable loader on arbitrary bytes: ELF, buildinfo, pclntab
//! (functions, lines, inlining, SP deltas) and the DWARF type index.
#![no_main]

use goat::binary::Binary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bin) = Binary::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = bin.go_version();
    let _ = bin.module_path();
    let _ = bin.is_pie();
    if let Ok(tab) = bin.pclntab() {
        for f in tab.functions().take(256) {
            let _ = f.name();
            let entry = f.entry();
            for pc in [entry, entry.wrapping_add(1), entry.wrapping_add(16)] {
                let _ = tab.find_func(pc).map(|f| f.file_line(pc));
                let _ = tab.find_func(pc).map(|f| f.sp_delta(pc));
            }
        }
    }
    let _ = goat::goruntime::GoProgram::load(bin);
});
