//! A goroutine's frames decoded into a decoding thread's reusable buffers,
//! read through borrowed [`FrameRef`]s.
//!
//! A dump of a million goroutines prints 25 million frames. Made as owned
//! [`Frame`]s, each cost two shared-string clones and an argument `String`,
//! then a drop: at 100k goroutines a fifth of decoding went to making and
//! dropping them. Here a goroutine's physical frames hold one shared
//! reference to their PC's cached sources, arguments go into one buffer
//! reused for every goroutine, and the text layout reads it all in place.
//! JSON, groups and sessions still get owned [`Goroutine`]s, made from the
//! same buffers ([`GoroutineView::to_goroutine`]).

use std::ops::Range;
use std::sync::Arc;

use super::args::ArgsPlan;
use super::model::{Elision, FrameRef, Goroutine};
use super::unwind::{PhysFrame, StartRegs, UnwindError};

/// One source frame of a PC, kept per decoding thread: 100k goroutines
/// mostly stand at the same few dozen PCs.
#[derive(Clone)]
pub(super) struct CachedSource {
    pub(super) function: Arc<str>,
    pub(super) file: Arc<str>,
    pub(super) line: u32,
    pub(super) inlined: bool,
}

/// Everything about one link-time PC that 100k goroutines would otherwise
/// recompute: its source frames and how to print its arguments.
pub(super) struct PcInfo {
    pub(super) sources: Arc<[CachedSource]>,
    pub(super) args: ArgsPlan,
}

/// One physical frame of the goroutine being decoded.
struct Phys {
    info: Arc<PcInfo>,
    /// The index of its first printed frame among the goroutine's.
    first: usize,
    /// Whether the PC was symbolized one byte back (a return address) or
    /// as is (a trap): the same PC can stand for two places.
    backed: bool,
    pc: u64,
    offset: u64,
    fp: u64,
    sp: u64,
    /// Its arguments' text in [`FrameBuffers::args`] (empty when none of
    /// its printed frames is shown).
    args: Range<usize>,
}

/// Where a physical frame stands: its PC, the PC's offset into its
/// function, and the frame's fp and sp.
pub(super) struct FrameRegs {
    pub(super) pc: u64,
    pub(super) offset: u64,
    pub(super) fp: u64,
    pub(super) sp: u64,
}

/// The frames of the goroutine last decoded on a thread, kept from one
/// goroutine to the next so that their memory is reused.
#[derive(Default)]
pub(super) struct FrameBuffers {
    phys: Vec<Phys>,
    /// Every shown frame's argument text, one after another.
    args: String,
    /// Printed frames (inlined calls included) in all.
    printed: usize,
    /// Printed frames left out, by index: `[INNER, printed - OUTER)`.
    elided: Range<usize>,
}

impl FrameBuffers {
    /// Empties the buffers for the next goroutine.
    pub(super) fn clear(&mut self) {
        self.phys.clear();
        self.args.clear();
        self.printed = 0;
        self.elided = 0..0;
    }

    /// Adds a physical frame standing at a PC described by `info`, which
    /// was looked up one byte back from it (`backed`) or at it.
    pub(super) fn push(&mut self, info: Arc<PcInfo>, backed: bool, regs: FrameRegs) {
        let FrameRegs { pc, offset, fp, sp } = regs;
        let first = self.printed;
        self.printed += info.sources.len();
        self.phys.push(Phys {
            info,
            first,
            backed,
            pc,
            offset,
            fp,
            sp,
            args: 0..0,
        });
    }

    /// Formats the arguments of every physical frame with a shown,
    /// non-inlined printed frame, with `format(plan, fp, out)`.
    pub(super) fn format_args(&mut self, mut format: impl FnMut(&ArgsPlan, u64, &mut Vec<u8>)) {
        // Written as bytes and checked as UTF-8 once per goroutine: a
        // check per frame was a twentieth of decoding.
        let mut args = std::mem::take(&mut self.args).into_bytes();
        for p in &mut self.phys {
            let shown = (p.first..)
                .zip(p.info.sources.iter())
                .any(|(i, s)| !s.inlined && !self.elided.contains(&i));
            if shown {
                let start = args.len();
                format(&p.info.args, p.fp, &mut args);
                p.args = start..args.len();
            }
        }
        // The arguments are ASCII (`ArgsPlan::format_into`); were they not,
        // the ranges would no longer fit, and the frames show none.
        self.args = String::from_utf8(args).unwrap_or_default();
    }
}

/// A decoded goroutine: its header (a [`Goroutine`] whose `frames` is
/// empty, `elided` set) and its frames, borrowed from a thread's buffers.
pub struct GoroutineView<'a> {
    pub(super) header: &'a Goroutine,
    pub(super) frames: Option<&'a FrameBuffers>,
    /// The walk its decoding made, when one was made.
    pub(super) walk: Option<PriorWalk<'a>>,
}

/// A goroutine's walk as its decoding left it, lent to the stack scan that
/// follows (`stackroots`): the same start and stack need no second walk
/// and no second read of the stack's bytes (a million goroutines' `goat
/// why` read and unwound every stack twice).
#[derive(Clone, Copy)]
pub struct PriorWalk<'a> {
    pub(super) start: StartRegs,
    pub(super) hi: u64,
    pub(super) frames: &'a [PhysFrame],
    pub(super) error: Option<&'a UnwindError>,
    /// `[start.sp, ...)` of the stack as read; empty if it could not be.
    pub(super) window: &'a [u8],
}

impl<'a> GoroutineView<'a> {
    /// Everything about the goroutine but its frames.
    pub fn header(&self) -> &'a Goroutine {
        self.header
    }

    /// The walk its decoding made (see [`PriorWalk`]).
    pub fn prior_walk(&self) -> Option<PriorWalk<'a>> {
        self.walk
    }

    /// The frames shown, innermost first (elided ones left out; where
    /// they were is `header().elided`).
    pub fn frames(&self) -> impl Iterator<Item = FrameRef<'a>> + 'a {
        self.shown().map(|(r, _)| r)
    }

    /// The goroutine as an owned [`Goroutine`], its frames' names shared
    /// with the thread's caches.
    pub fn to_goroutine(&self) -> Goroutine {
        let mut g = self.header.clone();
        g.frames = self
            .shown()
            .map(|(r, s)| r.to_frame(s.function.clone(), s.file.clone()))
            .collect();
        g
    }

    /// The frames shown, each with the cached source it stands for.
    fn shown(&self) -> impl Iterator<Item = (FrameRef<'a>, &'a CachedSource)> + 'a {
        let elided = self.frames.map_or(0..0, |f| f.elided.clone());
        let args: &'a str = self.frames.map_or("", |f| &f.args);
        self.frames
            .map_or(&[][..], |f| &f.phys[..])
            .iter()
            .flat_map(|p| {
                p.info
                    .sources
                    .iter()
                    .enumerate()
                    .map(move |(k, s)| (k, p, s))
            })
            .filter(move |(k, p, _)| !elided.contains(&(p.first + k)))
            .map(move |(k, p, s)| {
                let frame = FrameRef {
                    function: &s.function,
                    file: &s.file,
                    line: s.line,
                    pc: p.pc,
                    offset: p.offset,
                    inlined: s.inlined,
                    fp: p.fp,
                    sp: p.sp,
                    args: match s.inlined {
                        true => "...",
                        false => args.get(p.args.clone()).unwrap_or(""),
                    },
                    // The PC, how it was looked up and which of its
                    // sources: all the text but arguments, fp and sp
                    // follows from them.
                    key: u32::try_from(k)
                        .ok()
                        .filter(|&k| k < 1 << 31)
                        .map(|k| (p.pc, k | u32::from(p.backed) << 31)),
                };
                (frame, s)
            })
    }
}

/// The release's elision rule applied to `bufs`: Go 1.21+ (`old_style`
/// `None`) prints the innermost `inner` and outermost `outer` printed
/// frames and says how many it left out between; older releases stop
/// after a number of physical frames (the caller pushes no more, and says
/// whether it `truncated`) and say so at the end.
pub(super) fn elision(
    bufs: &mut FrameBuffers,
    old_style: Option<bool>,
    inner: usize,
    outer: usize,
) -> Option<Elision> {
    match old_style {
        // Truncated at the physical limit: the note goes after the last.
        Some(truncated) => truncated.then_some(Elision {
            at: bufs.printed,
            count: None,
        }),
        None if bufs.printed > inner + outer => {
            let count = bufs.printed - inner - outer;
            bufs.elided = inner..inner + count;
            Some(Elision {
                at: inner,
                count: Some(count),
            })
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(function: &str, inlined: bool) -> CachedSource {
        CachedSource {
            function: function.into(),
            file: "f.go".into(),
            line: 7,
            inlined,
        }
    }

    /// A PC standing in `outer`, with `inlined` calls inlined into it.
    fn pc(inlined: &[&str], outer: &str) -> Arc<PcInfo> {
        let mut sources: Vec<CachedSource> = inlined.iter().map(|f| source(f, true)).collect();
        sources.push(source(outer, false));
        Arc::new(PcInfo {
            sources: sources.into(),
            args: ArgsPlan::default(),
        })
    }

    fn header() -> Goroutine {
        let mut g = super::super::decode::unreadable_g(0xc000);
        g.unreadable = None;
        g
    }

    /// Six printed frames from four PCs, the middle two left out: the
    /// frames shown, their arguments (formatted only for physical frames
    /// with a frame shown) and the owned copy agree.
    #[test]
    fn views_show_what_elision_leaves_and_match_the_owned_copy() {
        let mut b = FrameBuffers::default();
        b.push(pc(&["a"], "b"), true, regs(0x10, 0x100));
        b.push(pc(&[], "c"), true, regs(0x20, 0x200));
        b.push(pc(&["d"], "e"), true, regs(0x30, 0x300));
        b.push(pc(&[], "f"), true, regs(0x40, 0x400));
        let e = elision(&mut b, None, 2, 3);
        assert_eq!(e.map(|e| (e.at, e.count)), Some((2, Some(1))));
        let mut formatted = Vec::new();
        b.format_args(|_, fp, out| {
            formatted.push(fp);
            out.extend_from_slice(format!("{fp:#x}").as_bytes());
        });
        // `c` (the only frame at 0x200) is elided: its arguments unread.
        assert_eq!(formatted, vec![0x100, 0x300, 0x400]);
        let mut g = header();
        g.elided = e;
        let view = GoroutineView {
            header: &g,
            frames: Some(&b),
            walk: None,
        };
        let shown: Vec<(String, String)> = view
            .frames()
            .map(|f| (f.function.to_string(), f.args.to_string()))
            .collect();
        let want = [
            ("a", "..."),
            ("b", "0x100"),
            ("d", "..."),
            ("e", "0x300"),
            ("f", "0x400"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, a)| (f.to_string(), a.to_string()))
            .collect();
        assert_eq!(shown, want);
        let owned = view.to_goroutine();
        let owned: Vec<(String, String)> = owned
            .frames
            .iter()
            .map(|f| (f.function.to_string(), f.args.clone()))
            .collect();
        assert_eq!(owned, want);

        // Emptied for the next goroutine; the old rule marks truncation.
        b.clear();
        b.push(pc(&[], "g"), true, regs(0x50, 0x500));
        let e = elision(&mut b, Some(true), 2, 3);
        assert_eq!(e.map(|e| (e.at, e.count)), Some((1, None)));
        assert_eq!(elision(&mut b, Some(false), 2, 3).map(|e| e.at), None);
        let view = GoroutineView {
            header: &g,
            frames: Some(&b),
            walk: None,
        };
        assert_eq!(view.frames().count(), 1);

        // One PC reached as a return address and as a trap stands for two
        // places (looked up one byte apart): their keys differ.
        b.clear();
        b.push(pc(&[], "h"), true, regs(0x60, 0x600));
        b.push(pc(&[], "i"), false, regs(0x60, 0x700));
        let view = GoroutineView {
            header: &g,
            frames: Some(&b),
            walk: None,
        };
        let keys: Vec<_> = view.frames().map(|f| f.key).collect();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert!(keys.iter().all(|k| k.is_some_and(|k| k.0 == 0x60)));
    }

    fn regs(pc: u64, fp: u64) -> FrameRegs {
        FrameRegs {
            pc,
            offset: 1,
            fp,
            sp: fp - 0x10,
        }
    }
}
