//! Goroutine dumps as text (the runtime's own layout), JSON and groups.
//!
//! None of the writers reads the target. The three views:
//!
//! - [`Format::Text`]: byte for byte what the Go runtime prints for each
//!   goroutine on SIGQUIT (the "system" traceback level), for the release in
//!   the dump's `go_version`. See `text.rs` for the per-release rules.
//! - [`Format::Json`]: `{"go_version": .., "goroutines": [..]}`, one object
//!   per goroutine, a line each; see `json.rs` for the fields.
//! - [`Format::Grouped`]: goroutines with identical stacks collapsed into
//!   one block, largest group first (panicparse's view); see `group.rs`.
//! - [`Format::GroupedJson`]: the same groups as JSON,
//!   `{"go_version": .., "groups": [..]}`, a group per line; see `json.rs`.
//!
//! docs/json.md documents both JSON documents for their readers.
//!
//! Two ways to write them, with the same bytes:
//!
//! - a whole decoded [`Dump`]: [`write_text`], [`write_json`],
//!   [`write_grouped`], [`write_grouped_json`];
//! - a stream of goroutines that never all exist at once (what `goat
//!   stacks` does): a [`ChunkFormatter`] turns each chunk of goroutines
//!   into a [`Chunk`], on any thread (text and JSON become bytes; groups
//!   become a partial grouping that holds one copy of each distinct stack),
//!   and a [`StreamWriter`] writes the chunks in order, then
//!   [`StreamWriter::finish`] ends the document (or writes the groups,
//!   biggest first, which only the whole stream can tell).
//!
//! ```
//! use goat::goruntime::{DumpInfo, Goroutine};
//! use goat::report::{ChunkFormatter, Format, StreamWriter};
//!
//! fn write_all(
//!     info: &DumpInfo,
//!     chunks: impl Iterator<Item = Vec<Goroutine>>,
//!     out: &mut dyn std::io::Write,
//! ) -> std::io::Result<()> {
//!     let format = ChunkFormatter::new(info, Format::Json);
//!     let mut writer = StreamWriter::new(out, info, Format::Json);
//!     for gs in chunks {
//!         writer.write(format.format(&gs)?)?; // `format` may run elsewhere
//!     }
//!     writer.finish()
//! }
//! ```

// Parses what the target or its files hold: no `unsafe` is needed here,
// so none can creep in.
#![forbid(unsafe_code)]

mod group;
mod heap;
mod json;
pub mod pprof;
mod text;
mod why;
pub use heap::{heap_diff_text, heap_text, HeapTextOptions};
pub use why::{why_goroutine_text, why_text, write_why_text};

use std::io::{self, Write};

use crate::binary::GoVersion;
use crate::goruntime::{Dump, DumpInfo, Goroutine, GoroutineView};

pub use pprof::{GoroutineProfile, LabelValue, ProfileMapping};

/// Which view to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Grouped,
    GroupedJson,
}

/// Writes every goroutine as the runtime's SIGQUIT traceback does: each
/// block (header, frames, elision, `created by`) followed by one blank line.
pub fn write_text(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    write_dump(out, dump, Format::Text)
}

/// Writes the dump as one JSON object, a goroutine per line (see `json.rs`).
pub fn write_json(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    write_dump(out, dump, Format::Json)
}

/// [`write_grouped`] of the goroutines `gs`, the biggest `limit` groups
/// only (a session pages its output); returns how many groups there are.
pub fn write_grouped_first(
    out: &mut dyn Write,
    gs: &[&Goroutine],
    limit: usize,
) -> io::Result<usize> {
    let mut groups = group::Groups::default();
    for g in gs {
        groups.add(g);
    }
    groups.write_first(out, limit)
}

/// Writes goroutines grouped by identical stacks, biggest group first.
pub fn write_grouped(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    write_dump(out, dump, Format::Grouped)
}

/// Writes the groups of [`write_grouped`] as one JSON document, a group
/// per line (see `json.rs`).
pub fn write_grouped_json(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    write_dump(out, dump, Format::GroupedJson)
}

/// Goroutines grouped per chunk (see [`ChunkFormatter::chunk_goroutines`]).
const GROUPED_CHUNK_GOROUTINES: usize = 4096;

/// Goroutines formatted per chunk: dumps this large are formatted on
/// several threads, each chunk into its own buffer, then written in order.
const PARALLEL_MIN_GOROUTINES: usize = 10_000;
const CHUNK_GOROUTINES: usize = 256;

fn write_dump(out: &mut dyn Write, dump: &Dump, format: Format) -> io::Result<()> {
    let info = dump.info();
    let formatter = ChunkFormatter::new(&info, format);
    let mut writer = StreamWriter::new(out, &info, format);
    let gs = &dump.goroutines;
    let chunk = |i: usize| &gs[i * CHUNK_GOROUTINES..((i + 1) * CHUNK_GOROUTINES).min(gs.len())];
    crate::ordered::map_ordered(
        gs.len().div_ceil(CHUNK_GOROUTINES),
        crate::ordered::threads_for(gs.len(), PARALLEL_MIN_GOROUTINES),
        || (),
        |_, i| formatter.format(chunk(i)),
        |_| Err(io::Error::other("formatting thread panicked")),
        |c| writer.write(c?),
    )?;
    writer.finish()
}

/// Goroutines made ready for a [`StreamWriter`] by a [`ChunkFormatter`].
pub struct Chunk {
    goroutines: usize,
    body: Body,
}

enum Body {
    /// Text blocks, or JSON elements each preceded by `,\n`.
    Bytes(Vec<u8>),
    Groups(group::Groups),
}

/// Formats chunks of goroutines, on any thread (it is `Sync`).
#[derive(Debug, Clone)]
pub struct ChunkFormatter {
    info: DumpInfo,
    format: Format,
}

impl ChunkFormatter {
    pub fn new(info: &DumpInfo, format: Format) -> Self {
        ChunkFormatter {
            info: info.clone(),
            format,
        }
    }

    /// `gs`, formatted (or grouped) for the [`StreamWriter`] of the same
    /// format; the goroutines can be dropped at once.
    pub fn format(&self, gs: &[Goroutine]) -> io::Result<Chunk> {
        let mut chunk = self.begin(gs.len());
        for g in gs {
            self.add_goroutine(&mut chunk, g);
        }
        self.end(chunk)
    }

    /// How many goroutines of the list a chunk should hold. A grouped chunk
    /// keeps one copy per distinct stack, so a larger one costs little
    /// memory and copies, and merges, far fewer stacks: with 256 a chunk
    /// of a service's goroutines was mostly stacks new to it.
    pub fn chunk_goroutines(&self) -> usize {
        match self.format {
            Format::Grouped | Format::GroupedJson => GROUPED_CHUNK_GOROUTINES,
            Format::Text | Format::Json => crate::goruntime::CHUNK_GOROUTINES,
        }
    }

    /// An empty chunk with room for `goroutines`, to [`Self::add`] them to
    /// one by one and [`Self::end`].
    pub fn begin(&self, goroutines: usize) -> ChunkBuilder {
        let body = match self.format {
            // A service's goroutine takes about 4.3 KiB: room enough
            // that the buffer is seldom copied to grow.
            Format::Text => Body::Bytes(Vec::with_capacity(goroutines * 6144)),
            Format::Json => Body::Bytes(Vec::with_capacity(goroutines * 10240)),
            Format::Grouped | Format::GroupedJson => Body::Groups(group::Groups::default()),
        };
        ChunkBuilder {
            chunk: Chunk {
                goroutines: 0,
                body,
            },
            templates: text::Templates::default(),
            error: None,
        }
    }

    /// Adds a goroutine seen in a decoder's buffers
    /// ([`crate::goruntime::Decoder::stream_views`]): text is written from
    /// them in place, JSON serialized from them, and groups keyed in them
    /// (an owned copy per new stack).
    pub fn add(&self, c: &mut ChunkBuilder, g: &GoroutineView<'_>) {
        c.chunk.goroutines += 1;
        match &mut c.chunk.body {
            Body::Bytes(out) if self.format == Format::Text => {
                text::view_block(out, &self.info, g, &mut c.templates);
            }
            Body::Bytes(out) => {
                if let Err(e) = json::element(out, &json::decoded_view(g)) {
                    c.error.get_or_insert(e);
                }
            }
            Body::Groups(groups) => groups.add_view(g),
        }
    }

    fn add_goroutine(&self, c: &mut ChunkBuilder, g: &Goroutine) {
        c.chunk.goroutines += 1;
        match &mut c.chunk.body {
            Body::Bytes(out) if self.format == Format::Text => {
                text::goroutine(out, &self.info, g);
                out.push(b'\n');
            }
            Body::Bytes(out) => {
                let r = json::element(out, &json::view(g));
                if let Err(e) = r {
                    c.error.get_or_insert(e);
                }
            }
            Body::Groups(groups) => groups.add(g),
        }
    }

    /// The chunk made, or the first error in making it.
    pub fn end(&self, c: ChunkBuilder) -> io::Result<Chunk> {
        match c.error {
            Some(e) => Err(e),
            None => Ok(c.chunk),
        }
    }
}

/// A [`Chunk`] being made by a [`ChunkFormatter`], a goroutine at a time.
pub struct ChunkBuilder {
    chunk: Chunk,
    /// Text's frames by key (a chunk is formatted on one thread, and its
    /// keys come from that thread's decoder).
    templates: text::Templates,
    error: Option<io::Error>,
}

/// Writes [`Chunk`]s in the order given, as one document.
pub struct StreamWriter<'o> {
    out: &'o mut dyn Write,
    info: DumpInfo,
    format: Format,
    goroutines: usize,
    groups: group::Groups,
}

impl<'o> StreamWriter<'o> {
    /// Nothing is written before the first goroutine (a stream that turns
    /// out empty, an error for goat, leaves the output empty).
    pub fn new(out: &'o mut dyn Write, info: &DumpInfo, format: Format) -> Self {
        StreamWriter {
            out,
            info: info.clone(),
            format,
            goroutines: 0,
            groups: group::Groups::default(),
        }
    }

    /// Writes (or, grouped, merges in) the next chunk.
    pub fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        let first = self.goroutines == 0;
        self.goroutines += chunk.goroutines;
        match chunk.body {
            Body::Bytes(b) if self.format == Format::Json && first && !b.is_empty() => {
                self.out.write_all(&json::head(&self.info.go_version)?)?;
                // The first element has no comma before it.
                self.out.write_all(&b[1..])
            }
            Body::Bytes(b) => self.out.write_all(&b),
            Body::Groups(g) => {
                self.groups.merge(g);
                Ok(())
            }
        }
    }

    /// Goroutines written (or grouped) so far.
    pub fn goroutines(&self) -> usize {
        self.goroutines
    }

    /// Ends the document: the groups, or JSON's closing brackets (a JSON
    /// document with no goroutine is written whole here; grouped JSON is
    /// written whole here).
    pub fn finish(self) -> io::Result<()> {
        match self.format {
            Format::Text => Ok(()),
            Format::Json => {
                if self.goroutines == 0 {
                    self.out.write_all(&json::head(&self.info.go_version)?)?;
                }
                self.out.write_all(json::tail(self.goroutines > 0))
            }
            Format::Grouped => self.groups.write(self.out),
            Format::GroupedJson => self.groups.write_json(self.out, &self.info.go_version),
        }
    }
}

/// Whether the release is at least Go 1.`minor` (unknown versions count as new).
fn at_least(info: &DumpInfo, minor: u32) -> bool {
    GoVersion::go1_minor(&info.go_version).is_none_or(|m| m >= minor)
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
