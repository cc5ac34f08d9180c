//! goat: look inside running Go programs (and their cores) on Linux x86-64.
//!
//! The pipeline runs one way (see docs/ARCHITECTURE.md): `process` (bytes
//! of a live process, stopped by `tracer`, or of a core, read by
//! `corefile`) → `binary` (pclntab, DWARF, buildinfo) → `goruntime` (the
//! scheduler's goroutines) → `report` / `repl` / `corefile::writer`.

pub mod binary;
pub mod corefile;
pub mod goruntime;
pub mod outfile;
pub mod poll;
pub mod process;
pub mod repl;
pub mod report;
pub mod tracer;
