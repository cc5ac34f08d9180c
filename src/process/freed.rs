//! Memory goat freed, given back to the system.
//!
//! glibc keeps what a program frees for its next allocations: after `goat
//! why` drops a million goroutines' stack values (hundreds of MB, freed in
//! many small pieces from several threads' arenas), its RSS stayed at the
//! high mark while it built the answers on top. `malloc_trim` returns the
//! free pages of every arena.

/// Gives the pages of freed allocations back (nothing on a libc that
/// keeps none, or has no `malloc_trim`).
pub fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops `garbage` on a thread of its own, so that the caller goes on
/// while millions of small allocations are freed (or here, if no thread
/// can be started). The thread is not waited for: freeing memory is
/// nothing a process must finish before it exits.
pub fn drop_in_background<T: Send + 'static>(garbage: T) {
    // A failed spawn drops the closure, and `garbage` with it, here.
    let _ = std::thread::Builder::new()
        .name("goat-free".into())
        .spawn(move || drop(garbage));
}
