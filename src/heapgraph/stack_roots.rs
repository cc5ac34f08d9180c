//! The goroutines' stack roots, gathered one goroutine at a time so that
//! no one needs every goroutine decoded at once (a million goroutines'
//! frames are gigabytes; their roots, kept this way, a hundred megabytes).
//!
//! Each root is a goroutine frame's variable that holds a live pointer
//! slot (`goroutine 7 frame 2 main.work.buf`, where DWARF places one over
//! the slot), else the frame's function, the goroutine's stack, or its
//! defer and panic records. A root is kept as numbers and an interned
//! label, and named only when a report shows it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::binary::dwarf_vars::VarIndex;
use crate::goruntime::{
    stack_pointer_slot_values, FrameRef, GoProgram, Goroutine, GoroutineView, PriorWalk, ScanStart,
};
use crate::process::Memory;

use super::frame_vars::{frame_vars, FrameShapes, FrameVar, VarsContext};
use super::lists::Lists;
use super::roots::TypedRoot;

/// Where in its goroutine a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RootPlace {
    /// Its defer and panic records.
    Records,
    /// A frame's variable (label `function.name`) or, where no variable
    /// covers the slot, the frame (label `function`).
    Frame { frame: u32, label: u32 },
    /// Its stack, outside any frame.
    Stack,
}

impl RootPlace {
    /// Frame numbers kept in a key: deeper than any stack goat decodes.
    const FRAME_MASK: u64 = (1 << 30) - 1;

    /// The place as one number, in the order a goroutine's roots are
    /// listed: sorting plain pairs of numbers is what the rest of goat
    /// already does (a comparison of its own would be one more sort in
    /// the static file).
    fn key(self) -> u64 {
        match self {
            RootPlace::Records => 0,
            RootPlace::Frame { frame, label } => {
                1 << 62 | (u64::from(frame) & Self::FRAME_MASK) << 32 | u64::from(label)
            }
            RootPlace::Stack => 2 << 62,
        }
    }

    fn of_key(key: u64) -> RootPlace {
        match key >> 62 {
            0 => RootPlace::Records,
            1 => RootPlace::Frame {
                frame: ((key >> 32) & Self::FRAME_MASK) as u32,
                label: key as u32,
            },
            _ => RootPlace::Stack,
        }
    }
}

/// One stack root: a goroutine and where in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct StackRoot {
    pub goroutine: u64,
    pub place: RootPlace,
}

/// Every goroutine's stack roots and the pointers each holds, and the
/// typed variables the type walk starts from.
#[derive(Default)]
pub struct StackRoots {
    pub(super) roots: Vec<StackRoot>,
    /// Each root's pointer values, root after root.
    values: Lists<u64>,
    pub(super) labels: Labels,
    /// Frame variables that hold a live pointer slot, with their types.
    pub(super) typed: Vec<TypedRoot>,
    /// Goroutines whose stack scan was not precise to the end.
    pub(super) imprecise: u64,
    goroutines: usize,
}

/// Labels (function and variable names), each kept once.
#[derive(Default)]
pub(super) struct Labels {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Labels {
    fn id(&mut self, label: &str, shared: Option<&Arc<str>>) -> u32 {
        if let Some(&id) = self.ids.get(label) {
            return id;
        }
        let name: Arc<str> = shared.cloned().unwrap_or_else(|| label.into());
        // More distinct labels than u32 holds cannot be built from a
        // target's DWARF; the last is reused rather than wrapping.
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub(super) fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("?", |s| s)
    }
}

/// What scanning shares: the snapshot and the executable's variables.
pub struct StackScanContext<'a> {
    prog: &'a GoProgram,
    mem: &'a dyn Memory,
    bias: u64,
    vars: Option<&'a VarIndex>,
    types: Option<(u64, u64)>,
}

impl<'a> StackScanContext<'a> {
    /// Stacks of the snapshot `mem` (load bias `bias`) of `prog`; `vars`:
    /// its DWARF variables, without which roots are named by function.
    pub fn new(
        prog: &'a GoProgram,
        mem: &'a dyn Memory,
        bias: u64,
        vars: Option<&'a VarIndex>,
    ) -> StackScanContext<'a> {
        let types = prog.binary().pclntab().ok().and_then(|t| t.types());
        StackScanContext {
            prog,
            mem,
            bias,
            vars,
            types,
        }
    }
}

/// What a scanning thread keeps from one goroutine to the next.
#[derive(Default)]
pub struct StackScratch {
    scan: crate::goruntime::stackroots::Scratch,
    shapes: FrameShapes,
    slots: Vec<u64>,
    slot_values: Vec<u64>,
    vars: Vec<FrameVar>,
    /// Which of `vars` hold a live slot.
    live: Vec<bool>,
    /// This goroutine's (root as [`RootPlace::key`], value) pairs before
    /// they are grouped.
    found: Vec<(u64, u64)>,
}

impl StackRoots {
    /// Adds `g`'s roots.
    pub fn add_goroutine(
        &mut self,
        cx: &StackScanContext<'_>,
        s: &mut StackScratch,
        g: &Goroutine,
    ) {
        let frames: Vec<FrameRef<'_>> = g.frames.iter().map(|f| f.view()).collect();
        self.add(cx, s, g, &frames, None);
    }

    /// Adds the roots of a goroutine as its decoding thread holds it,
    /// reusing the walk the decoding made.
    pub fn add_view(
        &mut self,
        cx: &StackScanContext<'_>,
        s: &mut StackScratch,
        g: &GoroutineView<'_>,
    ) {
        let frames: Vec<FrameRef<'_>> = g.frames().collect();
        self.add(cx, s, g.header(), &frames, g.prior_walk());
    }

    fn add(
        &mut self,
        cx: &StackScanContext<'_>,
        s: &mut StackScratch,
        g: &Goroutine,
        frames: &[FrameRef<'_>],
        prior: Option<PriorWalk<'_>>,
    ) {
        self.goroutines += 1;
        s.slots.clear();
        s.slot_values.clear();
        let start = ScanStart::of_goroutine(g, frames.first().map(|f| (f.pc, f.sp)));
        let scan = stack_pointer_slot_values(
            cx.prog,
            cx.mem,
            cx.bias,
            (start, prior),
            &mut s.slots,
            &mut s.slot_values,
            &mut s.scan,
        );
        if scan.incomplete.is_some() || scan.conservative_frames > 0 {
            self.imprecise += 1;
        }
        s.vars.clear();
        if let Some(index) = cx.vars {
            let vcx = VarsContext {
                mem: cx.mem,
                index,
                bias: cx.bias,
                types: cx.types,
            };
            frame_vars(&vcx, &mut s.shapes, g.gp, frames, &mut s.vars);
        }
        s.found.clear();
        s.live.clear();
        s.live.resize(s.vars.len(), false);
        for (&slot, &value) in s.slots.iter().zip(&s.slot_values) {
            if value == 0 {
                continue;
            }
            let var = s
                .vars
                .iter()
                .position(|v| v.addr <= slot && slot < v.addr.saturating_add(v.size));
            let place = match var {
                Some(i) => {
                    s.live[i] = true;
                    let v = &s.vars[i];
                    RootPlace::Frame {
                        frame: u32::try_from(v.frame).unwrap_or(u32::MAX),
                        label: self.labels.id(&v.label, Some(&v.label)),
                    }
                }
                None => self.slot_place(frames, slot),
            };
            s.found.push((place.key(), value));
        }
        for (v, &live) in s.vars.iter().zip(&s.live) {
            if live {
                self.typed.push(TypedRoot {
                    addr: v.addr,
                    ty: v.ty,
                });
            }
        }
        // A goroutine's roots in a fixed order (its records, its frames
        // innermost first, its stack), each value once.
        s.found.sort_unstable();
        s.found.dedup();
        let mut last = None;
        for &(key, value) in &s.found {
            if last != Some(key) {
                if last.is_some() {
                    self.values.end_list();
                }
                self.roots.push(StackRoot {
                    goroutine: g.id,
                    place: RootPlace::of_key(key),
                });
                last = Some(key);
            }
            self.values.push(value);
        }
        if last.is_some() {
            self.values.end_list();
        }
    }

    /// Where a slot that no variable covers is: the frame whose stack
    /// range holds it, else the stack, else the goroutine's records.
    fn slot_place(&mut self, frames: &[FrameRef<'_>], slot: u64) -> RootPlace {
        let frame = frames
            .iter()
            .enumerate()
            .find(|(_, f)| !f.inlined && f.sp <= slot && slot < f.fp);
        match frame {
            Some((k, f)) => RootPlace::Frame {
                frame: u32::try_from(k).unwrap_or(u32::MAX),
                label: self.labels.id(f.function, None),
            },
            None if frames.iter().any(|f| f.sp <= slot && slot < f.fp.max(f.sp)) => {
                RootPlace::Stack
            }
            None => RootPlace::Records,
        }
    }

    /// Adds `other`'s roots after these (a later chunk of goroutines).
    pub fn append(&mut self, other: StackRoots) {
        let ids: Vec<u32> = other
            .labels
            .names
            .iter()
            .map(|name| self.labels.id(name, Some(name)))
            .collect();
        self.roots.extend(other.roots.into_iter().map(|mut r| {
            if let RootPlace::Frame { label, .. } = &mut r.place {
                *label = ids.get(*label as usize).copied().unwrap_or(u32::MAX);
            }
            r
        }));
        self.values.append(other.values);
        self.typed.extend(other.typed);
        self.imprecise += other.imprecise;
        self.goroutines += other.goroutines;
    }

    /// Goroutines scanned.
    pub fn goroutines(&self) -> usize {
        self.goroutines
    }

    /// Root `k`'s pointer values.
    pub(super) fn values_of(&self, k: usize) -> &[u64] {
        self.values.get(k)
    }
}

impl StackRoot {
    /// The root's name in a report.
    pub(super) fn name(&self, labels: &Labels) -> String {
        let g = self.goroutine;
        match self.place {
            RootPlace::Records => format!("goroutine {g} (defer/panic records)"),
            RootPlace::Frame { frame, label } => {
                format!("goroutine {g} frame {frame} {}", labels.get(label))
            }
            RootPlace::Stack => format!("goroutine {g} stack"),
        }
    }
}
