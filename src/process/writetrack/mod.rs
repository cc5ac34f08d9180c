//! Which pages of another process were written since goat last looked:
//! a userfaultfd borrowed from the target (`tracer/borrow_fd.rs`),
//! registered for asynchronous write protection ([`WriteTracker`]), and
//! `PAGEMAP_SCAN` ([`PageMap`]), which reports the written pages and
//! protects them again (Linux 6.7+). Used by live-mode cores
//! (`corefile/writer/live.rs`) and by `goat stacks`' pre-copy capture
//! (`goruntime/precopy.rs`): both copy while the target runs, then stop it
//! only to re-read what it wrote meanwhile.

pub mod pagescan;
mod uffd;

pub use pagescan::{category, PageMap, Query, Run};
pub use uffd::WriteTracker;
