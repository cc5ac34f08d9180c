//! A file of goat's own read through a memory map: `goat why`'s private
//! copy of a process, which its heap walk reads at random (a `pread` of a
//! 64 KiB block per word read was most of its time). The one `unsafe`
//! step lives here, not in the core reader, which parses hostile bytes and
//! forbids `unsafe`.

use std::fs::File;

/// Maps `file` read-only. Only for a file no one else can truncate or
/// rewrite while it is mapped (goat's own copy, unlinked as soon as it was
/// opened): a page gone would raise SIGBUS in goat.
pub fn map_private_copy(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the caller owns the file (unlinked, reachable by no name)
    // and nothing writes it after it was saved; the map is read-only.
    unsafe { memmap2::Mmap::map(file) }
}
