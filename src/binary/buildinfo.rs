//! The `.go.buildinfo` blob: Go version and module information
//! (format per `debug/buildinfo`).
//!
//! A 32-byte header: the 14-byte magic `"\xff Go buildinf:"`, the pointer
//! size, a flags byte, then either (flag bit 1 clear, before Go 1.18) two
//! pointers to Go string headers for the version and the module info, or
//! (flag bit 1 set, Go 1.18+) nothing, the two strings following the header
//! inline, each prefixed by its uvarint length.

use super::image::Image;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// Longest string read from the blob: module info of a big program is a few
/// tens of KB; anything beyond this is corrupt.
const MAX_STRING: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct BuildInfo {
    pub version: String,
    /// The module info with its framing sentinels removed ("" if none).
    pub modinfo: String,
}

impl BuildInfo {
    /// The value of the `path` line of the module info.
    pub fn module_path(&self) -> Option<&str> {
        self.modinfo
            .lines()
            .find_map(|line| line.strip_prefix("path\t"))
            .map(|rest| rest.split('\t').next().unwrap_or(rest))
    }

    /// The value of a `build\tKEY=VALUE` line of the module info
    /// (`GOEXPERIMENT`, `-ldflags`, ...).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.modinfo.lines().find_map(|line| {
            line.strip_prefix("build\t")?
                .strip_prefix(key)?
                .strip_prefix('=')
        })
    }
}

pub(crate) fn parse(image: &Image) -> Option<BuildInfo> {
    let blob = locate(image)?;
    let header = blob.get(..HEADER_LEN)?;
    let flags = header[15];
    let (version, modinfo) = if flags & FLAG_INLINE_STRINGS != 0 {
        let rest = &blob[HEADER_LEN..];
        let (version, used) = uvarint_string(rest)?;
        let (modinfo, _) = uvarint_string(rest.get(used..)?)?;
        (version, modinfo)
    } else {
        pointer_strings(image, header)?
    };
    if version.is_empty() {
        return None;
    }
    Some(BuildInfo {
        version: String::from_utf8_lossy(&version).into_owned(),
        modinfo: strip_framing(modinfo),
    })
}

/// The blob: the `.go.buildinfo` section, or else the first 16-aligned
/// magic in a writable segment's file contents.
fn locate(image: &Image) -> Option<&[u8]> {
    let bytes = image.bytes();
    if let Some(sec) = image.section(".go.buildinfo") {
        let off = usize::try_from(sec.file_offset?).ok()?;
        let len = usize::try_from(sec.size).ok()?;
        let blob = bytes.get(off..off.checked_add(len)?)?;
        if blob.starts_with(MAGIC) {
            return Some(blob);
        }
    }
    for seg in image.segments().iter().filter(|s| s.writable) {
        let off = usize::try_from(seg.offset).ok()?;
        let len = usize::try_from(seg.filesz).ok()?;
        let Some(data) = bytes.get(off..off.saturating_add(len).min(bytes.len())) else {
            continue;
        };
        let hit = (0..data.len())
            .step_by(16)
            .find(|&i| data.get(i..).is_some_and(|d| d.starts_with(MAGIC)));
        if let Some(i) = hit {
            return data.get(i..);
        }
    }
    None
}

fn uvarint_string(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut len = 0u64;
    let mut used = 0;
    for (i, &b) in data.iter().take(10).enumerate() {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            used = i + 1;
            break;
        }
    }
    if used == 0 || len > MAX_STRING {
        return None;
    }
    let end = used.checked_add(len as usize)?;
    let s = data.get(used..end)?;
    Some((s.to_vec(), end))
}

/// Pre-1.18: the header holds pointers to Go string headers (ptr, len).
fn pointer_strings(image: &Image, header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let ptr_size = usize::from(header[14]);
    let big = header[15] & FLAG_BIG_ENDIAN != 0;
    let word = |b: &[u8]| -> Option<u64> {
        Some(match (ptr_size, big) {
            (8, false) => u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            (8, true) => u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            (4, false) => u64::from(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
            (4, true) => u64::from(u32::from_be_bytes(b.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    };
    let read_string = |addr: u64| -> Option<Vec<u8>> {
        let hdr = image.read_static(addr, 2 * ptr_size)?;
        let data = word(hdr)?;
        let len = word(hdr.get(ptr_size..)?)?;
        if len > MAX_STRING {
            return None;
        }
        Some(image.read_static(data, len as usize)?.to_vec())
    };
    let version = read_string(word(header.get(16..)?)?)?;
    let modinfo = header
        .get(16 + ptr_size..)
        .and_then(word)
        .and_then(read_string)
        .unwrap_or_default();
    Some((version, modinfo))
}

/// Module info is framed by two 16-byte binary sentinels; the one at the
/// end is preceded by a newline.
fn strip_framing(b: Vec<u8>) -> String {
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        String::from_utf8_lossy(&b[16..b.len() - 16]).into_owned()
    } else {
        String::new()
    }
}
