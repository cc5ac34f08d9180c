//! `/proc/PID/maps` and `smaps`, parsed by hand: the final stop of a live
//! core reads `maps` of processes with many mappings, and the crate's
//! parser (a map of fields per mapping) costs more than the stop may spend.

use std::io;

use super::path;
use crate::process::Mapping;

/// One mapping, with what the core writer needs from smaps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
    /// File offset of `start`, in bytes.
    pub offset: u64,
    /// Path, pseudo-name (`[heap]`, `[vdso]`) or `None` when anonymous.
    pub path: Option<String>,
    /// smaps `Anonymous:` in kB: pages written (or never file-backed).
    pub anonymous_kb: u64,
    /// smaps `VmFlags:` two-letter codes (`dd` = VM_DONTDUMP, `io`, `ht` …).
    pub vm_flags: Vec<String>,
}

impl Vma {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Backed by a file (named by an absolute path).
    pub fn is_file(&self) -> bool {
        self.path.as_deref().is_some_and(|p| p.starts_with('/'))
    }
}

fn parse_header(line: &str) -> Option<Vma> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().map(str::trim_start).filter(|p| !p.is_empty());
    let (a, b) = range.split_once('-')?;
    if perms.len() < 4 {
        return None;
    }
    Some(Vma {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        read: perms[0] == b'r',
        write: perms[1] == b'w',
        exec: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        path: path.map(str::to_string),
        anonymous_kb: 0,
        vm_flags: Vec::new(),
    })
}

/// Parses `/proc/PID/smaps` (or `maps`: then nothing counts as written).
pub fn parse_smaps(text: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            if let Some(v) = out.last_mut() {
                let kb = rest.trim().trim_end_matches("kB").trim();
                v.anonymous_kb = kb.parse().unwrap_or(0);
            }
        } else if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(v) = out.last_mut() {
                v.vm_flags = rest.split_whitespace().map(str::to_string).collect();
            }
        } else if let Some(v) = parse_header(line) {
            if v.end > v.start {
                out.push(v);
            }
        }
    }
    out
}

/// `/proc/PID/smaps`: every mapping with its written pages and flags.
/// Reading it walks the page tables (tens of milliseconds at 2 GiB).
pub fn smaps(pid: i32) -> io::Result<Vec<Vma>> {
    Ok(parse_smaps(&std::fs::read_to_string(path(pid, "smaps"))?))
}

/// `/proc/PID/maps`: every mapping, without smaps' per-page facts.
pub fn maps(pid: i32) -> io::Result<Vec<Vma>> {
    Ok(parse_smaps(&std::fs::read_to_string(path(pid, "maps"))?))
}

/// `/proc/PID/maps` as [`Mapping`]s (empty if it cannot be read).
pub fn read_mappings(pid: i32) -> Vec<Mapping> {
    maps(pid)
        .unwrap_or_default()
        .into_iter()
        .map(|v| Mapping {
            start: v.start,
            end: v.end,
            readable: v.read,
            writable: v.write,
            executable: v.exec,
            private: !v.shared,
            offset: v.offset,
            path: v.path.as_deref().and_then(mapping_name),
        })
        .collect()
}

/// A maps name as `Mapping::path` has always given it (once by the
/// `procfs` crate, whose names the REPL shows): trimmed, `None` when
/// empty, an unknown `[pseudo]` name without its brackets, a SysV segment
/// as `/SYSVxxxxxxxx` without ` (deleted)`.
fn mapping_name(raw: &str) -> Option<String> {
    const KNOWN: [&str; 6] = [
        "[heap]",
        "[stack]",
        "[vdso]",
        "[vvar]",
        "[vsyscall]",
        "[rollup]",
    ];
    let p = raw.trim();
    if p.is_empty() {
        return None;
    }
    if KNOWN.contains(&p) || p.starts_with("[stack:") {
        return Some(p.to_string());
    }
    if let Some(inner) = p.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return Some(inner.to_string());
    }
    if p.starts_with("/SYSV") {
        if let Some(key) = p.get(..13) {
            return Some(key.to_string());
        }
    }
    Some(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_crate_that_gave_them_before() {
        assert_eq!(mapping_name(""), None);
        assert_eq!(mapping_name("  "), None);
        assert_eq!(mapping_name("[heap]").as_deref(), Some("[heap]"));
        assert_eq!(mapping_name("[stack:42]").as_deref(), Some("[stack:42]"));
        assert_eq!(mapping_name("[anon:x]").as_deref(), Some("anon:x"));
        assert_eq!(
            mapping_name("/SYSV0000abcd (deleted)").as_deref(),
            Some("/SYSV0000abcd")
        );
        assert_eq!(mapping_name("/SYSV12").as_deref(), Some("/SYSV12"));
        assert_eq!(
            mapping_name("/a b (deleted)").as_deref(),
            Some("/a b (deleted)")
        );
    }
}
