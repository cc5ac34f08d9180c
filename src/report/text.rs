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

use std::collections::HashMap;

use super::{at_least, print_name};
use crate::ascii::Put;
use crate::goruntime::{DumpInfo, Elision, Frame, FrameRef, Goroutine, GoroutineView, PcHasher};

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

/// A frame's text but its arguments, fp and sp ([`FrameRef::key`]),
/// made once per key: a frame is then four copies and two numbers, where
/// its fields one by one were the largest part of a big dump's time.
pub(super) struct Template {
    text: Vec<u8>,
    /// Where the arguments go (after `func(`) and the registers (after
    /// the line and offset); the rest is ` pc=0x..` and the line break.
    args_at: usize,
    regs_at: usize,
}

/// Templates by key, kept while a chunk is formatted.
#[derive(Default)]
pub(super) struct Templates {
    made: Vec<Template>,
    by_key: HashMap<(u64, u32), usize, PcHasher>,
    /// The key and template of each frame of the last goroutine, by its
    /// place in the goroutine: a service's goroutines share stacks, so
    /// the frame at the same place most often has the same key, and one
    /// comparison here costs less than the hash look-up (which was a
    /// twentieth of decoding at 100k goroutines).
    last: Vec<Option<((u64, u32), usize)>>,
}

impl Templates {
    /// The template of `f`, whose key is `key`, the `place`th frame of its
    /// goroutine; made the first time.
    fn get(&mut self, key: (u64, u32), place: usize, f: &FrameRef<'_>) -> &Template {
        let at = match self.last.get(place) {
            Some(&Some((k, at))) if k == key => at,
            _ => {
                let made = &mut self.made;
                let at = *self.by_key.entry(key).or_insert_with(|| {
                    made.push(template(f));
                    made.len() - 1
                });
                if self.last.len() <= place {
                    self.last.resize(place + 1, None);
                }
                self.last[place] = Some((key, at));
                at
            }
        };
        &self.made[at]
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.made.len()
    }
}

/// A decoded goroutine's block, followed by one blank line.
pub(super) fn view_block(
    out: &mut Vec<u8>,
    info: &DumpInfo,
    g: &GoroutineView<'_>,
    templates: &mut Templates,
) {
    let mut place = 0;
    goroutine_frames(out, info, g.header(), g.frames(), |out, f| {
        frame_from_template(out, f, templates, place);
        place += 1;
    });
    out.push(b'\n');
}

/// One goroutine's block, without the blank line that follows it.
pub(super) fn goroutine(out: &mut Vec<u8>, info: &DumpInfo, g: &Goroutine) {
    goroutine_frames(out, info, g, g.frames.iter().map(Frame::view), frame);
}

/// The block of the goroutine `g` showing `frames` (not `g.frames`), each
/// written by `frame`: the one layout for owned goroutines and for views
/// of a decoder's buffers.
fn goroutine_frames<'a>(
    out: &mut Vec<u8>,
    info: &DumpInfo,
    g: &Goroutine,
    frames: impl Iterator<Item = FrameRef<'a>>,
    mut frame: impl FnMut(&mut Vec<u8>, &FrameRef<'a>),
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
    if let Some(m) = g.wait_minutes.filter(|&m| m >= 1) {
        out.put(", ");
        out.idec(m);
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
    if f.inlined {
        inlined_frame(out, f);
        return;
    }
    frame_call(out, f);
    out.put(f.args);
    frame_site(out, f);
    frame_regs(out, f);
    frame_pc(out, f);
}

/// [`frame`], its fixed text from the template of its key.
/// `place`: the frame's among its goroutine's shown frames.
fn frame_from_template(
    out: &mut Vec<u8>,
    f: &FrameRef<'_>,
    templates: &mut Templates,
    place: usize,
) {
    let Some(key) = f.key else {
        return frame(out, f);
    };
    let t = templates.get(key, place, f);
    if f.inlined {
        out.extend_from_slice(&t.text);
        return;
    }
    out.extend_from_slice(&t.text[..t.args_at]);
    out.put(f.args);
    out.extend_from_slice(&t.text[t.args_at..t.regs_at]);
    frame_regs(out, f);
    out.extend_from_slice(&t.text[t.regs_at..]);
}

/// The text of `f` that its key fixes, in the pieces [`frame`] writes.
fn template(f: &FrameRef<'_>) -> Template {
    let mut text = Vec::new();
    if f.inlined {
        inlined_frame(&mut text, f);
        let n = text.len();
        return Template {
            text,
            args_at: n,
            regs_at: n,
        };
    }
    frame_call(&mut text, f);
    let args_at = text.len();
    frame_site(&mut text, f);
    let regs_at = text.len();
    frame_pc(&mut text, f);
    Template {
        text,
        args_at,
        regs_at,
    }
}

/// An inlined call: `func(...)` and its line.
fn inlined_frame(out: &mut Vec<u8>, f: &FrameRef<'_>) {
    out.put(print_name(f.function));
    out.put("(...)\n\t");
    out.put(f.file);
    out.push(b':');
    out.dec(u64::from(f.line));
    out.push(b'\n');
}

/// `func(`, before the arguments.
fn frame_call(out: &mut Vec<u8>, f: &FrameRef<'_>) {
    out.put(print_name(f.function));
    out.push(b'(');
}

/// After the arguments: `)`, the line, and the offset into the function.
fn frame_site(out: &mut Vec<u8>, f: &FrameRef<'_>) {
    out.put(")\n\t");
    out.put(f.file);
    out.push(b':');
    out.dec(u64::from(f.line));
    if f.offset > 0 {
        out.put(" +");
        out.hex(f.offset);
    }
}

fn frame_regs(out: &mut Vec<u8>, f: &FrameRef<'_>) {
    out.put(" fp=");
    out.hex(f.fp);
    out.put(" sp=");
    out.hex(f.sp);
}

fn frame_pc(out: &mut Vec<u8>, f: &FrameRef<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_ref<'a>(function: &'a str, inlined: bool, offset: u64, args: &'a str) -> FrameRef<'a> {
        FrameRef {
            function,
            file: "/src/main.go",
            line: 42,
            pc: 0x4a1234,
            offset,
            inlined,
            fp: 0xc000123000,
            sp: 0xc000122f00,
            args,
            key: Some((0x4a1234, u32::from(inlined))),
        }
    }

    /// A frame written from its key's template is what `frame` writes,
    /// the first time (template made) and after (template reused, with
    /// other arguments and registers).
    #[test]
    fn templates_write_what_frame_writes() {
        let mut templates = Templates::default();
        for (f, offset) in [("main.work", 0x1f), ("runtime.gopanic", 0), ("main.inl", 3)] {
            for inlined in [false, true] {
                for (args, fp) in [("0x1, 0x2", 0xc000123000), ("{...}", 0x7ffc00001000)] {
                    let mut r = frame_ref(f, inlined, offset, args);
                    r.fp = fp;
                    r.sp = fp - 0x40;
                    r.key = r.key.map(|(pc, k)| (pc + offset, k));
                    r.pc += offset;
                    let (mut want, mut got) = (Vec::new(), Vec::new());
                    frame(&mut want, &r);
                    frame_from_template(&mut got, &r, &mut templates, 0);
                    // And at a place whose last key was another's.
                    let mut again = Vec::new();
                    frame_from_template(&mut again, &r, &mut templates, 1);
                    assert_eq!(again, got);
                    assert_eq!(String::from_utf8(got), String::from_utf8(want));
                }
            }
        }
        assert_eq!(templates.len(), 6);
    }
}
