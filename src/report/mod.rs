//! Goroutine dumps as text (the runtime's own layout), JSON and groups.
//!
//! Every writer takes a decoded [`Dump`] and an output stream; none of them
//! reads the target. The three views:
//!
//! - [`write_text`]: byte for byte what the Go runtime prints for each
//!   goroutine on SIGQUIT (the "system" traceback level), for the release in
//!   `dump.go_version`. See `text.rs` for the per-release rules.
//! - [`write_json`]: `{"go_version": .., "goroutines": [..]}`, one object per
//!   goroutine; see `json.rs` for the fields.
//! - [`write_grouped`]: goroutines with identical stacks collapsed into one
//!   block, largest group first (panicparse's view); see `group.rs`.

// Parses what the target or its files hold: no `unsafe` is needed here,
// so none can creep in.
#![forbid(unsafe_code)]

mod group;
mod json;
mod text;

use std::io::{self, Write};

use crate::binary::GoVersion;
use crate::goruntime::Dump;

/// Writes every goroutine as the runtime's SIGQUIT traceback does: each
/// block (header, frames, elision, `created by`) followed by one blank line.
pub fn write_text(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    text::write(out, dump)
}

/// Writes the dump as one pretty-printed JSON object followed by a newline.
pub fn write_json(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    json::write(out, dump)
}

/// Writes goroutines grouped by identical stacks, biggest group first.
pub fn write_grouped(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    group::write(out, dump)
}

/// Whether the release is at least Go 1.`minor` (unknown versions count as new).
fn at_least(dump: &Dump, minor: u32) -> bool {
    GoVersion::go1_minor(&dump.go_version).is_none_or(|m| m >= minor)
}

/// The name as the runtime's `printFuncName` shows it.
fn print_name(name: &str) -> &str {
    if name == "runtime.gopanic" {
        "panic"
    } else {
        name
    }
}

#[cfg(test)]
mod tests;
