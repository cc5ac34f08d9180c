//! The JSON view: a stable shape for scripts, independent of the model's
//! field names.
//!
//! ```text
//! {"go_version": "go1.21.13",
//!  "goroutines": [{"id", "gp", "status", "wait_reason" (string|null),
//!                  "wait_minutes", "locked", "thread" (kernel tid|null),
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

use std::io::{self, Write};

use serde::Serialize;

use crate::goruntime::{Dump, Goroutine};

#[derive(Serialize)]
struct DumpView<'a> {
    go_version: &'a str,
    goroutines: Vec<GoroutineView<'a>>,
}

#[derive(Serialize)]
struct GoroutineView<'a> {
    id: u64,
    gp: u64,
    status: &'a str,
    wait_reason: Option<&'a str>,
    wait_minutes: i64,
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

fn view(g: &Goroutine) -> GoroutineView<'_> {
    GoroutineView {
        id: g.id,
        gp: g.gp,
        status: &g.status,
        wait_reason: g.wait_reason.as_deref(),
        wait_minutes: g.wait_minutes,
        locked: g.locked,
        thread: g.m.map(|m| m.tid),
        frames: g
            .frames
            .iter()
            .map(|f| FrameView {
                function: &f.function,
                file: &f.file,
                line: f.line,
                pc: f.pc,
                inlined: f.inlined,
            })
            .collect(),
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

pub(super) fn write(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    let v = DumpView {
        go_version: &dump.go_version,
        goroutines: dump.goroutines.iter().map(view).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &v).map_err(io::Error::from)?;
    out.write_all(b"\n")
}
