//! The commands behind `main.rs`'s argument parsing, one file each.

pub mod core;
pub mod open;
pub mod phases;
pub mod session;
pub mod stacks;
