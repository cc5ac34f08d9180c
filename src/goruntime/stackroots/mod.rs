//! A goroutine's stack roots exactly as the garbage collector scans them
//! (runtime/mgcmark.go `scanstack` and `scanframeworker`, stkframe.go
//! `getStackMap`, Go 1.19–1.27): for `goat why`, whose leak verdict is a
//! mark from the goroutines that can still run. A dead slot that still
//! holds an old pointer must not keep an object alive, or goat would
//! disagree with the runtime; where goat cannot be precise it errs toward
//! keeping things alive and says so.
//!
//! Per physical frame (inlined calls share it), with `fp` the caller's SP,
//! `varp = fp - 8` (the return address), less 8 more for the saved frame
//! pointer when the frame has room for one, and `argp = fp`:
//! - the stack map index is `PCDATA_StackMapIndex` at `continpc - 1`
//!   (`continpc` itself at the entry, and 0 when nothing is found): every
//!   frame's PC, the innermost one's included, is where it will continue
//!   after a call. A frame that called `sigpanic` continues at its
//!   `deferreturn` (+1), or is dead if it has none;
//! - locals: bit `i` of the locals map is the word at `varp - nbit*8 + 8i`;
//!   args: bit `i` of the args map is the word at `argp + 8i` (with the
//!   register ABI that area holds the spill slots, live where the map
//!   says);
//! - stack objects (address-taken locals) are scanned only when a live
//!   pointer reaches them, by their own bitmaps;
//! - `asyncPreempt` and `debugCallV2` frames, and the frame each
//!   interrupted, are scanned word by word, and so is a frame whose maps
//!   cannot be read, and the innermost frame of a goroutine caught running
//!   (stopped at an arbitrary instruction, as the runtime never scans it).
//!
//! What this does not cover: registers. A goroutine running on a thread
//! holds live pointers in that thread's registers (and, from Go 1.26, an
//! asynchronously preempted one in its saved vector registers,
//! `g.xRegs`): the caller takes them from the thread.

mod maps;
mod pcs;
mod records;
mod state;
#[cfg(test)]
mod tests;

use crate::process::{Memory, MemoryExt};

use super::stack_window::StackWindow;
use super::unwind::{unwind_reusing, PhysFrame, StartRegs, UnwindCache, Unwound};
use super::version::{G_RUNNING, G_SYSCALL};
use super::{GoProgram, Goroutine, GoroutineBrief, PriorWalk};
use pcs::{FuncFacts, PcFacts};
use state::{ScanState, StackObject};

pub use maps::MapError;

/// `abi.FuncFlagTopFrame`: the outermost frame of a goroutine (`goexit`).
const FLAG_TOP_FRAME: u8 = 1;
/// `abi.ArgsSizeUnknown`: the reflect stubs, whose argument size is found
/// only at run time.
const ARGS_SIZE_UNKNOWN: i32 = i32::MIN;
/// The runtime's largest goroutine stack on 64-bit (`maxstacksize`, 1 GB,
/// rounded to the power of two a stack size is).
const MAX_STACK: u64 = 1 << 30;
const WORD: u64 = 8;

/// What [`stack_pointer_slots`] keeps between goroutines: the unwinder's
/// and the walk's per-pc facts (a million goroutines stand at a few
/// thousand pcs) and the stack buffer, so that a scan costs no allocation
/// and reads a function's maps once.
#[derive(Default)]
pub struct Scratch {
    window: Vec<u8>,
    unwind: UnwindCache,
    /// The frames of the last walk this scratch made, kept for the next.
    frames: Vec<PhysFrame>,
    pcs: PcFacts,
}

/// What [`stack_pointer_slots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackScan {
    /// Frames scanned from their stack maps.
    pub precise_frames: u32,
    /// Frames scanned word by word (asyncPreempt and the frame below it,
    /// frames without maps, a map that could not be read): errs toward
    /// keeping things alive.
    pub conservative_frames: u32,
    /// Why the scan stopped early, if it did (then the rest of the stack
    /// was scanned conservatively, from the last frame to stack.hi).
    pub incomplete: Option<String>,
}

/// What a stack scan reads of its goroutine: a [`GoroutineBrief`]'s
/// fields, or a [`Goroutine`]'s, or a decoded view's (see
/// [`ScanStart::of_goroutine`]).
#[derive(Debug, Clone, Copy)]
pub struct ScanStart<'a> {
    /// Address of its `runtime.g`.
    pub gp: u64,
    /// As [`Goroutine::status_code`].
    pub status_code: u32,
    /// The innermost frame's pc and sp, where the scan starts.
    pub top: Option<(u64, u64)>,
    /// As [`Goroutine::unreadable`].
    pub unreadable: Option<&'a str>,
}

impl<'a> ScanStart<'a> {
    /// `g`'s header with `top`, its innermost frame's (pc, sp).
    pub fn of_goroutine(g: &'a Goroutine, top: Option<(u64, u64)>) -> ScanStart<'a> {
        ScanStart {
            gp: g.gp,
            status_code: g.status_code,
            top,
            unreadable: g.unreadable.as_deref(),
        }
    }

    pub fn of_brief(g: &'a GoroutineBrief) -> ScanStart<'a> {
        ScanStart {
            gp: g.gp,
            status_code: g.status_code,
            top: g.top,
            unreadable: g.unreadable.as_deref(),
        }
    }
}

/// How the values of the slots found are given back, besides the slots.
enum Values<'o> {
    /// Not at all.
    None,
    /// Those that read, nil left out.
    NonNil(&'o mut Vec<u64>),
    /// One per slot, in order (0 for one that did not read).
    PerSlot(&'o mut Vec<u64>),
}

/// The words of `g`'s stack the GC would treat as live pointers, and the
/// pointer words of the goroutine's own records the GC scans with its
/// stack (defer and panic records, g.ctxt where the runtime scans it).
/// Appends *slot addresses* to `out` (the caller reads the values). `mem`
/// holds the stopped target (or a core), `bias` is its load bias.
pub fn stack_pointer_slots(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    g: &Goroutine,
    out: &mut Vec<u64>,
    scratch: &mut Scratch,
) -> StackScan {
    let start = ScanStart::of_goroutine(g, g.frames.first().map(|f| (f.pc, f.sp)));
    scan_stack(prog, mem, bias, (start, None), (out, Values::None), scratch)
}

/// [`stack_pointer_slots`] of a goroutine as `goat why` keeps it, and the
/// pointers the slots hold appended to `values` (those that read, and are
/// not nil): read from the stack's bytes the scan already holds, not again
/// from `mem`. `prior`: the walk the goroutine's decoding made, used where
/// it starts where this scan does (else the stack is walked again).
pub fn stack_pointer_values_of(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    (g, prior): (&GoroutineBrief, Option<PriorWalk<'_>>),
    slots: &mut Vec<u64>,
    values: &mut Vec<u64>,
    scratch: &mut Scratch,
) -> StackScan {
    let start = ScanStart::of_brief(g);
    scan_stack(
        prog,
        mem,
        bias,
        (start, prior),
        (slots, Values::NonNil(values)),
        scratch,
    )
}

/// The slots of [`stack_pointer_slots`] and, in `values`, what each
/// holds, one per slot (0 where it did not read): for a caller that names
/// each slot (`goat heap`'s roots). `prior` as in
/// [`stack_pointer_values_of`].
pub fn stack_pointer_slot_values(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    (g, prior): (ScanStart<'_>, Option<PriorWalk<'_>>),
    slots: &mut Vec<u64>,
    values: &mut Vec<u64>,
    scratch: &mut Scratch,
) -> StackScan {
    scan_stack(
        prog,
        mem,
        bias,
        (g, prior),
        (slots, Values::PerSlot(values)),
        scratch,
    )
}

/// The words at `slots` that read, as `values` asks for them.
fn read_values(mem: &dyn Memory, slots: &[u64], values: Values<'_>) {
    let mut word = [0u8; 8];
    let mut read = |s: u64| {
        mem.read(s, &mut word).ok()?;
        Some(u64::from_le_bytes(word))
    };
    match values {
        Values::None => {}
        Values::NonNil(out) => {
            out.extend(slots.iter().filter_map(|&s| read(s).filter(|v| *v != 0)))
        }
        Values::PerSlot(out) => out.extend(slots.iter().map(|&s| read(s).unwrap_or(0))),
    }
}

fn scan_stack(
    prog: &GoProgram,
    mem: &dyn Memory,
    bias: u64,
    (g, prior): (ScanStart<'_>, Option<PriorWalk<'_>>),
    (out, values): (&mut Vec<u64>, Values<'_>),
    scratch: &mut Scratch,
) -> StackScan {
    let mut scan = StackScan::default();
    let layout = prog.layout();
    let field = |off: u64| g.gp.checked_add(off).and_then(|a| mem.read_u64(a).ok());
    let bounds = field(layout.g.stack_lo)
        .zip(field(layout.g.stack_hi))
        .filter(|&(lo, hi)| lo < hi && hi - lo <= MAX_STACK);
    let Some((lo, hi)) = bounds else {
        scan.incomplete = Some(format!(
            "no stack bounds in runtime.g at {:#x}: its stack was not scanned",
            g.gp
        ));
        // The records do not depend on the stack; a stack of nothing.
        let mut st = ScanState::new(mem, 0, 0, out);
        let _ = records::scan(layout, g.gp, &mut st);
        read_values(mem, out, values);
        return scan;
    };
    let start = g.top;
    let window_from = start
        .map(|(_, sp)| sp)
        .filter(|&sp| sp >= lo && sp < hi)
        .unwrap_or(lo);
    // The decoding's walk, if it read this stack from here to `hi`.
    let prior = prior.filter(|p| p.hi == hi && p.start.sp == window_from);
    let stack = match prior.filter(|p| !p.window.is_empty()) {
        Some(p) => StackWindow::over(mem, window_from, p.window),
        None => StackWindow::new(mem, window_from, hi, &mut scratch.window),
    };
    let mut st = ScanState::new(&stack, lo, hi, out);

    let walked = match (start, prog.binary().pclntab()) {
        (Some((pc, sp)), Ok(tab)) => {
            let regs = StartRegs {
                pc,
                sp,
                trap: g.status_code == G_RUNNING,
                syscall: g.status_code == G_SYSCALL,
            };
            let mut unwound: Option<Unwound> = None;
            let (frames, error) = match prior.filter(|p| p.start == regs) {
                Some(p) => (p.frames, p.error.map(|e| e.to_string())),
                None => {
                    // The last scan's vector: a walk per goroutine need
                    // not grow one from nothing (as the decoder's).
                    let reuse = std::mem::take(&mut scratch.frames);
                    let u = unwound.insert(unwind_reusing(
                        &stack,
                        tab,
                        bias,
                        regs,
                        &mut scratch.unwind,
                        reuse,
                    ));
                    (&u.frames[..], u.error.as_ref().map(|e| e.to_string()))
                }
            };
            let walk = Walk {
                prog,
                tab,
                bias,
                running: g.status_code == G_RUNNING,
                rodata: tab.rodata(),
            };
            let done = walk
                .frames(frames, &mut st, &mut scan, &mut scratch.pcs)
                .map(|rest_from| (rest_from, error))
                .unwrap_or_else(|(rest_from, why)| (rest_from, Some(why)));
            if let Some(u) = unwound {
                scratch.frames = u.frames;
            }
            done
        }
        (None, _) => {
            let sp = field(layout.g.sched_sp)
                .filter(|&sp| sp >= lo && sp < hi)
                .unwrap_or(lo);
            let why = g.unreadable.unwrap_or("no frames were decoded");
            (sp, Some(why.to_string()))
        }
        (_, Err(e)) => (window_from, Some(e.to_string())),
    };
    if let (rest_from, Some(why)) = walked {
        st.words(rest_from, hi, true);
        scan.incomplete = Some(why);
    }
    if let Some(why) = records::scan(layout, g.gp, &mut st) {
        scan.incomplete.get_or_insert(why);
    }
    st.trace_objects(prog.binary());
    if st.overflowed {
        scan.incomplete = Some(format!(
            "more than {} pointer slots: the rest were left out",
            st.max_slots
        ));
    } else if st.dropped_objects {
        scan.incomplete
            .get_or_insert_with(|| "too many stack objects: some were not followed".into());
    }
    read_values(&stack, out, values);
    scan
}

/// The frame walk's fixed inputs.
struct Walk<'p> {
    prog: &'p GoProgram,
    tab: &'p crate::binary::Pclntab,
    bias: u64,
    /// The goroutine is on a thread: its innermost PC is any instruction.
    running: bool,
    /// `moduledata.rodata`, where stack objects' pointer bitmaps lie.
    rodata: Option<u64>,
}

/// Where a frame keeps what the GC scans (runtime `stkframe`).
#[derive(Debug, Clone, Copy)]
struct FrameAddrs {
    sp: u64,
    varp: u64,
    argp: u64,
}

impl Walk<'_> {
    /// Scans `frames` (innermost first). `Ok(end)` when the walk reached
    /// the goroutine's outermost frame; else where the conservative scan
    /// of the rest starts and why.
    fn frames(
        &self,
        frames: &[PhysFrame],
        st: &mut ScanState<'_>,
        scan: &mut StackScan,
        pcs: &mut PcFacts,
    ) -> Result<u64, (u64, String)> {
        let Some(first) = frames.first() else {
            return Err((st.lo, "no frames".into()));
        };
        let mut rest_from = first.sp;
        // The frame below was asyncPreempt or debugCallV2 (`state.conservative`).
        let mut conservative_next = false;
        let mut callee_sigpanic = false;
        let mut last_flag = 0u8;
        for (i, frame) in frames.iter().enumerate() {
            let Some(f) = pcs.func(self.tab, frame.entry) else {
                return Err((rest_from, format!("no function at pc {:#x}", frame.pc)));
            };
            if frame.sp < rest_from || frame.sp < st.lo || frame.fp > st.hi || frame.fp < frame.sp {
                return Err((
                    rest_from,
                    format!(
                        "frame at sp {:#x} is outside the stack [{:#x}, {:#x})",
                        frame.sp, st.lo, st.hi
                    ),
                ));
            }
            let (injected, reflect_stub) = (f.injected, f.reflect_stub);
            // A goroutine on a thread stands at any instruction (not a
            // safe point the maps describe), whether its PC came from the
            // thread or, lacking one, from a stale `g.sched`.
            let interrupted = i == 0 && self.running;
            let addrs = frame_addrs(frame);
            if conservative_next || injected || interrupted || reflect_stub {
                conservative_frame(&f, &addrs, st);
                scan.conservative_frames += 1;
                // The parent of an injected call was interrupted anywhere;
                // a reflect stub's arguments (size unknown here) lie in its
                // caller's outgoing area: both scanned word by word too.
                conservative_next = injected || reflect_stub;
            } else {
                let continpc = match callee_sigpanic {
                    false => Some(frame.pc),
                    true => match f.deferreturn {
                        0 => None,
                        d => Some(
                            f.entry
                                .wrapping_add(self.bias)
                                .wrapping_add(u64::from(d))
                                .wrapping_add(1),
                        ),
                    },
                };
                match continpc.map(|pc| self.precise_frame(&f, pc, &addrs, st, pcs)) {
                    Some(Err(_)) => {
                        conservative_frame(&f, &addrs, st);
                        scan.conservative_frames += 1;
                    }
                    // A dead frame (continpc 0) has nothing live: counted
                    // as precise, as its (empty) maps are exact.
                    None | Some(Ok(())) => scan.precise_frames += 1,
                }
                conservative_next = false;
            }
            callee_sigpanic = f.sigpanic;
            rest_from = frame.fp;
            last_flag = f.flag;
        }
        if last_flag & FLAG_TOP_FRAME == 0 {
            let last = frames.last().map_or(0, |f| f.pc);
            return Err((
                rest_from,
                format!("the walk ended at pc {last:#x}, before the goroutine's outermost frame"),
            ));
        }
        Ok(rest_from)
    }

    /// The frame by its maps at `continpc` (run-time), as `getStackMap`
    /// and `scanframeworker` read them (the maps found once per pc, in
    /// `pcs`).
    fn precise_frame(
        &self,
        f: &FuncFacts,
        continpc: u64,
        a: &FrameAddrs,
        st: &mut ScanState<'_>,
        pcs: &mut PcFacts,
    ) -> Result<(), MapError> {
        let locals_room = (a.varp - a.sp) / WORD;
        let maps = pcs.maps(
            self.prog.binary(),
            f,
            continpc.wrapping_sub(self.bias),
            locals_room,
        );
        let maps = maps.as_ref().as_ref().map_err(|e| e.clone())?;
        if let Some(map) = &maps.locals {
            st.bitmap(a.varp - u64::from(map.n) * WORD, &map.view(), false);
        }
        if let Some(map) = &maps.args {
            st.bitmap(a.argp, &map.view(), false);
        }
        for rec in &maps.objects {
            let base = if rec.off >= 0 { a.argp } else { a.varp };
            let Some(addr) = base.checked_add_signed(i64::from(rec.off)) else {
                continue;
            };
            // Not yet allocated in the frame.
            if addr < a.sp {
                continue;
            }
            st.add_object(StackObject {
                addr,
                size: u64::from(rec.size.max(0).unsigned_abs()),
                ptrdata: rec.ptrdata,
                gcdata: self
                    .rodata
                    .and_then(|r| r.checked_add(u64::from(rec.gcdataoff))),
            });
        }
        Ok(())
    }
}

/// `varp` and `argp` of a frame (amd64: the return address and, in a
/// frame with room for it, the saved frame pointer lie between them).
fn frame_addrs(frame: &PhysFrame) -> FrameAddrs {
    // The walk checked sp <= fp and fp = sp + size + 8 >= 8.
    let mut varp = frame.fp.saturating_sub(WORD).max(frame.sp);
    if varp > frame.sp {
        varp -= WORD;
    }
    FrameAddrs {
        sp: frame.sp,
        varp,
        argp: frame.fp,
    }
}

/// `scanframeworker`'s conservative case: every word of the frame from
/// its SP (the outgoing arguments included, as it may have been stopped
/// setting up a call) and of its arguments.
fn conservative_frame(f: &FuncFacts, a: &FrameAddrs, st: &mut ScanState<'_>) {
    st.words(a.sp, a.varp, true);
    st.words(a.argp, a.argp.saturating_add(f.args_bytes), true);
}
