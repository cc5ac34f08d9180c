//! Goroutine lists and `runtime.g`s as a crafted core or a corrupt process
//! could hold them: every probe gives a dump, with the goroutine it hurts
//! marked unreadable, never a panic, a wrap or an allocation the target's
//! numbers decide. Run in the debug profile too (`scripts/test`), where
//! arithmetic overflow panics.

use super::collect::{capture_within, Capture, OVER_BUDGET};
use super::discover::Globals;
use super::version::G_WAITING;
use super::GoProgram;
use crate::binary::Binary;
use crate::process::{CapturedMemory, Memory, ReadFault, Threadless};

fn program() -> GoProgram {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin/go1.27-exe/states");
    let bin = Binary::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the fixtures with scripts/build-fixtures",
            path.display()
        )
    });
    GoProgram::load(bin).expect("the states fixture loads")
}

const ALLGS: u64 = 0x10_0000;
const LIST: u64 = 0x20_0000;
const G0: u64 = 0x4000_0000;
const STACKS: u64 = 0x8000_0000;

/// The fields of one `runtime.g` a probe sets.
#[derive(Clone, Copy)]
struct G {
    goid: u64,
    status: u32,
    lo: u64,
    hi: u64,
    sp: u64,
    m: u64,
    waitsince: i64,
}

impl G {
    fn parked(goid: u64, lo: u64, hi: u64) -> G {
        G {
            goid,
            status: G_WAITING,
            lo,
            hi,
            sp: hi.saturating_sub(0x100),
            m: 0,
            waitsince: 1,
        }
    }
}

/// A process whose `allgs` lists `list`, with `gs` at those addresses.
fn fake(p: &GoProgram, list: &[u64], gs: &[(u64, G)], stack_bytes: usize) -> CapturedMemory {
    let o = &p.layout.g;
    let mut mem = CapturedMemory::new();
    let mut header = LIST.to_le_bytes().to_vec();
    header.extend_from_slice(&(list.len() as u64).to_le_bytes());
    mem.insert(ALLGS, &header);
    let raw: Vec<u8> = list.iter().flat_map(|g| g.to_le_bytes()).collect();
    mem.insert(LIST, &raw);
    for &(addr, g) in gs {
        let mut b = vec![0u8; o.size as usize];
        let mut put = |off: u64, v: &[u8]| {
            b[off as usize..off as usize + v.len()].copy_from_slice(v);
        };
        put(o.goid, &g.goid.to_le_bytes());
        put(o.atomicstatus, &g.status.to_le_bytes());
        put(o.stack_lo, &g.lo.to_le_bytes());
        put(o.stack_hi, &g.hi.to_le_bytes());
        put(o.sched_sp, &g.sp.to_le_bytes());
        put(o.sched_pc, &0x40_1000u64.to_le_bytes());
        put(o.m, &g.m.to_le_bytes());
        put(o.waitsince, &g.waitsince.to_le_bytes());
        mem.insert(addr, &b);
        if stack_bytes > 0 && g.lo < g.hi {
            mem.insert(g.hi - stack_bytes as u64, &vec![0u8; stack_bytes]);
        }
    }
    mem
}

fn dump_of(
    p: &GoProgram,
    mem: &CapturedMemory,
    now: Option<i64>,
    budget: u64,
) -> (Capture, super::Dump) {
    let globals = Globals {
        allgs: ALLGS,
        wait_reasons: None,
    };
    let cap = capture_within(
        &Threadless(mem),
        &p.layout,
        &globals,
        now,
        Capture::default(),
        budget,
    )
    .expect("a capture of what could be read");
    let dump = p.decode(&cap, 0).expect("a dump");
    (cap, dump)
}

/// An `allgs` length of 16 million (target bytes) faults in no more than
/// the capture's budget before the stop (found by fuzzing: 1 GiB per
/// input kept `goroutine_decode` at ~30 inputs a second).
#[test]
fn a_huge_allgs_length_reserves_no_more_than_the_budget() {
    let p = program();
    let mut mem = CapturedMemory::new();
    let header: Vec<u8> = [LIST, 1 << 24]
        .iter()
        .flat_map(|w: &u64| w.to_le_bytes())
        .collect();
    mem.insert(ALLGS, &header);
    let t = Threadless(&mem);
    let globals = Globals {
        allgs: ALLGS,
        wait_reasons: None,
    };
    let cap = super::collect::prepare_within(&t, &p.layout, &globals, 1 << 20);
    assert!(
        cap.mem.reserved() <= 1 << 20,
        "{} bytes",
        cap.mem.reserved()
    );
}

/// A list longer than the budget can hold is refused, not read.
#[test]
fn a_list_past_the_budget_is_an_implausible_length() {
    let p = program();
    let t = fake(&p, &vec![G0; 1024], &[], 0);
    let globals = Globals {
        allgs: ALLGS,
        wait_reasons: None,
    };
    let got = capture_within(
        &Threadless(&t),
        &p.layout,
        &globals,
        None,
        Capture::default(),
        1024 * 8 - 1,
    );
    assert!(
        matches!(got, Err(super::CaptureError::BadLength(1024))),
        "{:?}",
        got.err()
    );
}

#[test]
fn a_million_entries_naming_one_g_copy_it_once() {
    let p = program();
    let big = G::parked(1, STACKS, STACKS + (4 << 20));
    let list = vec![G0; 1 << 20];
    let t = fake(&p, &list, &[(G0, big)], 4 << 20);
    let (cap, dump) = dump_of(&p, &t, None, super::collect::CAPTURE_BUDGET);
    assert_eq!(cap.gs, vec![G0]);
    assert!(cap.bytes < (5 << 20) + (8 << 20), "{} bytes", cap.bytes);
    assert_eq!(dump.goroutines.len(), 1);
}

#[test]
fn goroutines_past_the_budget_are_unreadable_with_the_reason() {
    let p = program();
    let gsize = p.layout.g.size;
    let gs: Vec<(u64, G)> = (0..6u64)
        .map(|i| {
            let lo = STACKS + i * (8 << 20);
            (G0 + i * 0x1000, G::parked(i + 1, lo, lo + (4 << 20)))
        })
        .collect();
    let list: Vec<u64> = gs.iter().map(|g| g.0).collect();
    let t = fake(&p, &list, &gs, 0x100);
    // Room for every g and two stacks' worth of copies.
    let (cap, dump) = dump_of(&p, &t, None, 6 * gsize + 2 * 0x100);
    assert_eq!(cap.over_budget.len(), 4, "{:?}", cap.over_budget);
    let over: Vec<_> = dump
        .goroutines
        .iter()
        .filter(|g| {
            g.unreadable
                .as_deref()
                .is_some_and(|u| u.contains(OVER_BUDGET))
        })
        .collect();
    assert_eq!(over.len(), 4);
    assert!(over.iter().all(|g| g.id != 0), "the g itself was read");
    // A budget of two gs: the others are not even read, and the two have
    // no room left for their stacks.
    let (cap, dump) = dump_of(&p, &t, None, 2 * gsize);
    assert_eq!(cap.over_budget.len(), 6);
    assert_eq!(dump.goroutines.len(), 6);
    assert_eq!(dump.goroutines.iter().filter(|g| g.id == 0).count(), 4);
    assert!(dump.goroutines.iter().all(|g| g
        .unreadable
        .as_deref()
        .is_some_and(|u| u.contains(OVER_BUDGET))));
}

#[test]
fn hostile_g_fields_give_a_partial_goroutine() {
    let p = program();
    let m_near_end = G {
        status: super::version::G_RUNNING,
        m: 0xffff_ffff_ffff_fff8,
        ..G::parked(1, STACKS, STACKS + 0x8000)
    };
    let from_the_past = G {
        waitsince: i64::MIN,
        ..G::parked(2, STACKS + 0x10000, STACKS + 0x18000)
    };
    let upside_down = G::parked(3, STACKS + 0x28000, STACKS + 0x20000);
    let gs = [
        (G0, m_near_end),
        (G0 + 0x1000, from_the_past),
        (G0 + 0x2000, upside_down),
    ];
    let near_end = 0xffff_ffff_ffff_fff0;
    let list = [G0, G0 + 0x1000, G0 + 0x2000, near_end];
    let t = fake(&p, &list, &gs, 0x100);
    let (_, dump) = dump_of(&p, &t, Some(i64::MAX), super::collect::CAPTURE_BUDGET);
    let by_id = |id: u64| dump.goroutines.iter().find(|g| g.id == id).unwrap();
    assert!(by_id(1).unreadable.is_some());
    assert_eq!(by_id(2).wait_minutes, None, "no wrapped wait: unknown");
    assert!(by_id(3).unreadable.is_some());
    let last = dump.goroutines.iter().find(|g| g.gp == near_end).unwrap();
    assert!(last.unreadable.as_deref().unwrap().contains("cannot read"));
}

/// The memory of the goroutine_decode and value_print fuzz targets.
#[path = "../../fuzz/fuzz_targets/repeating.rs"]
pub(crate) mod repeating;
use repeating::Repeating;

/// Replays a fuzz input as the target does: locate, capture within 1 MiB,
/// decode.
fn replay(p: &GoProgram, input: &[u8]) {
    let Some(mem) = Repeating::of_input(input) else {
        return;
    };
    let t = Threadless(&mem);
    let Ok(globals) = p.locate(&t, 0) else {
        return;
    };
    let prepared = p.prepare_capture_within(&t, &globals, 1 << 20);
    if let Ok(cap) = p.capture_within(&t, &globals, Some(1 << 40), prepared, 1 << 20) {
        let _ = p.decode(&cap, 0);
    }
}

/// Inputs `goroutine_decode` found (fuzz/regressions/goroutine_decode/).
#[test]
fn fuzz_findings_of_goroutine_decode_stay_fixed() {
    let p = program();
    // A g at 0xffff_ffff_ffff_ff00: its merged read range ended past the
    // address space (`run.0 + run.1` overflowed in read_merged).
    replay(
        &p,
        include_bytes!("../../fuzz/regressions/goroutine_decode/crash-5cc37ed6bb0c2a7dbefedab33dc08d41c5586836"),
    );
}

/// The runtime prints `, N minutes` only for a waiting (or in-syscall)
/// goroutine whose `waitsince` a GC stamped: any other wait is unknown
/// (`None`, JSON null), never 0; a stamped wait under a minute is 0.
#[test]
fn wait_minutes_are_known_only_where_the_runtime_stamped_them() {
    let p = program();
    const MINUTE: i64 = 60_000_000_000;
    let now = 100 * MINUTE;
    let stamped = |goid, at| G {
        waitsince: at,
        ..G::parked(
            goid,
            STACKS + goid * 0x10000,
            STACKS + goid * 0x10000 + 0x8000,
        )
    };
    let gs = [
        (G0, stamped(1, now - 7 * MINUTE - 5)),
        (G0 + 0x1000, stamped(2, now - 30_000_000_000)),
        (G0 + 0x2000, stamped(3, 0)),
        (
            G0 + 0x3000,
            G {
                // _Grunnable: not waiting, so the runtime shows no wait.
                status: 1,
                ..stamped(4, now - 9 * MINUTE)
            },
        ),
    ];
    let list: Vec<u64> = gs.iter().map(|(a, _)| *a).collect();
    let t = fake(&p, &list, &gs, 0x100);
    let minutes = |now| {
        let (_, dump) = dump_of(&p, &t, now, super::collect::CAPTURE_BUDGET);
        let mut v: Vec<(u64, Option<i64>)> = dump
            .goroutines
            .iter()
            .map(|g| (g.id, g.wait_minutes))
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        minutes(Some(now)),
        [(1, Some(7)), (2, Some(0)), (3, None), (4, None)]
    );
    // No clock (a core of another tool): nothing is known.
    assert_eq!(minutes(None), [(1, None), (2, None), (3, None), (4, None)]);
}
