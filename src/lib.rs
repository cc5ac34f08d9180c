//! goat: look inside running Go programs (and their cores) on Linux x86-64.
//!
//! The pipeline runs one way (see docs/ARCHITECTURE.md): `process` (bytes
//! of a live process, stopped by `tracer`, or of a core, read by
//! `corefile`) → `binary` (pclntab, DWARF, buildinfo) → `goruntime` (the
//! scheduler's goroutines) → `report` / `repl` / `corefile::writer`.
//! `inspect` runs that pipeline end to end: open a pid or a core, get a
//! `Dump`, a session or a core file in one call.

// Every `unsafe` block says what makes it sound, so a reviewer can check
// the claim against the code next to it.
#![deny(clippy::undocumented_unsafe_blocks)]

mod ascii;
pub(crate) mod background;
pub mod binary;
pub mod corefile;
pub mod dap;
pub(crate) mod direct_io;
pub mod goruntime;
pub mod heap;
pub mod heapgraph;
pub mod heapwalk;
pub mod inspect;
pub mod ordered;
pub mod outfile;
pub mod poll;
pub mod process;
pub mod repl;
pub mod report;
pub mod session;
pub mod stdio;
pub mod tracer;
pub mod values;
pub mod why;

// The tests' one rule for missing inputs, shared with tests/common.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/common/require.rs"]
pub(crate) mod require;
