//! Is this the executable the core (or the process) was running? Reading
//! a core with another build of the program (other flags, another Go
//! release, a rebuild in place) decodes junk that looks plausible, so the
//! executable is checked before anything is read: the ELF header page the
//! kernel (and goat) dumps for each mapped file holds the GNU and Go build
//! IDs, and the whole page is compared with the file's first page.

use std::fmt;
use std::path::Path;

use crate::binary::Binary;
use crate::corefile::CoreFile;
use crate::process::{Mapping, Memory, Target};

/// The first page of an ELF file: where its program headers and build-ID
/// notes live, and what a core holds of each mapped file.
const PAGE: usize = 4096;
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;
const NT_GO_BUILDID: u32 = 4;
/// More notes than a first page can hold: bounds the walk.
const MAX_NOTES: usize = 256;

/// What differs between the executable and what the target ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The build IDs of one kind (`GNU` or `Go`) differ.
    BuildId {
        kind: &'static str,
        target: String,
        exe: String,
    },
    /// The entry point the target started at is not the executable's.
    Entry { target: u64, exe: u64 },
    /// Bytes of the executable's mapped first page differ (no build ID
    /// tells them apart): the first differing address and a few bytes.
    Bytes {
        addr: u64,
        target: Vec<u8>,
        exe: Vec<u8>,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::BuildId { kind, target, exe } => {
                write!(
                    f,
                    "{kind} build IDs differ (target: {target}, executable: {exe})"
                )
            }
            Mismatch::Entry { target, exe } => write!(
                f,
                "entry points differ (target: {target:#x}, executable: {exe:#x})"
            ),
            Mismatch::Bytes { addr, target, exe } => write!(
                f,
                "the executable's header page differs at {addr:#x} (target: {}, executable: {})",
                hex(target),
                hex(exe)
            ),
        }
    }
}

/// What the check could establish when nothing differs.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Checked {
    /// The target's copy of the executable's first page matched.
    Same,
    /// Nothing to compare; why.
    Unverified(String),
}

/// Checks `bin` against the core: its entry point (`AT_ENTRY`, for an
/// executable that is not position independent) and the first page of the
/// executable's mapping, found by the name the core gives it (`named`) or,
/// without `NT_FILE`, at the load address the entry point implies.
pub(super) fn check_core(
    core: &CoreFile,
    bin: &Binary,
    named: Option<&Path>,
) -> Result<Checked, Mismatch> {
    // The header page first: its build IDs name a difference best.
    let page = check_core_page(core, bin, named)?;
    match (core.entry(), bin.entry()) {
        (Some(t), Some(e)) if !bin.is_pie() && t != e => Err(Mismatch::Entry { target: t, exe: e }),
        _ => Ok(page),
    }
}

fn check_core_page(
    core: &CoreFile,
    bin: &Binary,
    named: Option<&Path>,
) -> Result<Checked, Mismatch> {
    let entry_bias = core
        .entry()
        .zip(bin.entry())
        .and_then(|(t, e)| t.checked_sub(e));
    let by_name = named.and_then(|n| first_page_of(core.mappings(), n));
    let by_entry = || bin.link_base().checked_add(entry_bias?);
    let Some(addr) = by_name.or_else(by_entry) else {
        return Ok(Checked::Unverified(
            "the core names no mapping of the executable and records no entry point".into(),
        ));
    };
    let want = &bin.data()[..bin.data().len().min(PAGE)];
    let mut got = vec![0u8; want.len()];
    // Only what the core itself holds: reading through NT_FILE would read
    // the very file being checked.
    if core.read_dumped(addr, &mut got).is_err() {
        return Ok(Checked::Unverified(format!(
            "the core holds no copy of the executable's first page (at {addr:#x})"
        )));
    }
    compare(&got, want, addr)
}

/// Checks the executable goat read for process `pid` against the first
/// page of its running mapping. A page that cannot be read is no answer
/// (the attach will say why), so it counts as unverified.
pub(super) fn check_live(
    mem: &dyn Memory,
    mappings: &[Mapping],
    exe: &Path,
    bin: &Binary,
) -> Result<Checked, Mismatch> {
    let Some(addr) = first_page_of(mappings, exe) else {
        return Ok(Checked::Unverified(
            "no mapping of the executable found".into(),
        ));
    };
    let want = &bin.data()[..bin.data().len().min(PAGE)];
    let mut got = vec![0u8; want.len()];
    if mem.read(addr, &mut got).is_err() {
        return Ok(Checked::Unverified(format!(
            "cannot read the executable's first page at {addr:#x}"
        )));
    }
    compare(&got, want, addr)
}

/// The lowest mapping of `file` from offset 0: where its first page is.
fn first_page_of(mappings: &[Mapping], file: &Path) -> Option<u64> {
    let file = file.to_string_lossy();
    let file = file.trim_end_matches(" (deleted)");
    mappings
        .iter()
        .filter(|m| {
            m.offset == 0
                && m.path
                    .as_deref()
                    .is_some_and(|p| p.trim_end_matches(" (deleted)") == file)
        })
        .map(|m| m.start)
        .min()
}

/// Compares the target's copy of the first page with the file's: the
/// build IDs first (they name the difference best), then every byte.
fn compare(target: &[u8], exe: &[u8], addr: u64) -> Result<Checked, Mismatch> {
    let (t, e) = (build_ids(target), build_ids(exe));
    for (kind, t, e) in [("GNU", &t.gnu, &e.gnu), ("Go", &t.go, &e.go)] {
        if let (Some(t), Some(e)) = (t, e) {
            if t != e {
                return Err(Mismatch::BuildId {
                    kind,
                    target: t.clone(),
                    exe: e.clone(),
                });
            }
        }
    }
    let Some(at) = target.iter().zip(exe).position(|(a, b)| a != b) else {
        return Ok(Checked::Same);
    };
    let end = (at + 8).min(target.len());
    Err(Mismatch::Bytes {
        addr: addr.saturating_add(at as u64),
        target: target[at..end].to_vec(),
        exe: exe[at..end].to_vec(),
    })
}

/// The executable's build ID as profiles name it: the GNU one in hex,
/// else the Go one, else empty.
pub(super) fn profile_build_id(bin: &Binary) -> String {
    let ids = build_ids(bin.data());
    ids.gnu.or(ids.go).unwrap_or_default()
}

/// The build IDs the notes of an ELF file's first page hold, as text: the
/// GNU one in hex, the Go one as it is written.
#[derive(Debug, Default, PartialEq, Eq)]
struct BuildIds {
    gnu: Option<String>,
    go: Option<String>,
}

/// Walks the `PT_NOTE` headers of an ELF64 little-endian file's first
/// bytes; anything malformed or past `page` ends the walk.
fn build_ids(page: &[u8]) -> BuildIds {
    let mut ids = BuildIds::default();
    if page.get(..4) != Some(b"\x7fELF".as_slice()) {
        return ids;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (u64_at(page, 32), u16_at(page, 54), u16_at(page, 56))
    else {
        return ids;
    };
    for i in 0..usize::from(phnum) {
        let Some(ph) = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i.checked_mul(usize::from(phentsize))?))
        else {
            break;
        };
        if u32_at(page, ph) != Some(PT_NOTE) {
            continue;
        }
        let (Some(off), Some(size)) = (u64_at(page, ph + 8), u64_at(page, ph + 32)) else {
            break;
        };
        let notes = usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| page.get(o..o.checked_add(s)?));
        if let Some(notes) = notes {
            read_notes(notes, &mut ids);
        }
    }
    ids
}

fn read_notes(mut notes: &[u8], ids: &mut BuildIds) {
    for _ in 0..MAX_NOTES {
        let (Some(namesz), Some(descsz), Some(kind)) =
            (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
        else {
            return;
        };
        let name_end = 12usize.saturating_add(namesz as usize);
        let desc_start = align4(name_end);
        let desc_end = desc_start.saturating_add(descsz as usize);
        let (Some(name), Some(desc)) = (notes.get(12..name_end), notes.get(desc_start..desc_end))
        else {
            return;
        };
        match (name, kind) {
            (b"GNU\0", NT_GNU_BUILD_ID) => ids.gnu = Some(hex(desc)),
            (b"Go\0\0", NT_GO_BUILDID) => ids.go = Some(String::from_utf8_lossy(desc).into_owned()),
            _ => {}
        }
        let Some(rest) = notes.get(align4(desc_end)..) else {
            return;
        };
        notes = rest;
    }
}

fn align4(x: usize) -> usize {
    x.saturating_add(3) & !3
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with one PT_NOTE holding a GNU and a Go build ID.
    fn page(gnu: &[u8], go: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        p[..4].copy_from_slice(b"\x7fELF");
        p[32..40].copy_from_slice(&64u64.to_le_bytes());
        p[54..56].copy_from_slice(&56u16.to_le_bytes());
        p[56..58].copy_from_slice(&1u16.to_le_bytes());
        let mut notes = Vec::new();
        for (name, kind, desc) in [(&b"GNU\0"[..], 3u32, gnu), (&b"Go\0\0"[..], 4, go)] {
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&kind.to_le_bytes());
            notes.extend_from_slice(name);
            notes.extend_from_slice(desc);
            notes.resize(align4(notes.len()), 0);
        }
        p[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        p[72..80].copy_from_slice(&0x200u64.to_le_bytes());
        p[96..104].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        p[0x200..0x200 + notes.len()].copy_from_slice(&notes);
        p
    }

    #[test]
    fn names_the_build_id_that_differs() {
        let a = page(&[1, 2, 3], b"abc/def");
        assert_eq!(compare(&a, &a, 0x400000), Ok(Checked::Same));
        let b = page(&[1, 2, 4], b"abc/def");
        let e = compare(&a, &b, 0x400000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GNU build IDs differ (target: 010203, executable: 010204)"
        );
        let c = page(&[1, 2, 3], b"abc/xyz");
        assert!(matches!(
            compare(&a, &c, 0x400000),
            Err(Mismatch::BuildId { kind: "Go", .. })
        ));
        let mut d = a.clone();
        d[0x800] = 9;
        assert_eq!(
            compare(&a, &d, 0x400000),
            Err(Mismatch::Bytes {
                addr: 0x400800,
                target: vec![0; 8],
                exe: vec![9, 0, 0, 0, 0, 0, 0, 0],
            })
        );
    }

    #[test]
    fn hostile_headers_end_the_walk() {
        let mut a = page(&[1], b"x");
        a[96..104].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(build_ids(&a), BuildIds::default());
        let mut b = page(&[1], b"x");
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(build_ids(&b), BuildIds::default());
        let mut c = page(&[1], b"x");
        c[0x204..0x208].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_ids(&c), BuildIds::default());
        assert_eq!(build_ids(&[]), BuildIds::default());
    }
}
