//! Go binaries as vendors ship them, made from fixtures: the
//! `.go.buildinfo` blob removed (zeroed: the runtime never reads it, only
//! `go version -m` and debuggers do), and a toolchain version that is not a
//! release (a vendor's own build of Go names itself).

use std::path::Path;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;

/// Copies `src` to `dst` (executable), zeroing the build info blob when
/// `zero_build_info`, and replacing every occurrence of each `(from, to)`
/// pair of equal length: the version string sits in the build info and in
/// `runtime.buildVersion`'s bytes.
pub fn vendor_copy(src: &Path, dst: &Path, zero_build_info: bool, replace: &[(&str, &str)]) {
    let mut bytes = std::fs::read(src)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/build-fixtures", src.display()));
    if zero_build_info {
        let at = find(&bytes, MAGIC, 0).expect("the fixture has build info to remove");
        let end = blob_end(&bytes, at);
        bytes[at..end].fill(0);
        assert!(find(&bytes, MAGIC, 0).is_none(), "a second build info blob");
    }
    for (from, to) in replace {
        assert_eq!(from.len(), to.len(), "{from} -> {to}: lengths differ");
        let mut start = 0;
        let mut n = 0;
        while let Some(i) = find(&bytes, from.as_bytes(), start) {
            bytes[i..i + to.len()].copy_from_slice(to.as_bytes());
            start = i + to.len();
            n += 1;
        }
        assert!(n > 0, "{from} not found in {}", src.display());
    }
    // Written beside, never run from there: see `install_executable`.
    let part = dst.with_extension("part");
    std::fs::write(&part, &bytes).unwrap();
    super::install_executable(&part, dst);
    std::fs::remove_file(&part).unwrap();
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The end of the blob at `at`: the header, then (Go 1.18+) the version and
/// the module info, each after its uvarint length.
fn blob_end(bytes: &[u8], at: usize) -> usize {
    let mut p = at + HEADER;
    for _ in 0..2 {
        let (len, used) = uvarint(&bytes[p..]);
        p += used + len;
    }
    p
}

fn uvarint(b: &[u8]) -> (usize, usize) {
    let (mut v, mut shift) = (0usize, 0);
    for (i, &c) in b.iter().enumerate().take(10) {
        v |= usize::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
    }
    panic!("bad uvarint in build info");
}

/// The release string of a fixture's toolchain ("go1.24.11"), from
/// `.toolchains/goVER/VERSION`'s first line.
pub fn release_of(toolchain: &str) -> String {
    let path = super::root()
        .join(".toolchains")
        .join(toolchain)
        .join("VERSION");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup-go", path.display()));
    text.lines().next().unwrap_or_default().trim().to_string()
}
