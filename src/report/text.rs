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

use std::io::{self, Write};

use super::{at_least, print_name};
use crate::goruntime::{Dump, Elision, Frame, Goroutine};

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

/// Dumps this large are formatted on several threads, each into its own
/// buffer, then written in order.
const PARALLEL_MIN_GOROUTINES: usize = 10_000;

pub(super) fn write(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    let gs = &dump.goroutines;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || gs.len() < PARALLEL_MIN_GOROUTINES {
        return write_blocks(out, dump, gs);
    }
    // Format `threads` chunks at a time and write them in order, so at most
    // that many chunks are held in memory.
    let per = gs.len().div_ceil(threads * 4);
    let chunks: Vec<&[Goroutine]> = gs.chunks(per).collect();
    std::thread::scope(|s| {
        for batch in chunks.chunks(threads) {
            let handles: Vec<_> = batch
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut buf = Vec::with_capacity(chunk.len() * 1024);
                        write_blocks(&mut buf, dump, chunk).map(|()| buf)
                    })
                })
                .collect();
            for h in handles {
                let buf = h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("formatting thread panicked")))?;
                out.write_all(&buf)?;
            }
        }
        Ok(())
    })
}

fn write_blocks(out: &mut dyn Write, dump: &Dump, gs: &[Goroutine]) -> io::Result<()> {
    for g in gs {
        write_goroutine(out, dump, g)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// One goroutine's block, without the blank line that follows it.
pub(super) fn write_goroutine(out: &mut dyn Write, dump: &Dump, g: &Goroutine) -> io::Result<()> {
    write_header(out, dump, g)?;
    for (i, frame) in g.frames.iter().enumerate() {
        if let Some(e) = g.elided.filter(|e| e.at == i) {
            write_elision(out, e)?;
        }
        write_frame(out, frame)?;
    }
    if let Some(e) = g.elided.filter(|e| e.at >= g.frames.len()) {
        write_elision(out, e)?;
    }
    if let Some(reason) = &g.unreadable {
        writeln!(out, "\tgoroutine stack unreadable: {reason}")?;
    }
    if let Some(c) = &g.created_by {
        write!(out, "created by {}", print_name(&c.function))?;
        if let Some(parent) = c.goroutine.filter(|&p| p != 0) {
            write!(out, " in goroutine {parent}")?;
        }
        write!(out, "\n\t{}:{}", c.file, c.line)?;
        if c.offset > 0 {
            write!(out, " +{:#x}", c.offset)?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_header(out: &mut dyn Write, dump: &Dump, g: &Goroutine) -> io::Result<()> {
    write!(out, "goroutine {}", g.id)?;
    if dump.header_shows_gp {
        write!(out, " gp={:#x}", g.gp)?;
        match &g.m {
            Some(m) => write!(out, " m={} mp={:#x}", m.id, m.mp)?,
            None => out.write_all(b" m=nil")?,
        }
    }
    write!(out, " [{}", g.status)?;
    if g.status_code == G_LEAKED && at_least(dump, 26) {
        out.write_all(b" (leaked)")?;
    }
    if g.scan {
        out.write_all(b" (scan)")?;
    }
    if g.synctest_group.is_some() && at_least(dump, 25) && g.status_code == G_WAITING {
        let reason = g.wait_reason.as_deref().unwrap_or(&g.status);
        if IDLE_IN_SYNCTEST.contains(&reason) && !g.status.ends_with("(durable)") {
            out.write_all(b" (durable)")?;
        }
    }
    if g.wait_minutes >= 1 {
        write!(out, ", {} minutes", g.wait_minutes)?;
    }
    if g.locked {
        out.write_all(b", locked to thread")?;
    }
    if let Some(group) = g.synctest_group {
        let word = if at_least(dump, 25) {
            "bubble"
        } else {
            "group"
        };
        write!(out, ", synctest {word} {group}")?;
    }
    out.write_all(b"]:\n")
}

fn write_frame(out: &mut dyn Write, f: &Frame) -> io::Result<()> {
    let name = print_name(&f.function);
    if f.inlined {
        return write!(out, "{name}(...)\n\t{}:{}\n", f.file, f.line);
    }
    write!(out, "{name}({})\n\t{}:{}", f.args, f.file, f.line)?;
    if f.offset > 0 {
        write!(out, " +{:#x}", f.offset)?;
    }
    writeln!(out, " fp={:#x} sp={:#x} pc={:#x}", f.fp, f.sp, f.pc)
}

fn write_elision(out: &mut dyn Write, e: Elision) -> io::Result<()> {
    match e.count {
        Some(n) => writeln!(out, "...{n} frames elided..."),
        None => out.write_all(b"...additional frames elided...\n"),
    }
}
