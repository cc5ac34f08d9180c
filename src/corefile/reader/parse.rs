//! Decoding the core's ELF header, program headers and notes, field by
//! field, every offset and count checked against the file.

use super::*;
use crate::process::USER_REGS_WORDS;

/// What the headers and notes say, before it becomes a [`CoreFile`].
#[derive(Default)]
pub(super) struct Parsed {
    pub(super) segments: Vec<Segment>,
    pub(super) file_maps: Vec<(u64, u64, u64, String)>,
    pub(super) threads: Vec<Thread>,
    /// The first thread whose `NT_PRSTATUS` names a current signal.
    pub(super) signalled: Option<i32>,
    pub(super) pid: Option<i32>,
    pub(super) command: Option<String>,
    pub(super) args: Option<String>,
    pub(super) entry: Option<u64>,
    pub(super) monotonic_ns: Option<i64>,
}

impl Parsed {
    pub(super) fn into_core(mut self, path: PathBuf, core: Source) -> CoreFile {
        self.segments.sort_by_key(|s| s.vaddr);
        let mut files: Vec<Backing> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut file_maps: Vec<FileMap> = self
            .file_maps
            .into_iter()
            .map(|(start, end, offset, name)| {
                let file = *index.entry(name.clone()).or_insert_with(|| {
                    files.push(Backing {
                        name,
                        local: None,
                        source: OnceLock::new(),
                    });
                    files.len() - 1
                });
                FileMap {
                    start,
                    end,
                    offset,
                    file,
                }
            })
            .collect();
        file_maps.sort_by_key(|m| m.start);
        let mut core = CoreFile {
            path,
            core,
            segments: self.segments,
            file_maps,
            files,
            exe_maps: Vec::new(),
            threads: self.threads,
            signalled: self.signalled,
            mappings: Vec::new(),
            pid: self.pid,
            command: self.command,
            args: self.args,
            entry: self.entry,
            monotonic_ns: self.monotonic_ns,
        };
        core.mappings = core.build_mappings();
        core
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub(super) struct Parser<'a> {
    pub(super) path: PathBuf,
    pub(super) src: &'a Source,
}

impl Parser<'_> {
    pub(super) fn not_core(&self, why: impl Into<String>) -> CoreError {
        CoreError::NotCore {
            path: self.path.clone(),
            why: why.into(),
        }
    }

    pub(super) fn malformed(&self, what: &'static str, offset: u64) -> CoreError {
        CoreError::Malformed {
            path: self.path.clone(),
            what,
            offset,
        }
    }

    pub(super) fn bytes(
        &self,
        off: u64,
        len: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, CoreError> {
        // Checked before allocating: a hostile length must not cost memory.
        let fits = off.checked_add(len).is_some_and(|end| end <= self.src.len);
        if !fits || len > MAX_NOTES_BYTES {
            return Err(self.malformed(what, off));
        }
        let len_usize = usize::try_from(len).map_err(|_| self.malformed(what, off))?;
        let mut v = vec![0u8; len_usize];
        if self.src.read_at(off, &mut v) {
            Ok(v)
        } else {
            Err(self.malformed(what, off))
        }
    }

    pub(super) fn parse(&self) -> Result<Parsed, CoreError> {
        let mut eh = [0u8; 64];
        if !self.src.read_at(0, &mut eh) {
            return Err(self.not_core("too short for an ELF header"));
        }
        if &eh[..4] != b"\x7fELF" {
            return Err(self.not_core("no ELF magic"));
        }
        if eh[4] != 2 || eh[5] != 1 {
            return Err(self.not_core("not 64-bit little-endian"));
        }
        let e_type = u16_at(&eh, 16).unwrap_or(0);
        if e_type != ET_CORE {
            return Err(self.not_core(format!("ELF type {e_type}, not a core (4)")));
        }
        let machine = u16_at(&eh, 18).unwrap_or(0);
        if machine != EM_X86_64 {
            return Err(self.not_core(format!("machine {machine}, not x86-64 (62)")));
        }
        let phoff = u64_at(&eh, 32).unwrap_or(0);
        let shoff = u64_at(&eh, 40).unwrap_or(0);
        let phentsize = u64::from(u16_at(&eh, 54).unwrap_or(0));
        let mut phnum = u64::from(u16_at(&eh, 56).unwrap_or(0));
        if phnum == u64::from(PN_XNUM) {
            // The real count is in section header 0's sh_info.
            let sh = self.bytes(shoff, 64, "section header 0")?;
            phnum = u64::from(u32_at(&sh, 44).unwrap_or(0));
        }
        if phentsize < PHDR_SIZE || phnum > MAX_PHDRS {
            return Err(self.malformed("program header table", phoff));
        }
        let table = self.bytes(
            phoff,
            phnum * phentsize,
            "program header table (past the end of the file)",
        )?;

        let mut parsed = Parsed::default();
        let mut notes: Vec<(u64, u64)> = Vec::new();
        let mut want = 0u64;
        // (offset, end, header offset) of every segment with file bytes.
        let mut extents: Vec<(u64, u64, u64)> = Vec::new();
        for i in 0..phnum as usize {
            let ph = &table[i * phentsize as usize..][..PHDR_SIZE as usize];
            let field = |off| u64_at(ph, off).unwrap_or(0);
            let p_type = u32_at(ph, 0).unwrap_or(0);
            let seg = Segment {
                flags: u32_at(ph, 4).unwrap_or(0),
                offset: field(8),
                vaddr: field(16),
                filesz: field(32),
                memsz: field(40),
            };
            let ph_off = phoff + i as u64 * phentsize;
            let end = seg
                .offset
                .checked_add(seg.filesz)
                .ok_or_else(|| self.malformed("segment offset", ph_off))?;
            if matches!(p_type, PT_LOAD | PT_NOTE) && seg.filesz > 0 {
                extents.push((seg.offset, end, ph_off));
            }
            match p_type {
                PT_LOAD => {
                    if seg.vaddr.checked_add(seg.memsz).is_none() || seg.filesz > seg.memsz {
                        return Err(self.malformed("PT_LOAD segment", ph_off));
                    }
                    // A segment without file bytes has no offset to check.
                    if seg.filesz > 0 {
                        want = want.max(end);
                    }
                    parsed.segments.push(seg);
                }
                PT_NOTE => {
                    if seg.filesz > 0 {
                        want = want.max(end);
                    }
                    notes.push((seg.offset, seg.filesz));
                }
                _ => {}
            }
        }
        if want > self.src.len {
            if let Some(ph_off) = misplaced_segment(&extents, self.src.len) {
                return Err(self.malformed("segment offset (past the end of the file)", ph_off));
            }
            return Err(CoreError::Truncated {
                path: self.path.clone(),
                have: self.src.len,
                want,
            });
        }
        if notes.iter().map(|n| n.1).sum::<u64>() > MAX_NOTES_BYTES {
            return Err(self.malformed("note segments (too large)", phoff));
        }
        for (off, len) in notes {
            let data = self.bytes(off, len, "note segment")?;
            self.notes(&data, off, &mut parsed)?;
        }
        if parsed.segments.is_empty() {
            return Err(self.not_core("it has no memory segments"));
        }
        Ok(parsed)
    }

    pub(super) fn notes(&self, data: &[u8], base: u64, out: &mut Parsed) -> Result<(), CoreError> {
        let mut pos = 0usize;
        let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
        while pos + 12 <= data.len() {
            let at = base + pos as u64;
            let bad = || self.malformed("note header", at);
            let namesz = u32_at(data, pos).ok_or_else(bad)? as usize;
            let descsz = u32_at(data, pos + 4).ok_or_else(bad)? as usize;
            let kind = u32_at(data, pos + 8).ok_or_else(bad)?;
            let name_at = pos + 12;
            let desc_at = name_at
                .checked_add(pad(namesz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let next = desc_at
                .checked_add(pad(descsz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let desc = data
                .get(desc_at..desc_at.checked_add(descsz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            let name = data.get(name_at..name_at + namesz).ok_or_else(bad)?;
            match c_string(name).as_str() {
                "CORE" => self.note(kind, desc, at, out)?,
                // Version 1: version, 0, monotonic ns, realtime ns. A later
                // version may only append.
                "GOAT" if kind == NT_GOAT_CLOCKS => {
                    let version = u32_at(desc, 0).unwrap_or(0);
                    out.monotonic_ns = u64_at(desc, 8)
                        .filter(|_| version >= 1)
                        .map(|v| v as i64)
                        .filter(|&v| v > 0);
                }
                _ => {}
            }
            pos = next.min(data.len());
        }
        Ok(())
    }

    pub(super) fn note(
        &self,
        kind: u32,
        desc: &[u8],
        at: u64,
        out: &mut Parsed,
    ) -> Result<(), CoreError> {
        match kind {
            NT_PRSTATUS => {
                let bad = || self.malformed("NT_PRSTATUS note", at);
                let tid = u32_at(desc, PRSTATUS_PID).ok_or_else(bad)? as i32;
                let cursig = u16_at(desc, PRSTATUS_CURSIG).ok_or_else(bad)?;
                if cursig != 0 && out.signalled.is_none() {
                    out.signalled = Some(tid);
                }
                let mut r = [0u64; USER_REGS_WORDS];
                for (i, v) in r.iter_mut().enumerate() {
                    *v = u64_at(desc, PRSTATUS_REG + i * 8).ok_or_else(bad)?;
                }
                // The kernel records ids as the process's own pid
                // namespace sees them, as goat's cores do.
                out.threads.push(Thread {
                    tid,
                    ns_tid: None,
                    regs: Regs::from_words(&r),
                });
            }
            NT_PRPSINFO => {
                if let Some(pid) = u32_at(desc, PRPSINFO_PID) {
                    out.pid = Some(pid as i32);
                }
                out.command = desc.get(PRPSINFO_FNAME..PRPSINFO_FNAME + 16).map(c_string);
                out.args = desc
                    .get(PRPSINFO_PSARGS..PRPSINFO_PSARGS + 80)
                    .map(c_string);
            }
            NT_AUXV => {
                out.entry = desc
                    .chunks_exact(16)
                    .find(|kv| u64_at(kv, 0) == Some(AT_ENTRY))
                    .and_then(|kv| u64_at(kv, 8));
            }
            NT_FILE => out.file_maps = self.nt_file(desc, at)?,
            _ => {}
        }
        Ok(())
    }

    /// `count, page_size, count × (start, end, page offset), count × path\0`.
    pub(super) fn nt_file(
        &self,
        desc: &[u8],
        at: u64,
    ) -> Result<Vec<(u64, u64, u64, String)>, CoreError> {
        let bad = || self.malformed("NT_FILE note", at);
        let count = u64_at(desc, 0).ok_or_else(bad)?;
        let page = u64_at(desc, 8).ok_or_else(bad)?;
        // Each entry takes 24 bytes plus at least a NUL: the note bounds the count.
        if count > desc.len() as u64 / 25 {
            return Err(bad());
        }
        let count = count as usize;
        let mut names = desc
            .get(16 + count * 24..)
            .ok_or_else(bad)?
            .split(|&c| c == 0);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let e = 16 + i * 24;
            let start = u64_at(desc, e).ok_or_else(bad)?;
            let end = u64_at(desc, e + 8).ok_or_else(bad)?;
            let pgoff = u64_at(desc, e + 16).ok_or_else(bad)?;
            let name = names.next().ok_or_else(bad)?;
            if end < start {
                return Err(bad());
            }
            let offset = pgoff.checked_mul(page).ok_or_else(bad)?;
            out.push((
                start,
                end,
                offset,
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        Ok(out)
    }
}

/// Page size the writers align segment data to.
const PAGE: u64 = 4096;

/// Tells a core cut short from one whose header points a segment past the
/// end (a flipped `p_offset`): in a cut core the file's bytes run up to the
/// first segment that passes its end, so that segment starts inside the
/// file or at the aligned end of the data before it. A segment that starts
/// further out was not cut off; its header is wrong. Returns that header's
/// file offset.
fn misplaced_segment(extents: &[(u64, u64, u64)], len: u64) -> Option<u64> {
    let covered = extents
        .iter()
        .filter(|e| e.1 <= len)
        .map(|e| e.1)
        .max()
        .unwrap_or(0)
        .max(len);
    let first_past = extents.iter().filter(|e| e.1 > len).min_by_key(|e| e.0)?;
    let slack = covered.checked_next_multiple_of(PAGE)?.checked_add(PAGE)?;
    (first_past.0 > slack).then_some(first_past.2)
}
