//! Goroutine discovery, capture and decode over hostile memory: a real Go
//! executable (the `states` fixture), and a target whose every byte comes
//! from the fuzzer (the input repeated over the whole address space, offset
//! by its first 8 bytes), so that `allgs`, each `g`, `m` and every stack
//! hold whatever the fuzzer likes.
#![no_main]

use std::sync::OnceLock;

use goat::binary::Binary;
use goat::goruntime::GoProgram;
use goat::process::{Memory, ReadFault, Threadless};
use libfuzzer_sys::fuzz_target;

#[path = "repeating.rs"]
mod repeating;
use repeating::Repeating;

fn program() -> &'static GoProgram {
    static PROG: OnceLock<GoProgram> = OnceLock::new();
    PROG.get_or_init(|| {
        let path = std::env::var("GOAT_FUZZ_EXE").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/bin/go1.27-exe/states"
            )
            .into()
        });
        let bin = Binary::open(std::path::Path::new(&path)).unwrap_or_else(|e| {
            panic!("{path}: {e}; build the fixtures with scripts/build-fixtures")
        });
        GoProgram::load(bin).expect("the states fixture loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(mem) = Repeating::of_input(data) else {
        return;
    };
    let mem = Threadless(&mem);
    let prog = program();
    let Ok(globals) = prog.locate(&mem, 0) else {
        return;
    };
    // 1 MiB: hostile lengths would otherwise fill the 2 GiB default and
    // the fuzzer's memory limit with it; what is over budget is marked.
    // The budget bounds everything a capture copies (the allgs list, the
    // gs, the stacks, the arena faulted in up front), so it sets the speed:
    // with 2 GiB, each input reserved 1 GiB and read and deduplicated a
    // 16-million-entry list (perf: page faults, then SipHash), ~30 inputs
    // a second. 1 MiB still holds 131072 list entries or ~2000 gs.
    const BUDGET: u64 = 1 << 20;
    let prepared = prog.prepare_capture_within(&mem, &globals, BUDGET);
    let Ok(cap) = prog.capture_within(&mem, &globals, Some(1 << 40), prepared, BUDGET) else {
        return;
    };
    if let Ok(dump) = prog.decode(&cap, 0) {
        let mut out = Vec::new();
        let _ = goat::report::write_text(&mut out, &dump);
        let _ = goat::report::write_json(&mut out, &dump);
    }
});
