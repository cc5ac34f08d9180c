//! The after-resume half of a dump: turn the captured bytes into goroutines.

use std::collections::HashMap;
use std::sync::Arc;

use super::args::ArgsPlan;
use super::collect::{Capture, OVER_BUDGET};
use super::decoded::{
    elision, CachedSource, FrameBuffers, FrameRegs, GoroutineView, PcInfo, PriorWalk,
};
use super::layout::RuntimeLayout;
use super::model::{CreatedBy, Elision, Goroutine, MachineRef};
use super::signal_frame::interrupted_at;
use super::stack_window::StackWindow;
use super::unwind::{unwind_reusing, PcHasher, PhysFrame, StartRegs, UnwindCache, Unwound};
use super::version::{
    GoVersion, G_DEAD, G_DEAD_EXTRA, G_LEAKED, G_RUNNING, G_SCAN, G_SYSCALL, G_WAITING,
};
use crate::binary::{name_for_print, Binary, Pclntab};
use crate::process::{CaptureReader, Memory, MemoryExt};

/// Go 1.21+ prints the innermost 50 and outermost 50 logical frames.
const INNER_FRAMES: usize = 50;
const OUTER_FRAMES: usize = 50;
/// Before 1.21 the runtime stops after 100 physical frames.
const OLD_MAX_FRAMES: usize = 100;

/// Turns a [`Capture`] into [`Goroutine`]s: all at once
/// ([`Self::goroutines`]) or a chunk at a time ([`Self::stream`]). Made by
/// [`super::GoProgram::decoder`].
pub struct Decoder<'a> {
    pub(super) bin: &'a Binary,
    pub(super) tab: &'a Pclntab,
    pub(super) layout: &'a RuntimeLayout,
    pub(super) version: GoVersion,
    pub(super) bias: u64,
    /// Whether frames' arguments are formatted (see [`Self::without_args`]).
    pub(super) args: bool,
}

/// The fields of one `runtime.g` goat uses.
pub(super) struct RawG {
    pub addr: u64,
    pub goid: u64,
    pub status: u32,
    scan: bool,
    waitsince: i64,
    waitreason: u8,
    locked: bool,
    gopc: u64,
    parent_goid: u64,
    pub m: u64,
    pub stack: (u64, u64),
    sched: (u64, u64),
    syscall: (u64, u64),
}

/// Where a `go` statement is, as `created by` prints it.
#[derive(Clone)]
struct CreationSite {
    function: Arc<str>,
    file: Arc<str>,
    line: u32,
    offset: u64,
}

/// The per-thread caches of one decode.
#[derive(Default)]
pub(super) struct Caches {
    pcs: HashMap<u64, Arc<PcInfo>, PcHasher>,
    /// By `gopc`.
    created: HashMap<u64, Option<CreationSite>, PcHasher>,
    unwind: UnwindCache,
    /// The bytes of the stack being decoded (see `stack_window.rs`).
    window: Vec<u8>,
    /// The frames of the goroutine being decoded.
    pub frames: FrameBuffers,
    /// Its walk, for a stack scan that follows (`goat why`'s).
    pub walked: Option<Walked>,
}

/// A goroutine's walk as its decoding made it: where it started, the top
/// of the stack, the frames and why the walk stopped early (its stack's
/// bytes are `Caches::window`, empty if they could not be read).
pub struct Walked {
    start: StartRegs,
    hi: u64,
    unwound: Unwound,
}

/// Below this many goroutines a second thread costs more than it saves.
const PARALLEL_MIN_GOROUTINES: usize = 2000;
/// `allgs` entries one worker decodes at a time: enough to amortise
/// handing out the work, few enough that the chunks in flight (a few per
/// thread, decoded and formatted) stay a few megabytes.
pub const CHUNK_GOROUTINES: usize = 256;

/// One decoding thread's state: its caches and its reader of the capture.
struct Worker<'c> {
    cache: Caches,
    mem: CaptureReader<'c>,
}

impl Decoder<'_> {
    /// Every live goroutine of the capture, in `allgs` order, decoded on as
    /// many threads as the machine has (the target is already running again).
    pub fn goroutines(&self, cap: &Capture) -> Vec<Goroutine> {
        let mut all = Vec::new();
        let _ = self.stream(
            cap,
            |chunk| chunk,
            |chunk| {
                all.extend(chunk);
                Ok::<(), std::convert::Infallible>(())
            },
        );
        all
    }

    /// The goroutines of the capture, in `allgs` order, a chunk at a time,
    /// never all at once: each chunk is decoded on one of several threads
    /// and passed, still on that thread, to `each` (to format it, say);
    /// `consume` gets what `each` made, on the caller's thread, in `allgs`
    /// order. Returns `consume`'s first error, which stops the work.
    /// A chunk whose decoding panics (a bug, not target data: that is
    /// handled) shows its goroutines unreadable.
    pub fn stream<T: Send, E>(
        &self,
        cap: &Capture,
        each: impl Fn(Vec<Goroutine>) -> T + Sync,
        consume: impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stream_views(
            cap,
            CHUNK_GOROUTINES,
            Vec::with_capacity,
            |chunk, g| chunk.push(g.to_goroutine()),
            each,
            consume,
        )
    }

    /// This decoder, its frames' arguments left empty: for a reader of
    /// stacks that never shows them (`goat why`), each frame's arguments
    /// are memory reads and text it would throw away.
    pub fn without_args(self) -> Self {
        Decoder {
            args: false,
            ..self
        }
    }

    /// [`Self::stream`] without owned goroutines: a chunk's result is made
    /// by `begin(goroutines in the chunk)`, then `add` of each goroutine in
    /// turn (a view of the decoding thread's buffers, valid for the call),
    /// then `end`. Formatting text this way costs no allocation per frame.
    /// A chunk is `chunk_goroutines` entries of `allgs` (at least one).
    pub fn stream_views<A, T: Send, E>(
        &self,
        cap: &Capture,
        chunk_goroutines: usize,
        begin: impl Fn(usize) -> A + Sync,
        add: impl Fn(&mut A, &GoroutineView<'_>) + Sync,
        end: impl Fn(A) -> T + Sync,
        consume: impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E> {
        let gs = &cap.gs;
        let per = chunk_goroutines.max(1);
        let chunks = gs.len().div_ceil(per);
        let chunk = |i: usize| &gs[i * per..((i + 1) * per).min(gs.len())];
        crate::ordered::map_ordered(
            chunks,
            crate::ordered::threads_for(gs.len(), PARALLEL_MIN_GOROUTINES),
            || Worker {
                cache: Caches::default(),
                mem: cap.mem.reader(),
            },
            |w, i| {
                let gs = chunk(i);
                let mut acc = begin(gs.len());
                for &g in gs {
                    if let Some(header) = self.goroutine_in(cap, &w.mem, g, Some(&mut w.cache)) {
                        let view = GoroutineView {
                            header: &header,
                            frames: Some(&w.cache.frames),
                            walk: w.cache.walked.as_ref().map(|walked| PriorWalk {
                                start: walked.start,
                                hi: walked.hi,
                                frames: &walked.unwound.frames,
                                error: walked.unwound.error.as_ref(),
                                window: &w.cache.window,
                            }),
                        };
                        add(&mut acc, &view);
                    }
                }
                end(acc)
            },
            |i| {
                let gs = chunk(i);
                let mut acc = begin(gs.len());
                for &g in gs {
                    let header = unreadable_g(g);
                    let view = GoroutineView {
                        header: &header,
                        frames: None,
                        walk: None,
                    };
                    add(&mut acc, &view);
                }
                end(acc)
            },
            consume,
        )
    }

    /// The fields goat uses of the `runtime.g` at `addr`, from one read of
    /// the whole struct (a live target answers each read with a syscall).
    pub(super) fn read_g(&self, mem: &dyn Memory, addr: u64) -> Option<RawG> {
        let o = &self.layout.g;
        let size = usize::try_from(o.size).ok()?;
        // A g near 2^64 is unreadable, not a wrapped read elsewhere.
        addr.checked_add(o.size)?;
        // Every release's g fits the array: no allocation per goroutine.
        let mut small = [0u8; 1024];
        let mut large = Vec::new();
        let b: &mut [u8] = match small.get_mut(..size) {
            Some(b) => b,
            None => {
                large.resize(size, 0);
                &mut large
            }
        };
        mem.read(addr, b).ok()?;
        let b = &*b;
        let bytes = |off: u64, n: usize| {
            let at = usize::try_from(off).ok()?;
            b.get(at..at.checked_add(n)?)
        };
        let u =
            |off: u64| bytes(off, 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()));
        let status_word = u32::from_le_bytes(bytes(o.atomicstatus, 4)?.try_into().ok()?);
        Some(RawG {
            addr,
            goid: u(o.goid)?,
            status: status_word & !G_SCAN,
            scan: status_word & G_SCAN != 0,
            waitsince: u(o.waitsince)? as i64,
            waitreason: *bytes(o.waitreason, 1)?.first()?,
            locked: u(o.lockedm)? != 0,
            gopc: u(o.gopc)?,
            parent_goid: o.parent_goid.and_then(u).unwrap_or(0),
            m: u(o.m)?,
            stack: (u(o.stack_lo)?, u(o.stack_hi)?),
            sched: (u(o.sched_pc)?, u(o.sched_sp)?),
            syscall: (u(o.syscallpc)?, u(o.syscallsp)?),
        })
    }

    /// The live goroutines of `gs` (of a [`super::collect::capture_headers`]
    /// capture), their `g`s and Ms read from `mem`, with frames *not* decoded (`frames`
    /// empty, `unreadable` unset): the list a session shows and filters by
    /// status, thread or labels before any stack is unwound.
    pub fn headers(&self, cap: &Capture, gs: &[u64], mem: &dyn Memory) -> Vec<Goroutine> {
        gs.iter()
            .filter_map(|&g| self.goroutine_in(cap, mem, g, None))
            .collect()
    }

    /// The goroutine whose `runtime.g` is at `addr`, fully decoded, its
    /// `g`, M and stack read from `mem` (a stopped target or a core) and
    /// its thread and wait reason from `cap`; `None` for a dead one.
    pub fn one(&self, cap: &Capture, mem: &dyn Memory, addr: u64) -> Option<Goroutine> {
        let mut cache = Caches::default();
        let header = self.goroutine_in(cap, mem, addr, Some(&mut cache))?;
        let view = GoroutineView {
            header: &header,
            frames: Some(&cache.frames),
            walk: None,
        };
        Some(view.to_goroutine())
    }

    /// One goroutine read from `mem`, without its frames; when `cache` is
    /// given, they are decoded into its buffers (and `elided` is set).
    fn goroutine_in(
        &self,
        cap: &Capture,
        mem: &dyn Memory,
        addr: u64,
        mut cache: Option<&mut Caches>,
    ) -> Option<Goroutine> {
        if let Some(c) = cache.as_deref_mut() {
            c.frames.clear();
            c.walked = None;
        }
        let Some(g) = self.read_g(mem, addr) else {
            let mut u = unreadable_g(addr);
            if cap.over_budget.contains(&addr) {
                u.unreadable = Some(format!("runtime.g at {addr:#x} {OVER_BUDGET}"));
            }
            return Some(u);
        };
        if g.status == G_DEAD || (g.status == G_DEAD_EXTRA && self.version.at_least(26)) {
            return None;
        }
        let mut status = self.version.status_name(g.status).to_string();
        let mut wait_reason = None;
        if (g.status == G_WAITING || (g.status == G_LEAKED && self.version.at_least(26)))
            && g.waitreason != 0
        {
            let reason = cap
                .wait_reasons
                .get(usize::from(g.waitreason))
                .cloned()
                .unwrap_or_else(|| "unknown wait reason".to_string());
            status = reason.clone();
            wait_reason = Some(reason);
        }
        let wait_minutes = match cap.now {
            // A waitsince from the future or far past (target bytes) shows
            // no wait rather than a wrapped one.
            Some(now) if (g.status == G_WAITING || g.status == G_SYSCALL) && g.waitsince != 0 => {
                now.checked_sub(g.waitsince)
                    .filter(|d| *d >= 0)
                    .map(|d| d / 60_000_000_000)
            }
            _ => None,
        };
        // No M, nothing to read (a read near address 0 would only fail, at
        // the cost of a syscall on a live target).
        let m_field = |off: u64| {
            (g.m != 0)
                .then(|| g.m.checked_add(off))
                .flatten()
                .and_then(|a| mem.read_u64(a).ok())
                .unwrap_or(0) as i64
        };
        // `m.procid` is the id in the target's pid namespace; the thread is
        // named by the id goat knows it by (they differ in a container).
        let procid = m_field(self.layout.m.procid);
        let tid = cap
            .threads
            .iter()
            .find(|t| i64::from(t.go_tid()) == procid)
            .map_or(procid, |t| i64::from(t.tid));
        let machine = (g.m != 0).then(|| MachineRef {
            id: m_field(self.layout.m.id),
            mp: g.m,
            tid,
        });
        let over_budget = cap.over_budget.contains(&addr);
        let regs = self.start_regs(cap, mem, &g, machine);
        let (elided, unreadable) = match (cache.as_deref_mut(), regs) {
            (None, _) => (None, None),
            _ if over_budget => (None, Some(format!("stack {OVER_BUDGET}"))),
            (Some(cache), Some(start)) => self.unwind_into(mem, start, g.stack.1, cache),
            (Some(_), None) => (None, Some("no saved registers for this goroutine".into())),
        };
        Some(Goroutine {
            id: g.goid,
            gp: g.addr,
            status_code: g.status,
            scan: g.scan,
            status,
            wait_reason,
            wait_minutes,
            locked: g.locked,
            m: machine,
            synctest_group: None,
            frames: Vec::new(),
            elided,
            created_by: self.created_by(&g, cache),
            unreadable,
        })
    }

    /// Unwinds a stack whose top is `stack_hi` from `start` into `cache`'s
    /// frames: the elision and, when the walk stopped early, why.
    pub(super) fn unwind_into(
        &self,
        mem: &dyn Memory,
        start: StartRegs,
        stack_hi: u64,
        cache: &mut Caches,
    ) -> (Option<Elision>, Option<String>) {
        let mut window = std::mem::take(&mut cache.window);
        let mem = &StackWindow::new(mem, start.sp, stack_hi, &mut window);
        let frames = cache
            .walked
            .take()
            .map(|w| w.unwound.frames)
            .unwrap_or_default();
        let unwound = unwind_reusing(mem, self.tab, self.bias, start, &mut cache.unwind, frames);
        let elided = self.symbolize(mem, &unwound.frames, cache);
        cache.window = window;
        let unreadable = unwound.error.as_ref().map(|e| e.to_string());
        cache.walked = Some(Walked {
            start,
            hi: stack_hi,
            unwound,
        });
        (elided, unreadable)
    }

    /// Where to start unwinding, as the runtime's `traceback1` decides:
    /// a goroutine in a syscall from its `syscallpc/sp`, a running one from
    /// its thread's registers, any other from `g.sched`.
    fn start_regs(
        &self,
        cap: &Capture,
        mem: &dyn Memory,
        g: &RawG,
        m: Option<MachineRef>,
    ) -> Option<StartRegs> {
        let on_stack = |sp: u64| sp >= g.stack.0 && sp < g.stack.1;
        if g.status == G_SYSCALL && g.syscall.1 != 0 {
            return Some(StartRegs {
                pc: g.syscall.0,
                sp: g.syscall.1,
                trap: false,
                syscall: true,
            });
        }
        if g.status == G_RUNNING {
            let thread = m.and_then(|m| cap.threads.iter().find(|t| i64::from(t.tid) == m.tid));
            if let Some(t) = thread.filter(|t| on_stack(t.regs.rsp)) {
                return Some(StartRegs {
                    pc: t.regs.rip,
                    sp: t.regs.rsp,
                    trap: true,
                    syscall: false,
                });
            }
            // On the signal stack: where the handler interrupted the goroutine.
            let interrupted =
                thread.and_then(|t| interrupted_at(mem, self.tab, self.bias, &t.regs));
            if let Some((pc, sp)) = interrupted.filter(|&(_, sp)| on_stack(sp)) {
                return Some(StartRegs {
                    pc,
                    sp,
                    trap: true,
                    syscall: false,
                });
            }
        }
        (g.sched.0 != 0 && on_stack(g.sched.1)).then_some(StartRegs {
            pc: g.sched.0,
            sp: g.sched.1,
            trap: false,
            syscall: false,
        })
    }

    /// Expands physical frames into printed frames (inlined calls
    /// included) in `cache.frames`, applies the release's elision rule, and
    /// formats the arguments of the frames shown.
    fn symbolize(
        &self,
        mem: &dyn Memory,
        phys: &[PhysFrame],
        cache: &mut Caches,
    ) -> Option<Elision> {
        let old_style = !self.version.at_least(21);
        let truncated = old_style && phys.len() >= OLD_MAX_FRAMES;
        let phys = if truncated {
            &phys[..OLD_MAX_FRAMES]
        } else {
            phys
        };
        for p in phys {
            self.expand(p, cache);
        }
        let elided = elision(
            &mut cache.frames,
            old_style.then_some(truncated),
            INNER_FRAMES,
            OUTER_FRAMES,
        );
        match self.args {
            true => cache
                .frames
                .format_args(|plan, fp, out| plan.format_into(mem, fp, out)),
            false => cache.frames.format_args(|_, _, _| {}),
        }
        elided
    }

    fn expand(&self, p: &PhysFrame, cache: &mut Caches) {
        let sym = p.sym_pc(self.bias);
        let offset = p.pc.wrapping_sub(self.bias).wrapping_sub(p.entry);
        let info = cache
            .pcs
            .entry(sym)
            .or_insert_with(|| {
                let args = self
                    .tab
                    .find_func(sym)
                    .map(|f| {
                        // Go 1.19 and 1.20 print arguments with the liveness
                        // of the pc the inlined calls were made at (their
                        // traceback walks the inline tree first); later
                        // releases use the frame's own pc.
                        let live_pc = match self.version.at_least(21) {
                            true => sym,
                            false => f.inline_site_pc(sym).unwrap_or(sym),
                        };
                        ArgsPlan::new(self.bin, &f, live_pc)
                    })
                    .unwrap_or_default();
                Arc::new(PcInfo {
                    sources: self.sources(sym),
                    args,
                })
            })
            .clone();
        let regs = FrameRegs {
            pc: p.pc,
            offset,
            fp: p.fp,
            sp: p.sp,
        };
        cache
            .frames
            .push(info, sym != p.pc.wrapping_sub(self.bias), regs);
    }

    /// The source frames at link-time `sym`, innermost first; a PC the
    /// tables do not cover still gets one frame that says so.
    fn sources(&self, sym: u64) -> Arc<[CachedSource]> {
        let func = self.tab.find_func(sym);
        match func.map(|f| f.source_frames(sym)) {
            Some(Ok(sources)) if !sources.is_empty() => sources
                .into_iter()
                .map(|s| CachedSource {
                    function: print_name(s.function).into(),
                    file: s.file.into(),
                    line: s.line,
                    inlined: s.inlined,
                })
                .collect(),
            _ => Arc::new([CachedSource {
                function: func
                    .and_then(|f| f.name().ok().map(print_name))
                    .unwrap_or_else(|| format!("?{:#x}", sym.wrapping_add(self.bias)))
                    .into(),
                file: "?".into(),
                line: 0,
                inlined: false,
            }]),
        }
    }

    /// `created by`, as `printcreatedby` prints it: never for goroutine 1,
    /// the physical function at `gopc` and the line of its CALL. Its
    /// function and line are looked up once per `gopc` per thread when
    /// `cache` is given: 100k goroutines are created at a few places.
    fn created_by(&self, g: &RawG, cache: Option<&mut Caches>) -> Option<CreatedBy> {
        if g.gopc == 0 || g.goid == 1 {
            return None;
        }
        let site = match cache {
            Some(c) => c
                .created
                .entry(g.gopc)
                .or_insert_with(|| self.creation_site(g.gopc))
                .clone(),
            None => self.creation_site(g.gopc),
        }?;
        Some(CreatedBy {
            function: site.function,
            file: site.file,
            line: site.line,
            pc: g.gopc,
            offset: site.offset,
            goroutine: (self.version.has_parent_goid() && g.parent_goid != 0)
                .then_some(g.parent_goid),
        })
    }

    /// The function and the line of the `go` statement at `gopc`.
    fn creation_site(&self, gopc: u64) -> Option<CreationSite> {
        let pc = gopc.wrapping_sub(self.bias);
        let f = self.tab.find_func(pc)?;
        let trace_pc = if pc > f.entry() { pc - 1 } else { pc };
        let (file, line) = f.file_line(trace_pc).unwrap_or(("?", 0));
        Some(CreationSite {
            function: print_name(f.name().ok()?).into(),
            file: file.into(),
            line,
            offset: pc - f.entry(),
        })
    }
}

/// The runtime's `printFuncName`.
fn print_name(name: &str) -> String {
    if name == "runtime.gopanic" {
        return "panic".to_string();
    }
    name_for_print(name).into_owned()
}

pub(super) fn unreadable_g(addr: u64) -> Goroutine {
    Goroutine {
        id: 0,
        gp: addr,
        status_code: 0,
        scan: false,
        status: "???".into(),
        wait_reason: None,
        wait_minutes: None,
        locked: false,
        m: None,
        synctest_group: None,
        frames: Vec::new(),
        elided: None,
        created_by: None,
        unreadable: Some(format!("cannot read runtime.g at {addr:#x}")),
    }
}
