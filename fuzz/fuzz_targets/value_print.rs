//! The expression evaluator and the value printer over hostile memory: the
//! `vars` fixture's real DWARF and runtime type descriptors, and a target
//! whose every byte comes from the fuzzer (as in `goroutine_decode`). The
//! input is an expression, a NUL, 8 bytes of shift, then the memory; the
//! expression's value is shown as `print` would, and one global chosen by
//! the shift is formatted too, so maps, channels, interfaces and strings
//! are walked over whatever the fuzzer likes.
#![no_main]

use std::sync::OnceLock;

use goat::binary::dwarf_vars::VarIndex;
use goat::binary::Binary;
use goat::values::{Place, Scope, Value};
use goat::process::{Memory, ReadFault};
use libfuzzer_sys::fuzz_target;

#[path = "repeating.rs"]
mod repeating;
use repeating::Repeating;

struct Program {
    index: VarIndex,
    types: Option<(u64, u64)>,
    /// Globals with a type, by name (a stable order).
    globals: Vec<(u64, usize)>,
}

fn program() -> &'static Program {
    static PROG: OnceLock<Program> = OnceLock::new();
    PROG.get_or_init(|| {
        let path = std::env::var("GOAT_FUZZ_VARS_EXE").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/bin/go1.27-exe/vars"
            )
            .into()
        });
        let bin = Binary::open(std::path::Path::new(&path)).unwrap_or_else(|e| {
            panic!("{path}: {e}; build the fixtures with scripts/build-fixtures")
        });
        let index = VarIndex::load(bin.data()).expect("the vars fixture has DWARF");
        let types = bin.pclntab().ok().and_then(|t| t.types());
        let mut globals: Vec<(String, u64, usize)> = index
            .globals()
            .filter(|(n, _)| n.starts_with("main."))
            .filter_map(|(n, g)| Some((n.to_string(), g.addr, g.ty?)))
            .collect();
        globals.sort();
        let globals = globals.into_iter().map(|(_, a, t)| (a, t)).collect();
        Program {
            index,
            types,
            globals,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (expr, rest) = (&data[..nul], &data[nul + 1..]);
    let Some(mem) = Repeating::of_input(rest) else {
        return;
    };
    let prog = program();
    let scope = Scope {
        mem: &mem,
        index: &prog.index,
        bias: 0,
        pc: 0,
        cfa: 0,
        types: prog.types,
        inline_depth: 0,
        ret_pc: None,
        function: None,
        line: None,
        regs: None,
        curg: None,
        limits: Default::default(),
        budget: Default::default(),
    };
    if let Ok(text) = std::str::from_utf8(expr) {
        if let Ok(v) = scope.eval_text(text) {
            let _ = scope.show(&v, None);
            let _ = scope.val_type(&v);
        }
    }
    if !prog.globals.is_empty() {
        let (addr, ty) = prog.globals[(mem.shift % prog.globals.len() as u64) as usize];
        let _ = scope.format(&Value {
            ty,
            place: Place::Mem(addr),
        });
    }
});
