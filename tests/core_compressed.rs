//! Cores as systemd-coredump keeps them: the kernel's core of a crashed
//! fixture compressed with the real `zstd`, `lz4` and `xz` tools reads
//! exactly as the plain core does, with `goat stacks --core` and with
//! `goat debug` given its files in either order (gdb's and `dlv core`'s
//! `EXE CORE`, which `coredumpctl debug --debugger=goat` passes, and
//! `CORE EXE`). A corrupt or cut stream is a one-line error, exit 12.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::kernel_core::{kernel_core, kernel_core_fix, TempDir};
use common::{build_fixtures, fixture_path, goat_with_stdin, run_goat, text};

const BAD_CORE: i32 = 12;

/// (tool, its arguments before the input and output, file suffix).
const FORMATS: [(&str, &[&str], &str); 3] = [
    ("zstd", &["-q", "-f", "-o"], "zst"),
    ("lz4", &["-q", "-f"], "lz4"),
    ("xz", &["-q", "-f", "-k", "-c"], "xz"),
];

/// `core` compressed by `tool` into `core.SUFFIX`.
fn compress(core: &Path, (tool, args, suffix): (&str, &[&str], &str)) -> PathBuf {
    let out = core.with_extension(suffix);
    let mut cmd = Command::new(tool);
    match tool {
        // zstd -o OUT IN
        "zstd" => cmd.args(args).arg(&out).arg(core),
        // lz4 IN OUT
        "lz4" => cmd.args(args).arg(core).arg(&out),
        // xz -c IN > OUT
        _ => cmd
            .args(args)
            .arg(core)
            .stdout(std::fs::File::create(&out).unwrap()),
    };
    let status = cmd.status().unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(status.success(), "{tool} failed");
    out
}

fn stacks_of(core: &Path) -> (Option<i32>, String, String) {
    let out = run_goat(&["stacks", "--core", core.to_str().unwrap()]);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn compressed_kernel_cores_read_as_the_plain_one() {
    for (tool, _, _) in FORMATS {
        if !common::require_tool(tool, "apt-get install -y zstd lz4 xz-utils") {
            return;
        }
    }
    build_fixtures();
    let dir = TempDir::new("compressed");
    let exe = fixture_path("go1.27-exe", "states");
    let core = match kernel_core(&exe, &dir.0).1 {
        Ok(c) => c,
        // Fails unless the kernel core is said to be skippable.
        Err(why) => {
            let _ = common::require("kernel core", false, &kernel_core_fix(&why));
            return;
        }
    };
    let (code, plain, err) = stacks_of(&core);
    assert_eq!(code, Some(0), "{err}");
    assert!(plain.contains("main.chanReceive"), "{plain}");

    let exe_s = exe.to_str().unwrap();
    for format in FORMATS {
        let packed = compress(&core, format);
        let packed_s = packed.to_str().unwrap();
        let (code, out, err) = stacks_of(&packed);
        assert_eq!(code, Some(0), "{}: {err}", format.0);
        assert_eq!(out, plain, "{}: the same dump as the plain core", format.0);

        // goat debug in both orders, and with --exe.
        for args in [
            vec!["debug", exe_s, packed_s],
            vec!["debug", packed_s, exe_s],
            vec!["debug", "--exe", exe_s, packed_s],
        ] {
            let out = goat_with_stdin(&args, "gr 1\nbt\n");
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert!(out.status.success(), "{args:?}: {stderr}");
            assert!(stdout.contains("in main.main"), "{args:?}: {stdout}");
        }

        // Cut in half, and one byte flipped in the middle: refused, never
        // read as a core with holes.
        let bytes = std::fs::read(&packed).unwrap();
        let cut = dir.0.join(format!("cut.{}", format.2));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        let bad = dir.0.join(format!("flipped.{}", format.2));
        std::fs::write(&bad, &flipped).unwrap();
        for broken in [&cut, &bad] {
            let (code, out, err) = stacks_of(broken);
            assert_eq!(code, Some(BAD_CORE), "{}: {err}", broken.display());
            assert!(out.is_empty(), "{out}");
            assert!(err.starts_with("goat: cannot unpack "), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
        std::fs::remove_file(&packed).unwrap();
    }

    // Two files, neither a core; two cores; --exe and an EXE both.
    let core_s = core.to_str().unwrap();
    for (args, words) in [
        (vec!["debug", exe_s, exe_s], "neither"),
        (vec!["debug", core_s, core_s], "both"),
        (vec!["debug", "--exe", exe_s, exe_s, core_s], "once"),
    ] {
        let out = run_goat(&args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
