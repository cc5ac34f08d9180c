//! The commands behind `main.rs`'s argument parsing, one file each: they
//! call `goat::inspect`, print what it returns and leave exit codes to
//! `main.rs`.

pub mod core;
pub mod heap;
pub mod session;
pub mod stacks;
pub mod why;

/// Prints a library warning the way goat always has.
pub fn warn(w: goat::inspect::Warning) {
    goat::eprintln_quiet!("goat: warning: {w}");
}
