//! goat: look inside running Go programs (and their cores) on Linux x86-64.
//!
//! The pipeline runs one way (see DESIGN.md):
//! `target` (bytes of a live process or core) → `binary` (pclntab, DWARF,
//! buildinfo) → `goruntime` (the scheduler's goroutines) → `report` / `repl`.

pub mod binary;
pub mod goruntime;
pub mod repl;
pub mod report;
pub mod snapshot;
pub mod target;
