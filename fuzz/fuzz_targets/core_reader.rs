//! The core reader on arbitrary bytes: opening, and everything a dump
//! asks of a core afterwards (threads, mappings, reads anywhere).
#![no_main]

use goat::corefile::CoreFile;
use goat::process::{Memory, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(core) = CoreFile::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = core.threads().len();
    let mut buf = [0u8; 64];
    for m in core.mappings().iter().take(64) {
        for addr in [m.start, m.end.wrapping_sub(8), m.end] {
            // A pass-through capture trusts holds() to say what read does.
            let read = core.read(addr, &mut buf).is_ok();
            assert_eq!(core.holds(addr, buf.len()), Some(read));
        }
    }
    for t in core.threads().iter().take(64) {
        let _ = core.read(t.regs.rsp, &mut buf);
        let _ = core.read(t.regs.rip, &mut buf);
    }
    let _ = core.read(u64::MAX - 3, &mut buf);
});
