//! The executable's bytes and the ELF facts the rest of `binary` needs:
//! loadable segments (to map link-time addresses to file offsets), section
//! ranges by name, and the symbol table.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

use super::BinaryError;

/// The file's bytes. Read into memory rather than mapped: `memmap2::Mmap::map`
/// is `unsafe` (the file may be truncated under the mapping, which turns a
/// read into SIGBUS) and `binary/` has no `unsafe`. A Go binary is tens of MB.
type Storage = Vec<u8>;

/// A file-backed PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub writable: bool,
    pub executable: bool,
}

/// A section with its link-time address and, when it has file contents,
/// its file offset.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    pub file_offset: Option<u64>,
    /// SHF_ALLOC: part of the program's memory image.
    pub alloc: bool,
}

pub(crate) struct Image {
    storage: Storage,
    segments: Vec<Segment>,
    sections: Vec<Section>,
    is_pie: bool,
    /// The GNU build ID note (`.note.gnu.build-id`), if any.
    pub build_id: Option<Vec<u8>>,
    /// `.gnu_debuglink`: the separate debug file's name and its CRC-32.
    pub debuglink: Option<(String, u32)>,
}

impl Image {
    pub fn open(path: &Path) -> Result<Image, BinaryError> {
        Self::new(std::fs::read(path)?)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Image, BinaryError> {
        Self::new(bytes)
    }

    fn new(storage: Storage) -> Result<Image, BinaryError> {
        let data: &[u8] = &storage;
        let file = object::read::elf::ElfFile64::<object::Endianness>::parse(data)
            .map_err(|e| BinaryError::NotElf(e.to_string()))?;
        if !file.is_little_endian() {
            return Err(BinaryError::UnsupportedElf("big-endian"));
        }
        if file.architecture() != object::Architecture::X86_64 {
            return Err(BinaryError::UnsupportedElf("not x86-64"));
        }
        // e_type (offset 16) == ET_DYN (3).
        let is_pie = data.get(16..18) == Some(&[3, 0][..]);
        let segments = file
            .segments()
            .filter_map(|seg| {
                let (offset, filesz) = seg.file_range();
                let perms = seg.permissions();
                (filesz > 0).then_some(Segment {
                    vaddr: seg.address(),
                    offset,
                    filesz,
                    writable: perms.writable(),
                    executable: perms.executable(),
                })
            })
            .collect();
        let sections = file
            .sections()
            .filter_map(|sec| {
                let name = sec.name().ok()?.to_owned();
                let alloc = match sec.flags() {
                    object::SectionFlags::Elf { sh_flags, .. } => {
                        sh_flags.0 & object::elf::SHF_ALLOC.0 != 0
                    }
                    _ => false,
                };
                Some(Section {
                    name,
                    addr: sec.address(),
                    size: sec.size(),
                    file_offset: sec.file_range().map(|(off, _)| off),
                    alloc,
                })
            })
            .collect();
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let debuglink = file
            .gnu_debuglink()
            .ok()
            .flatten()
            .map(|(name, crc)| (String::from_utf8_lossy(name).into_owned(), crc));
        Ok(Image {
            storage,
            segments,
            sections,
            is_pie,
            build_id,
            debuglink,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage
    }

    pub fn is_pie(&self) -> bool {
        self.is_pie
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file offset of link-time address `vaddr`, when the `len` bytes
    /// starting there are all backed by one segment's file contents.
    pub fn file_offset(&self, vaddr: u64, len: u64) -> Option<usize> {
        let seg = self.segments.iter().find(|s| {
            vaddr >= s.vaddr
                && vaddr
                    .checked_add(len)
                    .is_some_and(|end| end <= s.vaddr.saturating_add(s.filesz))
        })?;
        let off = seg.offset.checked_add(vaddr - seg.vaddr)?;
        let end = off.checked_add(len)?;
        if end > self.bytes().len() as u64 {
            return None;
        }
        usize::try_from(off).ok()
    }

    pub fn read_static(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let off = self.file_offset(vaddr, len as u64)?;
        self.bytes().get(off..off.checked_add(len)?)
    }

    pub fn read_u64(&self, vaddr: u64) -> Option<u64> {
        let b = self.read_static(vaddr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    pub fn link_base(&self) -> u64 {
        if let Some(seg) = self.segments.iter().find(|s| s.offset == 0) {
            return seg.vaddr;
        }
        self.segments
            .iter()
            .map(|s| s.vaddr.wrapping_sub(s.offset))
            .min()
            .unwrap_or(0)
    }

    /// Every named `.symtab` symbol: name → (address, size).
    pub fn symbols(&self) -> HashMap<String, (u64, u64)> {
        let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(self.bytes())
        else {
            return HashMap::new();
        };
        let mut map = HashMap::new();
        for sym in file.symbols() {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() {
                continue;
            }
            map.entry(name.to_owned())
                .or_insert((sym.address(), sym.size()));
        }
        map
    }
}
