//! The expression parser (`print`, `whatis`, `x` in a session) on arbitrary
//! text: it must return an expression or an error, never panic or recurse
//! without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = goat::values::eval::parse(text);
});
