//! Symbols and DWARF from another file than the executable that runs: an
//! unstripped rebuild of the same source (`--symbols FILE`), or a separate
//! debug file (`objcopy --only-keep-debug`), named by `--symbols`, by the
//! executable's `.gnu_debuglink` or by its GNU build ID under
//! `/usr/lib/debug/.build-id/`.
//!
//! A file is taken only once it is shown to describe the very executable:
//! a rebuild must lay out every section of the program's memory image at
//! the same address and size and have the same code and function table,
//! byte for byte; a debug-only file (no code in it) must carry the same
//! GNU build ID, or the CRC-32 the executable's debuglink records. Anything
//! else would put names and values on the wrong addresses: a plausible
//! wrong answer.

use std::path::{Path, PathBuf};

use super::image::Image;
use super::{Binary, BinaryError};

/// Where debug files live by GNU build ID and by debuglink (gdb's default
/// `debug-file-directory`).
const DEBUG_ROOT: &str = "/usr/lib/debug";

/// Why a symbols file was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SymbolsError {
    #[error("{}: {cause}", file.display())]
    Unreadable { file: PathBuf, cause: BinaryError },
    /// Not a Go executable nor a debug file of one.
    #[error("{} is not a Go executable or a Go program's debug file: {why}", file.display())]
    NotGo { file: PathBuf, why: String },
    /// A Go file, but not of this executable.
    #[error("{} does not describe the executable: {what}", file.display())]
    Mismatch { file: PathBuf, what: String },
}

/// The code sections whose bytes a rebuild must share with the executable.
const SAME_BYTES: [&str; 2] = [".text", ".gopclntab"];

/// A symbols file checked against an executable, ready to be added to it
/// ([`Binary::with_symbols`]).
pub struct SymbolsFile {
    image: Image,
    pub path: PathBuf,
}

impl Binary {
    /// Adds a checked symbols file: symbols and DWARF are read from it from
    /// now on.
    pub fn with_symbols(self, file: SymbolsFile) -> Binary {
        Binary {
            debug: Some(std::sync::Arc::new(file.image)),
            symbols: std::sync::OnceLock::new(),
            ..self
        }
    }

    /// Opens `file` and checks that it describes this executable (see the
    /// module comment).
    pub fn symbols_file(&self, file: &Path) -> Result<SymbolsFile, SymbolsError> {
        let debug = Image::open(file).map_err(|cause| SymbolsError::Unreadable {
            file: file.to_path_buf(),
            cause,
        })?;
        let mismatch = |what: String| SymbolsError::Mismatch {
            file: file.to_path_buf(),
            what,
        };
        let has_dwarf =
            debug.section(".debug_info").is_some() || debug.section(".zdebug_info").is_some();
        let has_symtab = debug.section(".symtab").is_some();
        let go = debug.section(".gopclntab").is_some() || debug.section(".go.buildinfo").is_some();
        if !go {
            return Err(SymbolsError::NotGo {
                file: file.to_path_buf(),
                why: "it has no Go function table (.gopclntab)".into(),
            });
        }
        if !has_dwarf && !has_symtab {
            return Err(mismatch(
                "it has neither DWARF nor a symbol table to add".into(),
            ));
        }
        let code_in_file = debug
            .section(".text")
            .is_some_and(|s| s.file_offset.is_some());
        if code_in_file {
            same_build(&self.image, &debug).map_err(mismatch)?;
        } else {
            same_debug_file(&self.image, &debug).map_err(mismatch)?;
        }
        Ok(SymbolsFile {
            image: debug,
            path: file.to_path_buf(),
        })
    }

    /// A separate debug file for this executable where gdb looks for one
    /// (by GNU build ID, then by debuglink beside `exe`), when the
    /// executable has no DWARF; `None` if there is none.
    pub fn find_debug_file(&self, exe: &Path) -> Option<PathBuf> {
        if self.has_dwarf() {
            return None;
        }
        let mut candidates = Vec::new();
        if let Some(id) = self.image.build_id.as_deref().filter(|id| id.len() >= 2) {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            candidates.push(
                Path::new(DEBUG_ROOT)
                    .join(".build-id")
                    .join(&hex[..2])
                    .join(format!("{}.debug", &hex[2..])),
            );
        }
        if let Some((name, _)) = &self.image.debuglink {
            // A name, never a path: a hostile note must not point anywhere.
            if !name.is_empty() && !name.contains('/') {
                let dir = exe.parent().unwrap_or(Path::new("/"));
                candidates.push(dir.join(name));
                candidates.push(dir.join(".debug").join(name));
                let abs = dir.strip_prefix("/").unwrap_or(dir);
                candidates.push(Path::new(DEBUG_ROOT).join(abs).join(name));
            }
        }
        candidates.into_iter().find(|p| p.is_file())
    }
}

/// A rebuild: every allocated section where the executable has it, and the
/// same code and function table.
fn same_build(exe: &Image, other: &Image) -> Result<(), String> {
    for sec in exe.sections().iter().filter(|s| s.alloc) {
        let Some(theirs) = other.section(&sec.name) else {
            return Err(format!("it has no {} section", sec.name));
        };
        if (theirs.addr, theirs.size) != (sec.addr, sec.size) {
            return Err(format!(
                "{} is at {:#x}, {:#x} bytes, in the executable but at {:#x}, {:#x} bytes, in it: \
                 another build (other source, flags or Go release; -ldflags=-s -w alone moves \
                 the data, as the binary records its build flags). goat needs the very build: \
                 ship a `strip`ped copy of the unstripped binary, or keep its debug file \
                 (objcopy --only-keep-debug)",
                sec.name, sec.addr, sec.size, theirs.addr, theirs.size
            ));
        }
    }
    for name in SAME_BYTES {
        let (ours, theirs) = (section_bytes(exe, name), section_bytes(other, name));
        match (ours, theirs) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
                let addr = exe.section(name).map_or(0, |s| s.addr) + at as u64;
                return Err(format!(
                    "its {name} differs from the executable's at {addr:#x} (another build of other source?)"
                ));
            }
            _ => return Err(format!("{name} cannot be read in both files")),
        }
    }
    Ok(())
}

/// A debug-only file: the same GNU build ID, or the CRC the executable's
/// debuglink records.
fn same_debug_file(exe: &Image, other: &Image) -> Result<(), String> {
    match (&exe.build_id, &other.build_id) {
        (Some(a), Some(b)) if a == b => return Ok(()),
        (Some(_), Some(_)) => return Err("its GNU build ID is not the executable's".into()),
        _ => {}
    }
    if let Some((_, crc)) = &exe.debuglink {
        let actual = crc32fast::hash(other.bytes());
        return if actual == *crc {
            Ok(())
        } else {
            Err(format!(
                "its CRC-32 is {actual:#010x}, the executable's .gnu_debuglink expects {crc:#010x}"
            ))
        };
    }
    Err(
        "it holds only debug information, and nothing ties it to the executable \
         (no GNU build ID in both, no .gnu_debuglink)"
            .into(),
    )
}

fn section_bytes<'a>(image: &'a Image, name: &str) -> Option<&'a [u8]> {
    let s = image.section(name)?;
    let off = usize::try_from(s.file_offset?).ok()?;
    let len = usize::try_from(s.size).ok()?;
    image.bytes().get(off..off.checked_add(len)?)
}
