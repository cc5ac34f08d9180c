//! The JSON view: a stable shape for scripts, independent of the model's
//! field names.
//!
//! Its shape (written without whitespace, but for a line break before each
//! goroutine and before the closing `]}`: one goroutine per line):
//!
//! ```text
//! {"go_version": "go1.21.13",
//!  "goroutines": [{"id", "gp", "status", "wait_reason" (string|null),
//!                  "wait_minutes" (number|null), "locked", "thread" (kernel tid|null),
//!                  "frames": [{"function", "file", "line", "pc", "inlined"}],
//!                  "elided": {"at", "count" (number|null)}   -- when elided
//!                  "created_by": {"function", "file", "line",
//!                                 "goroutine" (number|null)} | null,
//!                  "unreadable": string                       -- when unreadable
//!                 }]}
//! ```
//!
//! Addresses (`gp`, `pc`) are plain JSON numbers (all below 2^64; readers
//! that use doubles lose nothing for user-space x86-64 addresses < 2^53).

use std::io;

use serde::Serialize;

use crate::goruntime::{FrameRef, Goroutine, GoroutineView as DecodedView};

#[derive(Serialize)]
pub(super) struct GoroutineView<'a> {
    id: u64,
    gp: u64,
    status: &'a str,
    wait_reason: Option<&'a str>,
    wait_minutes: Option<i64>,
    locked: bool,
    thread: Option<i64>,
    frames: Vec<FrameView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elided: Option<ElidedView>,
    created_by: Option<CreatedByView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a str>,
}

#[derive(Serialize)]
struct FrameView<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    pc: u64,
    inlined: bool,
}

#[derive(Serialize)]
struct ElidedView {
    at: usize,
    count: Option<usize>,
}

#[derive(Serialize)]
struct CreatedByView<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    goroutine: Option<u64>,
}

pub(super) fn view(g: &Goroutine) -> GoroutineView<'_> {
    let frames = g.frames.iter().map(|f| FrameView::of(f.view())).collect();
    with_frames(g, frames)
}

/// [`view`] of a goroutine seen in a decoder's buffers (no owned copy).
pub(super) fn decoded_view<'a>(v: &DecodedView<'a>) -> GoroutineView<'a> {
    with_frames(v.header(), v.frames().map(FrameView::of).collect())
}

impl<'a> FrameView<'a> {
    fn of(f: FrameRef<'a>) -> Self {
        FrameView {
            function: f.function,
            file: f.file,
            line: f.line,
            pc: f.pc,
            inlined: f.inlined,
        }
    }
}

/// The view of `g`'s header with `frames`.
fn with_frames<'a>(g: &'a Goroutine, frames: Vec<FrameView<'a>>) -> GoroutineView<'a> {
    GoroutineView {
        id: g.id,
        gp: g.gp,
        status: &g.status,
        wait_reason: g.wait_reason.as_deref(),
        wait_minutes: g.wait_minutes,
        locked: g.locked,
        thread: g.m.map(|m| m.tid),
        frames,
        elided: g.elided.map(|e| ElidedView {
            at: e.at,
            count: e.count,
        }),
        created_by: g.created_by.as_ref().map(|c| CreatedByView {
            function: &c.function,
            file: &c.file,
            line: c.line,
            goroutine: c.goroutine,
        }),
        unreadable: g.unreadable.as_deref(),
    }
}

/// The document up to the goroutines' array: `{"go_version":..,"goroutines":[`.
pub(super) fn head(go_version: &str) -> io::Result<Vec<u8>> {
    let mut out = b"{\"go_version\":".to_vec();
    serde_json::to_writer(&mut out, go_version).map_err(io::Error::from)?;
    out.extend_from_slice(b",\"goroutines\":[");
    Ok(out)
}

/// The document after the array, which held `any` goroutines.
pub(super) fn tail(any: bool) -> &'static [u8] {
    match any {
        true => b"\n]}\n",
        false => b"]}\n",
    }
}

/// Appends the goroutine's object as an element of the array, preceded
/// by `,` and a line break (the writer drops the very first comma): one
/// goroutine per line, without other whitespace. Pretty-printed, a
/// million goroutines were 15 GB, 3.5 times their text dump, most of it
/// indentation; on one line each, `grep` finds whole goroutines and `jq`
/// reads the document as before.
pub(super) fn element(out: &mut Vec<u8>, g: &GoroutineView<'_>) -> io::Result<()> {
    out.extend_from_slice(b",\n");
    serde_json::to_writer(&mut *out, g).map_err(io::Error::from)
}
