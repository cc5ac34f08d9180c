//! The variables of a goroutine's frames that DWARF places in memory, to
//! name the stack slots that hold pointers (`goroutine 7 frame 2
//! main.work.buf`).
//!
//! Evaluating a frame's variables is a walk of its function's DWARF scopes
//! and location lists: about 2 µs a frame, 40 s for a million goroutines'
//! 20 million frames. But goroutines stand at a few thousand pcs, and at
//! one pc Go's locations are offsets from the frame's CFA (`DW_OP_fbreg`,
//! the frame base being `DW_OP_call_frame_cfa`). So each (pc, inlining
//! depth) is evaluated once, at two CFAs, and kept as offsets when every
//! variable moved with the CFA and nothing was read from memory; a frame
//! whose locations are anything else is evaluated anew every time.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::binary::dwarf_vars::VarIndex;
use crate::goruntime::{FrameRef, PcHasher};
use crate::process::{Memory, ReadFault};
use crate::values::{limits, Place, Scope};

/// Variables read per frame, at most (a frame has a few dozen).
const MAX_FRAME_VARS: usize = 4096;
/// Frame shapes kept, at most: a bound on a target with more distinct
/// pcs than this (the cache starts over).
const MAX_SHAPES: usize = 1 << 16;
/// How far the second evaluation moves the CFA: far enough that no
/// location is this far from the first by chance.
const PROBE_SHIFT: u64 = 1 << 40;

/// A frame's variable that DWARF places in memory.
pub(super) struct FrameVar {
    /// The frame's number in the goroutine (inlined calls counted).
    pub frame: usize,
    /// `function.name`.
    pub label: Arc<str>,
    pub addr: u64,
    pub size: u64,
    /// Its DWARF type.
    pub ty: usize,
}

/// One variable of a frame shape: where it is from the CFA.
struct ShapeVar {
    label: Arc<str>,
    offset: i64,
    size: u64,
    ty: usize,
}

/// A frame's link-time pc, whether it is the innermost physical frame, and
/// the inlining depth of the frame selected in it.
type ShapeKey = (u64, bool, usize);

/// What [`frame_vars`] keeps between frames: each frame shape's
/// variables, or `None` for a shape that must be evaluated every time.
#[derive(Default)]
pub(super) struct FrameShapes {
    shapes: HashMap<ShapeKey, Option<Arc<[ShapeVar]>>, PcHasher>,
}

/// What every frame's evaluation shares.
pub(super) struct VarsContext<'a> {
    pub mem: &'a dyn Memory,
    pub index: &'a VarIndex,
    pub bias: u64,
    /// Link-time bounds of the module's type section.
    pub types: Option<(u64, u64)>,
}

/// Every variable of `frames` (one goroutine's, innermost first) that
/// lives in memory, appended to `out`: per frame, an inlined call's own,
/// by its depth in the physical frame. `gp`: the goroutine's `runtime.g`.
pub(super) fn frame_vars(
    cx: &VarsContext<'_>,
    shapes: &mut FrameShapes,
    gp: u64,
    frames: &[FrameRef<'_>],
    out: &mut Vec<FrameVar>,
) {
    for (k, frame) in selected_frames(frames, cx.bias, gp) {
        let key = (frame.link, frame.top, frame.depth);
        if shapes.shapes.len() >= MAX_SHAPES && !shapes.shapes.contains_key(&key) {
            shapes.shapes.clear();
        }
        let shape = shapes
            .shapes
            .entry(key)
            .or_insert_with(|| probe(cx, &frame))
            .clone();
        match shape {
            Some(vars) => out.extend(vars.iter().filter_map(|v| {
                Some(FrameVar {
                    frame: k,
                    label: v.label.clone(),
                    addr: frame.cfa.checked_add_signed(v.offset)?,
                    size: v.size,
                    ty: v.ty,
                })
            })),
            None => out.extend(
                evaluate(cx, cx.mem, &frame, frame.cfa)
                    .into_iter()
                    .filter_map(|(name, place, size, ty)| {
                        let Place::Mem(addr) = place else { return None };
                        Some(FrameVar {
                            frame: k,
                            label: format!("{}.{name}", frame.function).into(),
                            addr,
                            size,
                            ty,
                        })
                    }),
            ),
        }
    }
}

/// Each of `frames` (one goroutine's, innermost first) as the frame whose
/// variables are read, with its number: an inlined call's read in the
/// physical frame that holds it (the next one not inlined).
fn selected_frames<'f>(
    frames: &'f [FrameRef<'_>],
    bias: u64,
    gp: u64,
) -> impl Iterator<Item = (usize, Frame<'f>)> + 'f {
    // Whether a physical frame came before: then none after is the top.
    let mut below_top = false;
    frames.iter().enumerate().filter_map(move |(k, selected)| {
        let top = !below_top;
        below_top |= !selected.inlined;
        let physical = (k..frames.len()).find(|&i| !frames[i].inlined)?;
        let f = &frames[physical];
        Some((
            k,
            Frame {
                link: f.pc.wrapping_sub(bias),
                top,
                depth: physical - k,
                cfa: f.fp,
                function: selected.function,
                line: selected.line,
                gp,
            },
        ))
    })
}

/// The frame whose variables are read.
struct Frame<'f> {
    /// Its physical frame's link-time pc.
    link: u64,
    /// The physical frame is the innermost.
    top: bool,
    /// The selected call's inlining depth in the physical frame.
    depth: usize,
    cfa: u64,
    /// The selected call's function and line.
    function: &'f str,
    line: u32,
    gp: u64,
}

/// The frame's variables, each with its place, size and type, evaluated
/// at `cfa` over `mem`; those of size 0 left out.
fn evaluate(
    cx: &VarsContext<'_>,
    mem: &dyn Memory,
    f: &Frame<'_>,
    cfa: u64,
) -> Vec<(String, Place, u64, usize)> {
    let scope = Scope {
        mem,
        index: cx.index,
        bias: cx.bias,
        pc: if f.top {
            f.link
        } else {
            f.link.wrapping_sub(1)
        },
        cfa,
        types: cx.types,
        inline_depth: f.depth,
        ret_pc: (!f.top).then_some(f.link),
        function: Some(f.function.to_string()),
        line: Some(u64::from(f.line)),
        regs: None,
        curg: Some(f.gp),
        limits: limits::Limits::DEFAULT,
        budget: limits::Budget::new(),
    };
    let mut vars = scope.variables(true).unwrap_or_default();
    vars.extend(scope.variables(false).unwrap_or_default());
    vars.into_iter()
        .take(MAX_FRAME_VARS)
        .filter_map(|(name, v)| {
            let size = scope.size(v.ty);
            (size > 0).then_some((name, v.place, size, v.ty))
        })
        .collect()
}

/// The frame's shape: its variables as offsets from the CFA, if that is
/// what they are (see the module docs); `None` if not.
fn probe(cx: &VarsContext<'_>, f: &Frame<'_>) -> Option<Arc<[ShapeVar]>> {
    let watched = Watched {
        mem: cx.mem,
        read: Cell::new(false),
    };
    let here = evaluate(cx, &watched, f, f.cfa);
    let there = evaluate(cx, &watched, f, f.cfa.wrapping_add(PROBE_SHIFT));
    if watched.read.get() || here.len() != there.len() {
        return None;
    }
    let mut vars = Vec::new();
    for ((name, a, size, ty), (other, b, _, _)) in here.into_iter().zip(there) {
        if name != other {
            return None;
        }
        match (a, b) {
            (Place::Mem(a), Place::Mem(b)) if b.wrapping_sub(a) == PROBE_SHIFT => {
                vars.push(ShapeVar {
                    label: format!("{}.{name}", f.function).into(),
                    offset: a.wrapping_sub(f.cfa) as i64,
                    size,
                    ty,
                });
            }
            // Not in memory at either CFA: not in memory at any.
            (Place::Mem(_), _) | (_, Place::Mem(_)) => return None,
            _ => {}
        }
    }
    Some(vars.into())
}

/// A memory that notes whether it was read: a location that reads memory
/// depends on more than the CFA.
struct Watched<'m> {
    mem: &'m dyn Memory,
    read: Cell<bool>,
}

impl Memory for Watched<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        self.read.set(true);
        self.mem.read(addr, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heapwalk::hostile_tests::program;

    // A memory that holds nothing: locations that read it are left to
    // evaluation every time.
    use crate::process::Unreadable as Nothing;

    fn frame(function: &str, pc: u64, fp: u64, inlined: bool) -> FrameRef<'_> {
        FrameRef {
            function,
            file: "",
            line: u32::MAX,
            pc,
            offset: 0,
            inlined,
            fp,
            sp: fp.saturating_sub(64),
            args: "",
            key: None,
        }
    }

    /// A frame shape taken at one CFA gives, at another, exactly what
    /// evaluating the frame there gives: for every function of the
    /// fixture, innermost or a caller, its own calls and those inlined.
    #[test]
    fn a_frame_shape_gives_what_evaluating_gives() {
        let prog = program("go1.27-exe");
        let index = VarIndex::load(prog.binary().debug_data()).expect("the fixture's DWARF");
        let cx = VarsContext {
            mem: &Nothing,
            index: &index,
            bias: 0,
            types: None,
        };
        let (mut frames_checked, mut shaped, mut vars_seen) = (0, 0, 0);
        let mut shapes = FrameShapes::default();
        for f in index.functions() {
            let Some(&(lo, hi)) = f.ranges.first() else {
                continue;
            };
            let step = ((hi - lo) / 7).max(1);
            for pc in (lo + 1..hi).step_by(step as usize) {
                for top in [true, false] {
                    let (cfa_a, cfa_b) = (0x00c0_0010_0000_u64, 0x00c0_00a4_2000_u64);
                    let at = |cfa| {
                        let mut frames = Vec::new();
                        if !top {
                            frames.push(frame("inner", 0x1000, cfa - 0x100, false));
                        }
                        // The call inlined at `pc`, if any, then the physical frame.
                        if f.vars_at(pc, 1).is_some() {
                            frames.push(frame("inlined", pc, cfa, true));
                        }
                        frames.push(frame(&f.name, pc, cfa, false));
                        frames
                    };
                    let mut first = Vec::new();
                    frame_vars(&cx, &mut shapes, 0xc000_0000, &at(cfa_a), &mut first);
                    let mut second = Vec::new();
                    let frames_b = at(cfa_b);
                    frame_vars(&cx, &mut shapes, 0xc000_0000, &frames_b, &mut second);
                    let mut direct = Vec::new();
                    for (k, fr) in selected_frames(&frames_b, 0, 0xc000_0000) {
                        for (name, place, size, ty) in evaluate(&cx, &Nothing, &fr, cfa_b) {
                            if let Place::Mem(addr) = place {
                                direct.push((k, format!("{}.{name}", fr.function), addr, size, ty));
                            }
                        }
                    }
                    let got: Vec<_> = second
                        .iter()
                        .map(|v| (v.frame, v.label.to_string(), v.addr, v.size, v.ty))
                        .collect();
                    assert_eq!(got, direct, "{} at {pc:#x}, top {top}", f.name);
                    frames_checked += 1;
                    vars_seen += got.len();
                    shaped += shapes
                        .shapes
                        .get(&(pc, top, 0))
                        .is_some_and(|s| s.is_some()) as usize;
                }
            }
        }
        // Not vacuous: most frames have a shape, and variables were met.
        assert!(frames_checked > 10_000, "{frames_checked} frames");
        assert!(
            shaped * 10 > frames_checked * 9,
            "{shaped} of {frames_checked} shaped"
        );
        assert!(vars_seen > 10_000, "{vars_seen} variables");
    }
}
