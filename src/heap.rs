//! goat's own heap during a pre-copy capture.
//!
//! The final stop of `goat stacks` builds the same lists the copy made
//! while the target ran (the goroutines, their `g` reads, their stack
//! ranges: about 130 MB at a million goroutines). By default glibc gives
//! blocks that large fresh pages from `mmap` and returns them on `free`, so
//! the stop took 23k page faults, with the target stopped. Told to serve
//! every block from its heap and to keep what is freed there, glibc hands
//! the stop the pages the running copy already faulted in (6k faults left;
//! the stop's capture went from a median of 105 ms to 71 ms), and [`warm`]
//! faults in the rest before the stop (189 faults). The price is that
//! goat's RSS stays at its peak until it exits (400 MB against 262 MB at a
//! million goroutines; 68 MB against 53 MB at 100k).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Whether [`keep_freed_memory`] was called.
static KEEPING: AtomicBool = AtomicBool::new(false);

/// Makes glibc keep freed memory for reuse, for the rest of the process.
/// Process-wide, and called by a pre-copy capture (`Inspector::stacks` and
/// `write_stacks` in precopy mode): a program that embeds goat keeps its
/// heap's peak from then on. Not for a stop capture: its arena grows by
/// `realloc`, which copies a heap block where it remaps a mapped one.
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes allocator parameters; it takes the
        // allocator's lock and is safe to call at any time. Its failure
        // leaves the defaults, which are correct, only slower.
        unsafe {
            // No block from its own mapping (one that is unmapped on free);
            // glibc still maps one when the heap cannot grow.
            libc::mallopt(libc::M_MMAP_MAX, 0);
            // Never give the top of the heap back to the system.
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
        KEEPING.store(true, Ordering::Relaxed);
    });
}

/// Faults in `bytes` of heap now and leaves them free for what comes
/// next on this thread: the final stop's lists, which would otherwise
/// outgrow what the running copy freed and fault pages in while the target
/// is stopped (4k faults at a million goroutines). Nothing to do unless
/// freed memory is kept ([`keep_freed_memory`]): it would be unmapped.
pub fn warm(bytes: usize) {
    if !KEEPING.load(Ordering::Relaxed) || bytes == 0 {
        return;
    }
    let mut block = Vec::<u8>::new();
    if block.try_reserve_exact(bytes).is_err() {
        return;
    }
    // Written, so faulted in (zeroed memory from the allocator could be
    // left untouched).
    block.resize(bytes, 0);
    std::hint::black_box(&block);
}
