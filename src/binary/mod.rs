//! ELF, pclntab, DWARF and buildinfo views of a Go executable.
//!
//! Everything here reads the executable file only (never the process), at
//! link-time addresses; callers add the PIE load bias themselves. Every read
//! is bounded and fallible: a truncated or hostile file yields a
//! [`BinaryError`] that says where parsing failed, never a panic.

// Parses what the target or its files hold: no `unsafe` is needed here,
// so none can creep in.
#![forbid(unsafe_code)]

mod buildinfo;
pub mod dwarf;
pub mod dwarf_vars;
mod image;
mod inline;
pub mod lines;
mod moduledata;
mod pclntab;
mod pcvalue;
mod runtime_version;
mod symbols_file;
mod version;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use image::Image;
pub use pclntab::{Func, Pclntab, SourceFrame};
pub use symbols_file::{SymbolsError, SymbolsFile};
pub use version::GoVersion;

/// Why a Go executable could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BinaryError {
    #[error("cannot read executable: {0}")]
    Io(Arc<std::io::Error>),
    #[error("not an ELF file: {0}")]
    NotElf(String),
    #[error("unsupported ELF file: {0} (goat reads 64-bit little-endian x86-64 executables)")]
    UnsupportedElf(&'static str),
    #[error("not a Go executable: no pclntab found")]
    NotGo,
    #[error("unsupported pclntab version (magic {magic:#x}); goat reads Go 1.18 and later")]
    UnsupportedPclntab { magic: u32 },
    #[error("malformed {what} at file offset {offset:#x}")]
    Malformed { what: &'static str, offset: u64 },
    #[error("pc {pc:#x} is not covered by the {table} table of its function")]
    PcNotCovered { table: &'static str, pc: u64 },
    #[error("no line information for pc {pc:#x}")]
    NoLineInfo { pc: u64 },
    #[error(
        "function data base (go:func.*) not found; cannot read funcdata of function at {entry:#x}"
    )]
    NoFuncDataBase { entry: u64 },
    #[error("address range {addr:#x}+{len:#x} is not backed by the file")]
    NotFileBacked { addr: u64, len: u64 },
}

impl From<std::io::Error> for BinaryError {
    fn from(e: std::io::Error) -> Self {
        BinaryError::Io(Arc::new(e))
    }
}

/// A Go executable, opened read-only.
pub struct Binary {
    image: Arc<Image>,
    /// Where symbols and DWARF come from when not from `image`: a rebuild
    /// or a debug file checked to describe it (`symbols_file.rs`).
    debug: Option<Arc<Image>>,
    build_info: Option<buildinfo::BuildInfo>,
    symbols: OnceLock<HashMap<String, (u64, u64)>>,
    /// Sized symbols by address, built on first use of `symbol_at`.
    by_address: OnceLock<Vec<(u64, u64, String)>>,
    pclntab: OnceLock<Result<Pclntab, BinaryError>>,
    /// `runtime.buildVersion`, read when there is no build info.
    runtime_version: OnceLock<Option<String>>,
}

/// Where [`Binary::go_version`] found the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOrigin {
    /// The `.go.buildinfo` blob.
    BuildInfo,
    /// The runtime's own `runtime.buildVersion` string (no build info).
    Runtime,
}

impl std::fmt::Debug for Binary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binary")
            .field("len", &self.image.bytes().len())
            .field("go_version", &self.go_version())
            .field("is_pie", &self.is_pie())
            .finish_non_exhaustive()
    }
}

impl Binary {
    /// Memory-maps and indexes the executable at `path`.
    pub fn open(path: &Path) -> Result<Binary, BinaryError> {
        Self::from_image(Image::open(path)?)
    }

    /// Indexes an executable held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Binary, BinaryError> {
        Self::from_image(Image::from_bytes(bytes)?)
    }

    fn from_image(image: Image) -> Result<Binary, BinaryError> {
        let build_info = buildinfo::parse(&image);
        Ok(Binary {
            image: Arc::new(image),
            debug: None,
            build_info,
            symbols: OnceLock::new(),
            by_address: OnceLock::new(),
            pclntab: OnceLock::new(),
            runtime_version: OnceLock::new(),
        })
    }

    /// The Go version that built the binary ("go1.21.13"): from
    /// `.go.buildinfo`, else from the runtime's `runtime.buildVersion`.
    pub fn go_version(&self) -> Option<&str> {
        self.go_version_with_origin().map(|(v, _)| v)
    }

    /// [`Self::go_version`] and where it was found.
    pub fn go_version_with_origin(&self) -> Option<(&str, VersionOrigin)> {
        if let Some(v) = self.build_info_version() {
            return Some((v, VersionOrigin::BuildInfo));
        }
        self.runtime_version
            .get_or_init(|| runtime_version::find(self, self.pclntab().ok()))
            .as_deref()
            .map(|v| (v, VersionOrigin::Runtime))
    }

    /// The version `.go.buildinfo` records, if the binary has one.
    pub fn build_info_version(&self) -> Option<&str> {
        self.build_info.as_ref().map(|b| b.version.as_str())
    }

    /// A build setting the module info records (`GOEXPERIMENT`): the value
    /// of its `build\tKEY=VALUE` line; `None` when the binary has no build
    /// information or no such line (the toolchain's default was used).
    pub fn build_setting(&self, key: &str) -> Option<&str> {
        self.build_info.as_ref()?.setting(key)
    }

    /// The main module's path (the `path` line of the module info).
    pub fn module_path(&self) -> Option<&str> {
        self.build_info.as_ref()?.module_path()
    }

    /// Whether the executable is position independent (ELF type ET_DYN).
    pub fn is_pie(&self) -> bool {
        self.image.is_pie()
    }

    /// Whether DWARF debug information is present (in the executable or
    /// the symbols file).
    pub fn has_dwarf(&self) -> bool {
        let has =
            |i: &Image| i.section(".debug_info").is_some() || i.section(".zdebug_info").is_some();
        has(self.debug_image())
    }

    /// The ELF file DWARF and symbols are read from: the symbols file when
    /// one was added, else the executable.
    pub fn debug_data(&self) -> &[u8] {
        self.debug_image().bytes()
    }

    fn debug_image(&self) -> &Image {
        self.debug.as_deref().unwrap_or(&self.image)
    }

    /// Whether the executable (or its symbols file) has a symbol table:
    /// `-ldflags=-s` strips it.
    pub fn has_symbols(&self) -> bool {
        !self
            .symbols
            .get_or_init(|| self.debug_image().symbols())
            .is_empty()
    }

    /// Link-time address of a `.symtab` symbol; `None` when stripped or absent.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbol_range(name).map(|(addr, _)| addr)
    }

    /// Link-time address and size of a `.symtab` symbol.
    pub fn symbol_range(&self, name: &str) -> Option<(u64, u64)> {
        self.symbols
            .get_or_init(|| self.debug_image().symbols())
            .get(name)
            .copied()
    }

    /// The sized `.symtab` symbol containing link-time `addr` (a package
    /// variable, for an address in data or bss): its name and range.
    pub fn symbol_at(&self, addr: u64) -> Option<(&str, u64, u64)> {
        let sorted = self.by_address.get_or_init(|| {
            let all = self.symbols.get_or_init(|| self.debug_image().symbols());
            let mut v: Vec<(u64, u64, String)> = all
                .iter()
                .filter(|(_, (_, size))| *size > 0)
                .map(|(name, (start, size))| (*start, *size, name.clone()))
                .collect();
            v.sort_unstable();
            v
        });
        let i = sorted.partition_point(|(start, _, _)| *start <= addr);
        let (start, size, name) = sorted.get(i.checked_sub(1)?)?;
        let end = start.checked_add(*size)?;
        (addr < end).then_some((name.as_str(), *start, end))
    }

    /// The file bytes at link-time addresses `vaddr..vaddr+len`, if file-backed.
    pub fn read_static(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        self.image.read_static(vaddr, len)
    }

    /// Link-time address range of an ELF section (kept even in binaries
    /// stripped of symbols), e.g. `.bss`.
    pub fn section_range(&self, name: &str) -> Option<(u64, u64)> {
        let s = self.image.section(name)?;
        Some((s.addr, s.addr.checked_add(s.size)?))
    }

    /// Whether link-time `addr` lies in `.bss` or `.noptrbss`, where the
    /// linker puts the runtime's zero-initialised globals.
    pub fn in_bss(&self, addr: u64) -> bool {
        [".bss", ".noptrbss"].iter().any(|name| {
            self.section_range(name)
                .is_some_and(|(start, end)| (start..end).contains(&addr))
        })
    }

    /// Link-time address the file's first byte maps to; the PIE load bias is
    /// the runtime address of the file's first mapping minus this.
    pub fn link_base(&self) -> u64 {
        self.image.link_base()
    }

    /// The file-backed part of each loadable segment, as `(link-time
    /// address, file offset, size)`: what a process maps from the file.
    pub fn file_segments(&self) -> Vec<(u64, u64, u64)> {
        self.image
            .segments()
            .iter()
            .map(|s| (s.vaddr, s.offset, s.filesz))
            .collect()
    }

    /// The ELF header's entry point (link-time), read from `e_entry`.
    pub fn entry(&self) -> Option<u64> {
        let b = self.image.bytes().get(24..32)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// The whole file.
    pub fn data(&self) -> &[u8] {
        self.image.bytes()
    }

    /// The function table, parsed on first use (the result, error included,
    /// is cached).
    pub fn pclntab(&self) -> Result<&Pclntab, BinaryError> {
        self.pclntab
            .get_or_init(|| {
                // Build info only: the runtime's string is found through
                // this very table.
                let version = self.build_info_version();
                let sym = |name: &str| self.symbol(name);
                Pclntab::parse(self.image.clone(), version, &sym)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// What `goat check` reports about an executable before attaching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryInfo {
    pub go_version: Option<String>,
    pub module_path: Option<String>,
    pub has_dwarf: bool,
    pub has_pclntab: bool,
    pub is_pie: bool,
}

/// Opens `path` and summarizes it for the preflight check.
pub fn inspect(path: &Path) -> Result<BinaryInfo, BinaryError> {
    let bin = Binary::open(path)?;
    Ok(BinaryInfo {
        go_version: bin.go_version().map(str::to_owned),
        module_path: bin.module_path().map(str::to_owned),
        has_dwarf: bin.has_dwarf(),
        has_pclntab: bin.pclntab().is_ok(),
        is_pie: bin.is_pie(),
    })
}

/// A function name as the Go runtime prints it in a traceback: the type
/// arguments of a generic function (or of a generic method's receiver and of
/// the method) are shown as `[...]`. Follows `funcNamePiecesForPrint` in the
/// runtime's traceback.go; malformed names are returned unchanged.
pub fn name_for_print(name: &str) -> Cow<'_, str> {
    let Some(open) = name.find('[') else {
        return Cow::Borrowed(name);
    };
    let Some(close) = name.rfind(']') else {
        return Cow::Borrowed(name);
    };
    if close <= open {
        return Cow::Borrowed(name);
    }
    let (head, tail) = (&name[..open], &name[close + 1..]);
    let interior = &name[open + 1..close];
    if !interior.contains('[') {
        return Cow::Owned(format!("{head}[...]{tail}"));
    }
    // A generic method of a generic type: "T[...]...]middle[...".
    let mut depth = 1i32;
    let (mut rbr, mut lbr) = (None, None);
    for (k, c) in interior.char_indices() {
        match c {
            '[' => {
                depth += 1;
                if depth == 1 {
                    lbr = Some(k);
                    break;
                }
            }
            ']' => {
                depth -= 1;
                if depth < 0 {
                    break;
                }
                if depth == 0 {
                    rbr = Some(k);
                }
            }
            _ => {}
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                let middle = &interior[r + 1..l];
                return Cow::Owned(format!("{head}[...]{middle}[...]{tail}"));
            }
            (None, None) => return Cow::Owned(format!("{head}[...]{tail}")),
            _ => {}
        }
    }
    Cow::Borrowed(name)
}
