//! A file of goat's own read through a memory map: `goat why`'s and `goat
//! heap`'s private copy of a process, which their heap walks read at
//! random (a `pread` of a 64 KiB block per word read was most of its
//! time). The one `unsafe` step lives here, not in the core reader, which
//! parses hostile bytes and forbids `unsafe`.
//!
//! Every page of the map that goat touched counts in its resident set
//! until the kernel reclaims it: walking a 1 GiB copy made goat's RSS
//! the copy's size over its own. [`BoundedMap`] gives the pages back
//! (`MADV_DONTNEED`: they stay in the page cache, and a later read maps
//! them again) whenever goat's file-backed resident pages pass a budget.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Maps `file` read-only. Only for a file no one else can truncate or
/// rewrite while it is mapped (goat's own copy, unlinked as soon as it was
/// opened): a page gone would raise SIGBUS in goat.
pub fn map_private_copy(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the caller owns the file (unlinked, reachable by no name)
    // and nothing writes it after it was saved; the map is read-only.
    unsafe { memmap2::Mmap::map(file) }
}

/// goat's file-backed resident bytes (its own executable's pages too,
/// some 7 MiB) past which a [`BoundedMap`]'s pages are given back. What
/// `goat heap` keeps of a heap of 16M objects is some 250 MB of its own,
/// and the type walk reads the copy beside all of it: a bound of 48 MiB
/// (and 16 MiB between looks) was a sixth of the peak. Pages given back
/// are read again from the page cache, not the disk.
const RESIDENT_BUDGET: u64 = 24 << 20;
/// Bytes that reads may have mapped between two looks at the resident
/// set (a `pread` of `statm`): each read counts its length plus the
/// 64 KiB the kernel may map around a faulting page, so the budget is
/// passed by at most this much.
const LOOK_EVERY: u64 = 8 << 20;
/// What the kernel may map around one faulting page (`fault_around_bytes`).
const FAULT_AROUND: u64 = 64 << 10;

/// Bytes a thread counts on its own before adding them to a map's shared
/// count: one counter bumped by every word read of two threads moved its
/// cache line between their CPUs tens of millions of times in a `goat
/// why` of a million goroutines. The budget may be passed by this much
/// per thread more.
const COUNT_LOCALLY: u64 = 1 << 20;

thread_local! {
    /// This thread's bytes not yet added to a map's count (of whichever
    /// map it reads: a bound, not an account).
    static UNCOUNTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Adds `n` to this thread's count: `Some(total)` when the total is due
/// to be added to the shared one (and this thread's starts again).
fn count_locally(n: u64) -> Option<u64> {
    UNCOUNTED.with(|c| {
        let total = c.get().saturating_add(n);
        match total >= COUNT_LOCALLY {
            true => {
                c.set(0);
                Some(total)
            }
            false => {
                c.set(total);
                None
            }
        }
    })
}

/// A [`map_private_copy`] whose resident pages stay near
/// [`RESIDENT_BUDGET`] however much of it is read.
pub struct BoundedMap {
    map: memmap2::Mmap,
    /// `/proc/self/statm`, read again in place (`pread` at 0).
    statm: Option<File>,
    /// Bytes (as counted for [`LOOK_EVERY`]) read since the last look.
    since_look: AtomicU64,
}

impl BoundedMap {
    pub fn new(map: memmap2::Mmap) -> BoundedMap {
        BoundedMap {
            map,
            statm: File::open("/proc/self/statm").ok(),
            since_look: AtomicU64::new(0),
        }
    }

    /// The mapped bytes, for a read of `len` of them: call once per read.
    pub fn for_read(&self, len: usize) -> &[u8] {
        let counted = (len as u64).saturating_add(FAULT_AROUND);
        let Some(counted) = count_locally(counted) else {
            return &self.map;
        };
        if self.since_look.fetch_add(counted, Ordering::Relaxed) >= LOOK_EVERY {
            self.since_look.store(0, Ordering::Relaxed);
            if self.file_resident().is_some_and(|r| r > RESIDENT_BUDGET) {
                self.give_back();
            }
        }
        &self.map
    }

    /// Faults on the map read only the page they need: the analysis has
    /// said what it reads ([`crate::process::Memory::prefetch`]), and a
    /// read-around of the disk's size (8 MiB on some machines) per miss
    /// would bring in the stacks between the heap's spans.
    pub fn no_read_around(&self) {
        let _ = self.map.advise(memmap2::Advice::Random);
    }

    /// goat's file-backed and shared resident bytes (`statm`'s third
    /// field, in pages of 4 KiB on x86-64).
    fn file_resident(&self) -> Option<u64> {
        let mut buf = [0u8; 128];
        let n = self.statm.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        let pages: u64 = text.split_whitespace().nth(2)?.parse().ok()?;
        Some(pages.saturating_mul(4096))
    }

    /// Gives every resident page of the map back (what a read past the
    /// budget does; the owner calls it too before a long stretch
    /// without reads).
    pub fn give_back(&self) {
        // SAFETY: a read-only shared map of a file nothing writes (see
        // map_private_copy): a page dropped is read again from the file,
        // unchanged, by the next access, including one a slice handed
        // out earlier makes.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }
}

impl std::fmt::Debug for BoundedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedMap")
            .field("len", &self.map.len())
            .finish()
    }
}
