//! The JSON views: a stable shape for scripts, independent of the model's
//! field names, documented field by field in docs/json.md (keep the two
//! together).
//!
//! `--json` (written without whitespace, but for a line break before each
//! goroutine and before the closing `]}`: one goroutine per line):
//!
//! ```text
//! {"go_version": "go1.21.13",
//!  "goroutines": [{"id", "gp" ("0x.." string), "status" (the runtime's
//!                  status name: "waiting", "running", ...),
//!                  "wait_reason" (string|null),
//!                  "wait_minutes" (number|null), "locked",
//!                  "thread" (kernel tid|null),
//!                  "frames": [{"function", "file", "line",
//!                              "pc" ("0x.." string), "inlined",
//!                              "args" (the text between the parentheses)}],
//!                  "elided": {"at", "count" (number|null)}   -- when elided
//!                  "created_by": {"function", "file", "line",
//!                                 "goroutine" (number|null)} | null,
//!                  "unreadable": string                       -- when unreadable
//!                 }]}
//! ```
//!
//! `--json --group`: `{"go_version", "groups": [..]}`, one group per line,
//! biggest first, each `{"count", "ids", "status", "wait_reason",
//! "wait_minutes" ({"min", "max"}|null), "locked", "frames" (without pc
//! and args, which differ between members), "elided", "created_by"
//! (without goroutine), "unreadable"}`.
//!
//! Addresses are strings in hex, as the text prints them: a JSON number
//! read as a double (JavaScript, jq before 1.7) loses precision past 2^53.

use std::io;

use serde::Serialize;

use crate::goruntime::{FrameRef, Goroutine, GoroutineView as DecodedView};

/// An address, serialized as the text prints it: `"0x4a3b2c"`.
#[derive(Clone, Copy)]
struct Hex(u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

#[derive(Serialize)]
pub(super) struct GoroutineView<'a> {
    id: u64,
    gp: Hex,
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
    pc: Hex,
    inlined: bool,
    args: &'a str,
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
            pc: Hex(f.pc),
            inlined: f.inlined,
            args: f.args,
        }
    }
}

/// The view of `g`'s header with `frames`.
fn with_frames<'a>(g: &'a Goroutine, frames: Vec<FrameView<'a>>) -> GoroutineView<'a> {
    GoroutineView {
        id: g.id,
        gp: Hex(g.gp),
        status: g.runtime_status(),
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
    head_of(go_version, "goroutines")
}

/// The document up to the array named `array`.
fn head_of(go_version: &str, array: &str) -> io::Result<Vec<u8>> {
    let mut out = b"{\"go_version\":".to_vec();
    serde_json::to_writer(&mut out, go_version).map_err(io::Error::from)?;
    out.extend_from_slice(format!(",\"{array}\":[").as_bytes());
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
pub(super) fn element(out: &mut Vec<u8>, g: &impl Serialize) -> io::Result<()> {
    out.extend_from_slice(b",\n");
    serde_json::to_writer(&mut *out, g).map_err(io::Error::from)
}

/// One group of goroutines with the same stack (see `group.rs`).
#[derive(Serialize)]
pub(super) struct GroupView<'a> {
    count: usize,
    ids: &'a [u64],
    status: &'a str,
    wait_reason: Option<&'a str>,
    wait_minutes: Option<WaitRange>,
    locked: bool,
    frames: Vec<GroupFrameView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elided: Option<ElidedView>,
    created_by: Option<GroupCreatorView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<&'a str>,
}

/// The shortest and longest known wait of a group's members.
#[derive(Serialize)]
struct WaitRange {
    min: i64,
    max: i64,
}

#[derive(Serialize)]
struct GroupFrameView<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    inlined: bool,
}

#[derive(Serialize)]
struct GroupCreatorView<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
}

/// The view of a group whose members are `ids` (ascending), whose stack is
/// `first`'s, and whose known waits span `wait` (`None`: none known).
pub(super) fn group_view<'a>(
    first: &'a Goroutine,
    ids: &'a [u64],
    wait: Option<(i64, i64)>,
) -> GroupView<'a> {
    GroupView {
        count: ids.len(),
        ids,
        status: first.runtime_status(),
        wait_reason: first.wait_reason.as_deref(),
        wait_minutes: wait.map(|(min, max)| WaitRange { min, max }),
        locked: first.locked,
        frames: first
            .frames
            .iter()
            .map(|f| GroupFrameView {
                function: &f.function,
                file: &f.file,
                line: f.line,
                inlined: f.inlined,
            })
            .collect(),
        elided: first.elided.map(|e| ElidedView {
            at: e.at,
            count: e.count,
        }),
        created_by: first.created_by.as_ref().map(|c| GroupCreatorView {
            function: &c.function,
            file: &c.file,
            line: c.line,
        }),
        unreadable: first.unreadable.as_deref(),
    }
}

/// Writes the groups document: one group a line, as the goroutines'.
pub(super) fn write_groups<'a>(
    out: &mut dyn io::Write,
    go_version: &str,
    groups: impl Iterator<Item = GroupView<'a>>,
) -> io::Result<()> {
    let mut doc = head_of(go_version, "groups")?;
    let mut any = false;
    for g in groups {
        // No comma before the first element.
        doc.extend_from_slice(if any { b",\n" } else { b"\n" });
        serde_json::to_writer(&mut doc, &g).map_err(io::Error::from)?;
        any = true;
        if doc.len() >= 1 << 20 {
            out.write_all(&doc)?;
            doc.clear();
        }
    }
    doc.extend_from_slice(tail(any));
    out.write_all(&doc)
}
