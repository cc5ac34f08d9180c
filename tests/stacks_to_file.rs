//! `goat stacks ... > FILE`: a regular file gets the dump with `O_DIRECT`
//! (`outfile/direct.rs`), and holds exactly what a pipe gets. The
//! descriptor is the caller's: the dump starts where its offset stood
//! (here not at a page boundary), and its offset ends after the dump, so
//! what the shell writes next follows it. A descriptor opened for
//! appending is written as usual.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{build_fixtures, goat, text, Fixture};

/// A directory on the disk the tests build on (`target/`), where direct
/// writes go: `/tmp` may be a tmpfs, which goat writes as usual.
fn disk_dir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("goat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a directory under target/");
    d
}

/// A core of a 5000-goroutine service (a dump of several MiB: several
/// of the writer's buffers, and a tail that is no whole page).
fn service_core(dir: &Path) -> PathBuf {
    let fx = Fixture::start("go1.24-exe", "service", &["5000"]);
    let core = dir.join("core");
    let out = goat()
        .args(["core", "-o"])
        .arg(&core)
        .arg(fx.pid().to_string())
        .output()
        .expect("run goat core");
    assert!(out.status.success(), "{}", text(&out.stderr));
    core
}

/// `goat stacks --stats --core CORE` with `file` as its stdout: stderr.
fn stacks_into(core: &Path, file: &File) -> String {
    let out = goat()
        .args(["stacks", "--stats", "--core"])
        .arg(core)
        .stdout(file.try_clone().expect("dup"))
        .output()
        .expect("run goat stacks");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    err
}

fn contents(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .expect("read the file back");
    v
}

const DIRECT_NOTE: &str = "went to its file with O_DIRECT";

#[test]
fn a_dump_to_a_file_is_the_dump_to_a_pipe_where_the_offset_stood() {
    build_fixtures();
    let dir = disk_dir("to-file");
    let core = service_core(&dir);
    let piped = goat()
        .args(["stacks", "--core"])
        .arg(&core)
        .output()
        .expect("run goat stacks");
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    let dump = piped.stdout;
    assert!(
        dump.len() > 4 << 20,
        "a dump of several MiB: {}",
        dump.len()
    );

    // Written after a header that leaves the offset inside a page, then a
    // footer through the same descriptor, as `{ echo; goat; echo; } > F`.
    let path = dir.join("out.txt");
    let mut file = File::create(&path).expect("create");
    file.write_all(b"header\n").expect("header");
    let err = stacks_into(&core, &file);
    assert!(err.contains(DIRECT_NOTE), "not written directly:\n{err}");
    assert_eq!(
        file.stream_position().expect("offset"),
        (7 + dump.len()) as u64,
        "the descriptor's offset is after the dump"
    );
    file.write_all(b"footer\n").expect("footer");
    let want = [&b"header\n"[..], &dump, b"footer\n"].concat();
    assert!(
        contents(&path) == want,
        "the file is not header, dump, footer"
    );

    // At a page boundary of the old file, opened without truncating it:
    // its first page, then the dump (any old bytes past it stay).
    let mut file = OpenOptions::new().write(true).open(&path).expect("open");
    file.seek(SeekFrom::Start(4096)).expect("seek");
    let err = stacks_into(&core, &file);
    assert!(err.contains(DIRECT_NOTE), "not written directly:\n{err}");
    let rest = want.get(4096 + dump.len()..).unwrap_or(&[]);
    let want_after = [&want[..4096], &dump, rest].concat();
    assert!(
        contents(&path) == want_after,
        "overwritten in place wrongly"
    );

    // Appending: written as usual, after what is there.
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    let err = stacks_into(&core, &file);
    assert!(!err.contains(DIRECT_NOTE), "appended directly:\n{err}");
    file.write_all(b"end\n").expect("end");
    let want_appended = [&want_after[..], &dump, b"end\n"].concat();
    assert!(contents(&path) == want_appended, "the append is wrong");
    let _ = std::fs::remove_dir_all(&dir);
}
