//! Compressed cores on arbitrary bytes: the first byte picks the format
//! (zstd, lz4 or xz) whose magic the file then starts with, the rest is
//! the stream. Opening unpacks it into a temporary and reads it as a core;
//! a corrupt or cut stream must be an error, never a crash or a hang.
#![no_main]

use std::io::Write;

use goat::corefile::CoreFile;
use goat::process::{Memory, Target};
use libfuzzer_sys::fuzz_target;

const MAGICS: [&[u8]; 3] = [
    &[0x28, 0xb5, 0x2f, 0xfd],
    &[0x04, 0x22, 0x4d, 0x18],
    &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let path = std::env::temp_dir().join(format!("goat-fuzz-unpack-{}", std::process::id()));
    let Ok(mut file) = std::fs::File::create(&path) else {
        return;
    };
    let magic = MAGICS[usize::from(pick) % MAGICS.len()];
    // A stream that already starts with a magic is taken as is.
    let whole = stream.starts_with(magic);
    if (!whole && file.write_all(magic).is_err()) || file.write_all(stream).is_err() {
        return;
    }
    drop(file);
    if let Ok(core) = CoreFile::open(&path) {
        let mut buf = [0u8; 64];
        for m in core.mappings().iter().take(16) {
            let _ = core.read(m.start, &mut buf);
        }
        let _ = core.threads().len();
    }
    let _ = std::fs::remove_file(&path);
});
