//! ELF core files: reading one (`reader`, a [`crate::process::Target`] like
//! a stopped process) and writing one of a live process (`writer`, `goat
//! core`).

mod progress;
pub mod reader;
pub mod writer;

pub use reader::{is_core_file, Compression, CoreError, CoreFile};
