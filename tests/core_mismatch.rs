//! A core read with the wrong executable (another build, another Go
//! release, another program, a rebuild in place, a core whose NT_FILE note
//! is gone) is refused with exit 14 and a message naming what differs;
//! the right executable still reads, NT_FILE or not.

mod common;

use std::path::{Path, PathBuf};

use common::{build_fixtures, fixture_path, run_goat, text, write_core, Fixture};

const WRONG_EXECUTABLE: i32 = 14;

/// A copy of `go1.24-exe/states` run from a scratch directory (so the test
/// can rebuild it "in place"), and a core of it.
fn core_of_copy(dir: &Path) -> (Fixture, PathBuf, PathBuf) {
    build_fixtures();
    let exe = dir.join("states");
    common::install_executable(&fixture_path("go1.24-exe", "states"), &exe);
    let fx = Fixture::start_path(&exe, &[]);
    let core = dir.join("states.core");
    write_core(fx.pid(), &core);
    (fx, exe, core)
}

fn stacks(core: &Path, exe: Option<&Path>) -> (Option<i32>, String, String) {
    let mut args = vec!["stacks", "--core", core.to_str().unwrap()];
    if let Some(e) = exe {
        args.extend(["--exe", e.to_str().unwrap()]);
    }
    let out = run_goat(&args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn assert_refused(core: &Path, exe: Option<&Path>, names: &str) {
    let (code, out, err) = stacks(core, exe);
    assert_eq!(code, Some(WRONG_EXECUTABLE), "{exe:?}: {err}");
    assert!(out.is_empty(), "{exe:?} printed: {out}");
    assert!(err.contains("is not the executable"), "{exe:?}: {err}");
    assert!(err.contains(names), "{exe:?}: want {names:?} in {err}");
}

fn assert_reads(core: &Path, exe: Option<&Path>) {
    let (code, out, err) = stacks(core, exe);
    assert_eq!(code, Some(0), "{exe:?}: {err}");
    assert!(out.contains("goroutine 1 "), "{out}");
    // Wait reasons come from the executable's read-only data: never NULs.
    assert!(out.contains("[chan receive]"), "{out}");
    assert!(!out.contains('\0'), "{out}");
}

/// Zeroes the descriptor of the core's NT_FILE note (the mapped files).
fn zero_nt_file(core: &Path, dest: &Path) {
    let mut d = std::fs::read(core).unwrap();
    let u16_at = |d: &[u8], o: usize| u16::from_le_bytes(d[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phnum) = (u64_at(&d, 32), u16_at(&d, 56));
    let mut zeroed = false;
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        if u32_at(&d, ph) != 4 {
            continue;
        }
        let (mut o, end) = (u64_at(&d, ph + 8), u64_at(&d, ph + 8) + u64_at(&d, ph + 32));
        while o + 12 <= end {
            let (namesz, descsz, kind) = (u32_at(&d, o), u32_at(&d, o + 4), u32_at(&d, o + 8));
            let desc = o + 12 + namesz.next_multiple_of(4);
            if kind == 0x4649_4c45 {
                d[desc..desc + descsz].fill(0);
                zeroed = true;
            }
            o = desc + descsz.next_multiple_of(4);
        }
    }
    assert!(zeroed, "no NT_FILE note in {}", core.display());
    std::fs::write(dest, d).unwrap();
}

#[test]
fn every_wrong_executable_is_refused_and_the_right_one_reads() {
    let dir = common::scratch_dir("mismatch");
    let (_fx, exe, core) = core_of_copy(&dir);

    assert_reads(&core, None);
    assert_reads(&core, Some(&fixture_path("go1.24-exe", "states")));
    // Same source, other flags.
    assert_refused(
        &core,
        Some(&fixture_path("go1.24-stripped", "states")),
        "Go build IDs differ",
    );
    assert_refused(
        &core,
        Some(&fixture_path("go1.24-nodwarf", "states")),
        "Go build IDs differ",
    );
    assert_refused(&core, Some(&fixture_path("go1.24-pie", "states")), "differ");
    // Another Go release, another program.
    assert_refused(&core, Some(&fixture_path("go1.21-exe", "states")), "differ");
    assert_refused(&core, Some(&fixture_path("go1.24-exe", "ticker")), "differ");

    // NT_FILE gone: the core no longer names its executable; given one, it
    // is checked against the header page the core holds, and the right one
    // supplies the pages NT_FILE no longer covers.
    let bare = dir.join("no-nt-file.core");
    zero_nt_file(&core, &bare);
    let (code, _, err) = stacks(&bare, None);
    assert_eq!(code, Some(13), "{err}");
    assert_reads(&bare, Some(&exe));
    assert_refused(
        &bare,
        Some(&fixture_path("go1.24-stripped", "states")),
        "Go build IDs differ",
    );
    assert_refused(&bare, Some(&fixture_path("go1.21-exe", "states")), "differ");

    // A rebuild in place at the path the core names.
    drop(_fx);
    std::fs::remove_file(&exe).unwrap();
    common::install_executable(&fixture_path("go1.24-nodwarf", "states"), &exe);
    assert_refused(&core, None, "Go build IDs differ");
    let _ = std::fs::remove_dir_all(&dir);
}
