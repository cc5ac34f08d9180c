//! `goat stacks --mode precopy`: the goroutines are copied while the
//! target runs, its writes tracked, and the target is stopped only to
//! re-read what changed (`goruntime/precopy.rs`).
//!
//! Two stops: a short one in which the target opens a userfaultfd that goat
//! takes over (`tracer/borrow_fd.rs`), and the final one. The tracer is a
//! process of its own (`goat tracer PID`), which finishes an injected
//! syscall should goat die in the middle; the write tracking ends when
//! goat's descriptor closes, also when goat is killed.

use std::path::Path;

use crate::corefile::writer::syscall_injection_feasible;
use crate::goruntime::{self, Capture};
use crate::process::writetrack::{PageMap, Query, WriteTracker};
use crate::process::ProcessMemory;
use crate::tracer::{LiveProcess, StopWindow};

use super::copied::{Copied, Meanwhile, PrecopyReport};
use super::mode_choice::StacksMode;
use super::phases::{hold_for_tests, Phases};
use super::{InspectError, Inspector, Warning};

/// Why pre-copy mode cannot run here.
struct Unavailable(String);

impl Inspector {
    pub(super) fn copy_precopy(
        &self,
        pid: i32,
        exe: &Path,
        mut clock: Phases,
        labels: bool,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<Copied, InspectError> {
        let prog = &self.prog;
        let (live, no_tracer) = LiveProcess::attach_outliving(pid)?;
        let bias = super::open::live_bias(prog, pid, exe)?;
        let globals = prog.locate(live.memory(), bias)?;
        let tracking = match no_tracer {
            // An injection from goat's own process would leave the
            // target's descriptor open were goat killed in the middle.
            Some(why) => Err(Unavailable(format!("no tracer process: {why}"))),
            None => open_tracking(&live),
        };
        let (tracker, pagemap, setup) = match tracking {
            Ok(t) => t,
            Err(Unavailable(why)) => {
                warn(Warning::PrecopyUnavailable { why });
                clock.mark("prepare");
                return self.copy_live(live, exe, clock, labels);
            }
        };
        clock.mark("prepare");
        // The final stop reuses the running copy's heap pages (heap.rs).
        // Only here: a stop capture grows its arena, which with the heap
        // kept is copied instead of remapped (its pause doubled).
        crate::heap::keep_freed_memory();
        let gc = goruntime::gcphase::GcPhase::in_binary(prog.binary(), bias);
        let mut pc = prog
            .precopy(pid, &globals, tracker, pagemap)
            .with_gc_phase(gc);
        // Copied while the target runs: a large copy goes to a temporary
        // file, so goat's memory does not grow with the goroutines.
        let storage = prog
            .prepare_capture_spilled(live.memory(), &globals)
            .map_err(InspectError::spill)?;
        pc.store_in(storage.mem);
        // A copy that fails while the target runs (its goroutine list
        // changing under the read) only leaves more to read in the stop.
        let _ = pc.copy_running(live.memory());
        crate::heap::warm(pc.final_heap_estimate());
        clock.mark("precopy");

        let stopped = live.stop()?;
        let now = goruntime::monotonic_now(pid);
        let fin = pc.finish(&stopped, now);
        let reference = compare::reference(prog, &stopped, &globals, now);
        hold_for_tests();
        let window = stopped.window();
        stopped.resume()?;
        let helpers = live.helpers();
        drop(live);
        clock.mark("stop");
        let capture = pc.assemble(fin.map_err(goruntime::GoError::from)?);
        let stats = pc.stats.clone();
        let asked = std::mem::take(&mut pc.asked);
        // Unprotecting every page walks the page tables: the target runs
        // meanwhile, and the decode need not wait for it.
        let tracker = pc.into_tracker();
        let meanwhile = Meanwhile::spawn(move || tracker.release());
        clock.mark("assemble");
        compare::check(prog, &capture, &asked, reference, bias)?;
        // Read after the final stop, from the running target: the `g`s'
        // label words are known only once the capture is assembled, and
        // reading them from the target in the stop would take a read per
        // goroutine. Go never changes a label set once made; one freed
        // since the stop (its goroutines gone or relabelled) reads as
        // unreadable or, reused meanwhile, wrong: a window of the decode's
        // first milliseconds.
        let labels = labels.then(|| prog.label_table(&capture, &ProcessMemory::new(pid)));
        Ok(Copied {
            capture,
            bias,
            of: format!("pid {pid}"),
            stops: vec![setup, window],
            mode: Some(StacksMode::Precopy),
            choice: None,
            precopy: Some(PrecopyReport {
                setup_pause: setup.lasted,
                final_pause: window.lasted,
                stats,
                helpers,
            }),
            phases: clock,
            labels,
            meanwhile,
        })
    }
}

/// The write tracking: checks what it needs, then a short stop in which the
/// target opens a userfaultfd that goat takes over.
fn open_tracking(live: &LiveProcess) -> Result<(WriteTracker, PageMap, StopWindow), Unavailable> {
    let pid = live.pid();
    syscall_injection_feasible(pid, false).map_err(|e| Unavailable(e.to_string()))?;
    let pagemap = PageMap::open(pid)
        .map_err(|e| Unavailable(format!("cannot open /proc/{pid}/pagemap: {e}")))?;
    // PAGEMAP_SCAN is Linux 6.7+, like asynchronous write protection.
    pagemap
        .scan(0, 4096, Query::default())
        .map_err(|e| Unavailable(format!("the kernel has no PAGEMAP_SCAN (Linux 6.7+): {e}")))?;
    // Best effort: without it, an injection is as safe as the tracer's life.
    let _ = live.prepare_injection();
    let stopped = live
        .stop()
        .map_err(|e| Unavailable(format!("stopping the target: {e}")))?;
    let fd = stopped.open_userfaultfd();
    let window = stopped.window();
    stopped
        .resume()
        .map_err(|e| Unavailable(format!("resuming the target: {e}")))?;
    let fd = fd.map_err(|e| Unavailable(format!("opening a userfaultfd in the target: {e}")))?;
    let tracker = WriteTracker::new(fd).map_err(|e| Unavailable(e.to_string()))?;
    Ok((tracker, pagemap, window))
}

/// The test hook `GOAT_TEST_PRECOPY_COMPARE` (a `test-hooks` build only):
/// in the final stop, a stop capture is taken too, and goat fails unless
/// both captures hold the same bytes and decode to the same dump.
#[cfg(feature = "test-hooks")]
mod compare {
    use super::*;
    use crate::goruntime::{Dump, Globals, GoProgram};
    use crate::process::{Memory, Target};

    pub(super) fn reference(
        prog: &GoProgram,
        t: &dyn Target,
        globals: &Globals,
        now: Option<i64>,
    ) -> Option<Result<Recorded, crate::goruntime::CaptureError>> {
        super::super::test_hook_set("GOAT_TEST_PRECOPY_COMPARE").then(|| {
            crate::goruntime::precopy::recorded_stop_capture(t, prog.layout(), globals, now)
        })
    }

    type Recorded = (Capture, Vec<((u64, usize), bool)>);

    pub(super) fn check(
        prog: &GoProgram,
        ours: &Capture,
        asked: &[((u64, usize), bool)],
        reference: Option<Result<Recorded, crate::goruntime::CaptureError>>,
        bias: u64,
    ) -> Result<(), InspectError> {
        let Some(reference) = reference else {
            return Ok(());
        };
        let dump = &prog.decode(ours, bias)?;
        let (theirs, their_asks) = reference.map_err(crate::goruntime::GoError::from)?;
        let mismatch = |what: String| Err(InspectError::PrecopyMismatch(what));
        // A full stop capture (the fallback) lists nothing.
        if !asked.is_empty() {
            if let Some(i) =
                (0..asked.len().max(their_asks.len())).find(|&i| asked.get(i) != their_asks.get(i))
            {
                return mismatch(format!(
                    "range {i} of {} asked for differs: {:x?} against {:x?}",
                    asked.len(),
                    asked.get(i),
                    their_asks.get(i)
                ));
            }
        }
        if ours.gs != theirs.gs {
            return mismatch(format!(
                "goroutine lists differ ({} against {})",
                ours.gs.len(),
                theirs.gs.len()
            ));
        }
        if ours.bytes != theirs.bytes || ours.over_budget != theirs.over_budget {
            return mismatch(format!(
                "{} bytes copied against {}",
                ours.bytes, theirs.bytes
            ));
        }
        if ours.wait_reasons != theirs.wait_reasons || ours.now != theirs.now {
            return mismatch("wait reasons or clocks differ".into());
        }
        // Every g of the list, byte for byte, where either capture has it.
        let size = prog.layout().g.size as usize;
        let (mut a, mut b) = (vec![0u8; size], vec![0u8; size]);
        for &g in &ours.gs {
            let (ra, rb) = (ours.mem.read(g, &mut a), theirs.mem.read(g, &mut b));
            if ra.is_ok() != rb.is_ok() || (ra.is_ok() && a != b) {
                return mismatch(format!("runtime.g at {g:#x} differs"));
            }
        }
        let text = |d: &Dump| {
            let mut out = Vec::new();
            crate::report::write_text(&mut out, d).map(|()| out)
        };
        let reference_dump = prog.decode(&theirs, bias)?;
        let (ta, tb) = (text(dump), text(&reference_dump));
        match (ta, tb) {
            (Ok(x), Ok(y)) if x == y => {}
            (Ok(x), Ok(y)) => {
                let (x, y) = (String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
                let at = x.lines().zip(y.lines()).position(|(p, q)| p != q);
                return mismatch(format!(
                    "the dumps differ first at line {at:?}: {:?} against {:?}; {}",
                    at.and_then(|i| x.lines().nth(i)),
                    at.and_then(|i| y.lines().nth(i)),
                    first_range_differing(asked, ours, &theirs),
                ));
            }
            _ => return mismatch("a dump could not be formatted".into()),
        }
        Ok(())
    }

    /// Which range asked for first holds other bytes in the two
    /// captures, and where in it: what a dump mismatch comes from (a
    /// write the copy missed, or a decode that differs on equal bytes).
    fn first_range_differing(
        asked: &[((u64, usize), bool)],
        ours: &Capture,
        theirs: &Capture,
    ) -> String {
        for &((addr, len), _) in asked {
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            let (ra, rb) = (ours.mem.read(addr, &mut a), theirs.mem.read(addr, &mut b));
            if ra.is_ok() != rb.is_ok() {
                return format!("range {addr:#x}+{len:#x} read in one capture only");
            }
            if let Some(i) = a.iter().zip(&b).position(|(p, q)| p != q) {
                return format!(
                    "range {addr:#x}+{len:#x} differs from {:#x} on",
                    addr + i as u64
                );
            }
        }
        "every range asked for holds the same bytes".into()
    }
}

#[cfg(not(feature = "test-hooks"))]
mod compare {
    use super::*;
    use crate::goruntime::{Globals, GoProgram};
    use crate::process::Target;

    /// Without the `test-hooks` feature: nothing.
    pub(super) fn reference(
        _: &GoProgram,
        _: &dyn Target,
        _: &Globals,
        _: Option<i64>,
    ) -> Option<Capture> {
        None
    }

    pub(super) fn check(
        _: &GoProgram,
        _: &Capture,
        _: &[((u64, usize), bool)],
        _: Option<Capture>,
        _: u64,
    ) -> Result<(), InspectError> {
        Ok(())
    }
}
