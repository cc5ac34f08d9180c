//! The runtime's SIGQUIT layout (`runtime/traceback.go`).
//!
//! Per release (all checked against the toolchain sources):
//!
//! - Header: `goroutine N` + (Go 1.22+, `dump.header_shows_gp`)
//!   ` gp=0x.. m=ID mp=0x..` or ` m=nil` + ` [status` + ` (leaked)` (1.26+,
//!   status `_Gleaked` = 10) + ` (scan)` + ` (durable)` (1.25+, in a synctest
//!   bubble, waiting for an idle-in-synctest reason whose text does not
//!   already end in `(durable)`) + `, N minutes` + `, locked to thread` +
//!   `, synctest group ROOT` (1.24) / `, synctest bubble ID` (1.25+) + `]:`.
//!   Goroutine labels (1.27 with `GODEBUG=tracebacklabels=1`) are not in the
//!   model and are not printed.
//! - Frame: `func(args)` / `\tfile:line` + ` +0xOFF` (offset > 0) +
//!   ` fp=0x.. sp=0x.. pc=0x..`; inlined frames print `func(...)` and
//!   `\tfile:line` only.
//! - Elision: `...N frames elided...` (1.21+, between the inner and outer
//!   frames), `...additional frames elided...` (before 1.21, at the end).
//! - `created by F` + ` in goroutine N` (1.21+) / `\tfile:line` + ` +0xOFF`.
//! - A stack goat could not read (the runtime has no such case for a
//!   stopped process) prints, after the frames that were read,
//!   `\tgoroutine stack unreadable: REASON`, in the style of the runtime's
//!   `\tgoroutine running on other thread; stack unavailable`.
//! - Each block is followed by one blank line (the runtime prints the blank
//!   line before each header; the SIGQUIT dump ends with one before the
//!   registers, so every block is followed by one).

use super::{at_least, print_name};
use crate::ascii::Put;
use crate::goruntime::{DumpInfo, Elision, Frame, FrameRef, Goroutine, GoroutineView};

/// `_Gwaiting`.
const G_WAITING: u32 = 4;
/// `_Gleaked` (Go 1.26+).
const G_LEAKED: u32 = 10;

/// Wait reasons for which `waitReason.isIdleInSynctest` is true (Go 1.27).
const IDLE_IN_SYNCTEST: &[&str] = &[
    "chan receive (nil chan)",
    "chan send (nil chan)",
    "select (no cases)",
    "sleep",
    "sync.Cond.Wait",
    "sync.WaitGroup.Wait (durable)",
    "coroutine",
    "synctest.Run",
    "synctest.Wait",
    "chan receive (durable)",
    "chan send (durable)",
    "select (durable)",
];

/// A decoded goroutine's block, followed by one blank line.
pub(super) fn view_block(out: &mut Vec<u8>, info: &DumpInfo, g: &GoroutineView<'_>) {
    goroutine_frames(out, info, g.header(), g.frames());
    out.push(b'\n');
}

/// One goroutine's block, without the blank line that follows it.
pub(super) fn goroutine(out: &mut Vec<u8>, info: &DumpInfo, g: &Goroutine) {
    goroutine_frames(out, info, g, g.frames.iter().map(Frame::view));
}

/// The block of the goroutine `g` showing `frames` (not `g.frames`): the
/// one layout for owned goroutines and for views of a decoder's buffers.
fn goroutine_frames<'a>(
    out: &mut Vec<u8>,
    info: &DumpInfo,
    g: &Goroutine,
    frames: impl Iterator<Item = FrameRef<'a>>,
) {
    header(out, info, g);
    let mut shown = 0;
    for f in frames {
        if let Some(e) = g.elided.filter(|e| e.at == shown) {
            elision(out, e);
        }
        frame(out, &f);
        shown += 1;
    }
    if let Some(e) = g.elided.filter(|e| e.at >= shown) {
        elision(out, e);
    }
    if let Some(reason) = &g.unreadable {
        out.put("\tgoroutine stack unreadable: ");
        out.put(reason);
        out.push(b'\n');
    }
    if let Some(c) = &g.created_by {
        out.put("created by ");
        out.put(print_name(&c.function));
        if let Some(parent) = c.goroutine.filter(|&p| p != 0) {
            out.put(" in goroutine ");
            out.dec(parent);
        }
        out.put("\n\t");
        out.put(&c.file);
        out.push(b':');
        out.dec(u64::from(c.line));
        if c.offset > 0 {
            out.put(" +");
            out.hex(c.offset);
        }
        out.push(b'\n');
    }
}

fn header(out: &mut Vec<u8>, info: &DumpInfo, g: &Goroutine) {
    out.put("goroutine ");
    out.dec(g.id);
    if info.header_shows_gp {
        out.put(" gp=");
        out.hex(g.gp);
        match &g.m {
            Some(m) => {
                out.put(" m=");
                out.idec(m.id);
                out.put(" mp=");
                out.hex(m.mp);
            }
            None => out.put(" m=nil"),
        }
    }
    out.put(" [");
    out.put(&g.status);
    if g.status_code == G_LEAKED && at_least(info, 26) {
        out.put(" (leaked)");
    }
    if g.scan {
        out.put(" (scan)");
    }
    if g.synctest_group.is_some() && at_least(info, 25) && g.status_code == G_WAITING {
        let reason = g.wait_reason.as_deref().unwrap_or(&g.status);
        if IDLE_IN_SYNCTEST.contains(&reason) && !g.status.ends_with("(durable)") {
            out.put(" (durable)");
        }
    }
    if g.wait_minutes >= 1 {
        out.put(", ");
        out.idec(g.wait_minutes);
        out.put(" minutes");
    }
    if g.locked {
        out.put(", locked to thread");
    }
    if let Some(group) = g.synctest_group {
        out.put(if at_least(info, 25) {
            ", synctest bubble "
        } else {
            ", synctest group "
        });
        out.dec(group);
    }
    out.put("]:\n");
}

fn frame(out: &mut Vec<u8>, f: &FrameRef<'_>) {
    out.put(print_name(f.function));
    if f.inlined {
        out.put("(...)\n\t");
        out.put(f.file);
        out.push(b':');
        out.dec(u64::from(f.line));
        out.push(b'\n');
        return;
    }
    out.push(b'(');
    out.put(f.args);
    out.put(")\n\t");
    out.put(f.file);
    out.push(b':');
    out.dec(u64::from(f.line));
    if f.offset > 0 {
        out.put(" +");
        out.hex(f.offset);
    }
    out.put(" fp=");
    out.hex(f.fp);
    out.put(" sp=");
    out.hex(f.sp);
    out.put(" pc=");
    out.hex(f.pc);
    out.push(b'\n');
}

fn elision(out: &mut Vec<u8>, e: Elision) {
    match e.count {
        Some(n) => {
            out.put("...");
            out.dec(n as u64);
            out.put(" frames elided...\n");
        }
        None => out.put("...additional frames elided...\n"),
    }
}
