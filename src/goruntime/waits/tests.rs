//! The table against DWARF, and hostile memory: whatever the target's
//! bytes, `read_waits` answers, and a goroutine whose records cannot be
//! read or do not check out is `Unreadable`, never a panic.

use std::sync::Arc;

use super::layout::WaitsLayout;
use super::{read_waits, WaitsOn};
use crate::binary::dwarf::DwarfTypes;
use crate::binary::Binary;
use crate::goruntime::version::{GoVersion, G_LEAKED, G_RUNNING, G_SYSCALL, G_WAITING};
use crate::goruntime::{GoProgram, Goroutine, MachineRef};
use crate::process::{Memory, ReadFault, Regs, Thread};

fn bin_path(flavour: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin")
        .join(flavour)
        .join("hangs")
}

/// Every table row equals what DWARF says, for every release built here:
/// the hangs fixture of the four releases every test uses (it uses every
/// sync type, so DWARF has them all), and the states fixture of the
/// others (the runtime's types are in every binary's DWARF).
#[test]
fn table_matches_dwarf() {
    let mut checked = 0;
    for minor in [19, 21, 22, 23, 24, 25, 26, 27] {
        let name = if [19, 21, 24, 27].contains(&minor) {
            "hangs"
        } else {
            "states"
        };
        let path = bin_path(&format!("go1.{minor}-exe")).with_file_name(name);
        let bin = Binary::open(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the fixtures with scripts/build-fixtures",
                path.display()
            )
        });
        let dwarf = DwarfTypes::load(bin.debug_data()).expect("DWARF");
        let version = GoVersion::parse(bin.go_version().expect("version")).expect("version");
        let from_dwarf = WaitsLayout::from_dwarf(&dwarf).expect("every field");
        let from_table = WaitsLayout::from_table(version).expect("a row");
        assert_eq!(from_table, from_dwarf, "{}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 8);
    assert!(WaitsLayout::from_table(GoVersion {
        major: 1,
        minor: 20
    })
    .is_none());
    assert!(WaitsLayout::from_table(GoVersion {
        major: 1,
        minor: 28
    })
    .is_none());
}

/// Bytes from a fixed pseudo-random sequence, the same for an address
/// whatever the read's size (xorshift of the address).
struct Garbage;

impl Memory for Garbage {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        for (i, b) in buf.iter_mut().enumerate() {
            let mut x = addr.wrapping_add(i as u64) | 1;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        Ok(())
    }
}

use crate::process::Unreadable as Nothing;

fn goroutine(id: u64, gp: u64, status: u32, reason: &str) -> Goroutine {
    Goroutine {
        id,
        gp,
        status_code: status,
        scan: false,
        status: reason.to_string(),
        wait_reason: (!reason.is_empty()).then(|| reason.to_string()),
        wait_minutes: None,
        locked: false,
        m: (status == G_SYSCALL).then_some(MachineRef {
            id: 1,
            mp: 0x1000,
            tid: 77,
        }),
        synctest_group: None,
        frames: Vec::new(),
        elided: None,
        created_by: None,
        unreadable: None,
    }
}

const REASONS: [&str; 12] = [
    "chan receive",
    "chan send",
    "select",
    "sync.Mutex.Lock",
    "sync.RWMutex.RLock",
    "sync.RWMutex.Lock",
    "sync.WaitGroup.Wait",
    "sync.Cond.Wait",
    "semacquire",
    "IO wait",
    "sleep",
    "select (durable)",
];

fn goroutines() -> Vec<Goroutine> {
    let mut gs = Vec::new();
    for (i, r) in REASONS.iter().enumerate() {
        let id = i as u64 + 1;
        // Near the top of the address space too: sums must not wrap.
        for (k, gp) in [0xc000_0000 + 0x1000 * id, u64::MAX - 7 * id]
            .into_iter()
            .enumerate()
        {
            let status = if k == 0 { G_WAITING } else { G_LEAKED };
            gs.push(goroutine(id * 10 + k as u64, gp, status, r));
        }
    }
    gs.push(goroutine(500, 0xd000_0000, G_SYSCALL, ""));
    gs.push(goroutine(501, 0xd000_1000, G_RUNNING, ""));
    gs
}

#[test]
fn hostile_memory_yields_unreadable_never_a_panic() {
    let path = bin_path("go1.27-exe");
    let bin = Binary::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the fixtures with scripts/build-fixtures",
            path.display()
        )
    });
    let prog = GoProgram::load(bin).expect("hangs loads");
    let gs = goroutines();
    let threads = [Thread {
        tid: 77,
        ns_tid: None,
        regs: Regs {
            orig_rax: u64::MAX,
            rdi: u64::MAX,
            ..Regs::from_words(&[0; crate::process::USER_REGS_WORDS])
        },
    }];
    for (label, mem) in [
        ("garbage", Arc::new(Garbage) as Arc<dyn Memory>),
        ("nothing", Arc::new(Nothing)),
    ] {
        let waits = read_waits(&prog, mem.as_ref(), 0, &gs, &threads, None);
        for g in &gs {
            let on = &waits.by_goroutine[&g.id];
            match g.wait_reason.as_deref() {
                // Garbage may give a timer a garbage time; nothing else.
                Some("sleep") if label == "garbage" => assert!(
                    matches!(on, WaitsOn::Sleep { .. } | WaitsOn::Unreadable { .. }),
                    "{label}: {on:?}"
                ),
                Some(r) => assert!(
                    matches!(on, WaitsOn::Unreadable { .. }),
                    "{label}: goroutine {} ({r}) gave {on:?}",
                    g.id
                ),
                None if g.status_code == G_SYSCALL => assert_eq!(
                    on,
                    &WaitsOn::Syscall {
                        nr: None,
                        name: None,
                        fd: None
                    },
                    "{label}"
                ),
                None => assert_eq!(on, &WaitsOn::NotBlocked, "{label}"),
            }
        }
        assert!(waits.chans.is_empty() && waits.syncs.is_empty(), "{label}");
    }
}

/// Memory holding only the words a probe writes.
#[derive(Default)]
struct Words(std::collections::BTreeMap<u64, u8>);

impl Words {
    fn put(&mut self, addr: u64, v: u64) {
        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
            self.0.insert(addr + i as u64, b);
        }
    }
}

impl Memory for Words {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        for (i, b) in buf.iter_mut().enumerate() {
            let at = addr.checked_add(i as u64);
            *b = *at.and_then(|a| self.0.get(&a)).ok_or(fault)?;
        }
        Ok(())
    }
}

/// Crafted runtime records: lists that loop, a sudog of another
/// goroutine, a stack pointer outside its stack. Each hurts only the
/// goroutine (or channel) it belongs to, which says why.
#[test]
fn crafted_records_are_refused_with_a_reason() {
    let prog =
        GoProgram::load(Binary::open(&bin_path("go1.27-exe")).expect("hangs")).expect("load");
    let w = super::layout_for(&prog).expect("a layout");
    let g = prog.layout().g;
    let mut mem = Words::default();
    let (g1, g2, g3, g4) = (0x10_0000, 0x20_0000, 0x30_0000, 0x40_0000);
    let (s1, s2, s3, c) = (0x50_0000, 0x60_0000, 0x70_0000, 0x80_0000);
    // g1 selects, its waiting list looping on itself.
    mem.put(g1 + w.g_waiting, s1);
    mem.put(s1 + w.sudog.g, g1);
    mem.put(s1 + w.sudog.waitlink, s1);
    // g2 receives on c, whose receive queue loops.
    mem.put(g2 + w.g_waiting, s2);
    mem.put(s2 + w.sudog.g, g2);
    mem.put(s2 + w.sudog.waitlink, 0);
    mem.put(s2 + w.sudog.c, c);
    mem.put(s2 + w.sudog.next, s2);
    for off in [
        w.chan.qcount,
        w.chan.dataqsiz,
        w.chan.closed,
        w.chan.elemtype,
    ] {
        mem.put(c + off, 0);
    }
    mem.put(c + w.chan.recvq, s2);
    mem.put(c + w.chan.sendq, 0);
    // g3 locks a mutex through a sudog that is g1's, and its saved SP is
    // outside its stack.
    mem.put(g3 + w.g_waiting, s3);
    mem.put(s3 + w.sudog.g, g1);
    mem.put(g3 + g.sched_sp, 0x9000);
    mem.put(g3 + g.stack_lo, 0x1_0000);
    mem.put(g3 + g.stack_hi, 0x2_0000);
    // g4 waits on IO with a stack that reads as nothing.
    mem.put(g4 + g.sched_sp, 0x1_0000);
    mem.put(g4 + g.stack_lo, 0x1_0000);
    mem.put(g4 + g.stack_hi, 0x2_0000);
    let gs = [
        goroutine(1, g1, G_WAITING, "select"),
        goroutine(2, g2, G_WAITING, "chan receive"),
        goroutine(3, g3, G_WAITING, "sync.Mutex.Lock"),
        goroutine(4, g4, G_WAITING, "IO wait"),
    ];
    let waits = read_waits(&prog, &mem, 0, &gs, &[], None);
    let why = |id: u64| match &waits.by_goroutine[&id] {
        WaitsOn::Unreadable { why } => why.clone(),
        other => panic!("goroutine {id}: {other:?}"),
    };
    assert!(why(1).contains("does not end"), "{}", why(1));
    assert_eq!(
        waits.by_goroutine[&2],
        WaitsOn::Chan {
            chan: c,
            op: super::ChanOp::Recv
        }
    );
    let ch = &waits.chans[&c];
    assert_eq!(ch.recv_waiters, [2], "the loop is walked once");
    assert!(
        ch.unreadable
            .as_deref()
            .is_some_and(|w| w.contains("does not end")),
        "{ch:?}"
    );
    assert!(why(3).contains("saved SP"), "{}", why(3));
    assert!(why(4).contains("cannot read its stack"), "{}", why(4));
}

/// A binary without DWARF whose table layout was not yet checked on the
/// target: goat refuses to follow its offsets, and says so for every
/// blocked goroutine.
#[test]
fn an_unchecked_table_layout_is_refused() {
    let path = bin_path("go1.27-stripped");
    let prog = GoProgram::load(Binary::open(&path).expect("hangs")).expect("load");
    let gs = [
        goroutine(1, 0x1000, G_WAITING, "chan receive"),
        goroutine(2, 0x2000, G_RUNNING, ""),
    ];
    let waits = read_waits(&prog, &Nothing, 0, &gs, &[], None);
    match &waits.by_goroutine[&1] {
        WaitsOn::Unreadable { why } => assert!(why.contains("not checked"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(waits.by_goroutine[&2], WaitsOn::NotBlocked);
}

/// Before 1.26 a Cond's waiters are found through the `*Cond` on their
/// stacks, checked against the Cond's queue: every waiter of one Cond
/// gets that Cond, a word that leads into the queue from the middle
/// (another sudog's `next`, taken as a list's `head`) is not taken for
/// one, and a queue that does not end at its list's `tail` names nothing.
#[test]
fn cond_waiters_are_found_through_their_queue() {
    let prog =
        GoProgram::load(Binary::open(&bin_path("go1.19-exe")).expect("hangs")).expect("load");
    let w = super::layout_for(&prog).expect("a layout");
    let g = prog.layout().g;
    let mut mem = Words::default();
    let gps = [0x10_0000u64, 0x20_0000, 0x30_0000, 0x40_0000];
    let sgs = [0x50_0000u64, 0x60_0000, 0x70_0000, 0x78_0000];
    let (cond, broken) = (0x80_0000u64, 0x90_0000u64);
    let head_of = |c: u64| c + w.sync.cond_notify + w.sync.notify_head;
    for (i, (&gp, &sg)) in gps.iter().zip(&sgs).enumerate() {
        mem.put(gp + w.g_waiting, 0);
        mem.put(sg + w.sudog.g, gp);
        mem.put(sg + w.sudog.elem, 0);
        mem.put(sg + w.sudog.next, 0);
        // Each stack: its own sudog, a decoy (the word that, taken as a
        // *Cond, puts `head` at the first sudog's `next`), then the Cond.
        let stack = 0x100_0000 + i as u64 * 0x1_0000;
        mem.put(gp + g.sched_sp, stack);
        mem.put(gp + g.stack_lo, stack - 0x1000);
        mem.put(gp + g.stack_hi, stack + 0x100);
        let decoy = sgs[0] + w.sudog.next - w.sync.cond_notify - w.sync.notify_head;
        let real = if i < 3 { cond } else { broken };
        for (k, word) in [sg, decoy, real].into_iter().enumerate() {
            mem.put(stack + 8 * k as u64, word);
        }
        for k in 3..0x20 {
            mem.put(stack + 8 * k, 0);
        }
    }
    // The queue of `cond`: the first three sudogs, tail the third.
    mem.put(sgs[0] + w.sudog.next, sgs[1]);
    mem.put(sgs[1] + w.sudog.next, sgs[2]);
    mem.put(head_of(cond), sgs[0]);
    mem.put(head_of(cond) + 8, sgs[2]);
    // The decoy's `tail` (the first sudog's next word) is not a sudog.
    mem.put(sgs[0] + w.sudog.next + 8, 0);
    // `broken` queues the fourth goroutine, but its tail is another sudog.
    mem.put(head_of(broken), sgs[3]);
    mem.put(head_of(broken) + 8, sgs[2]);
    let gs: Vec<Goroutine> = gps
        .iter()
        .enumerate()
        .map(|(i, &gp)| goroutine(i as u64 + 1, gp, G_WAITING, "sync.Cond.Wait"))
        .collect();
    let waits = read_waits(&prog, &mem, 0, &gs, &[], None);
    for id in 1..=3 {
        match &waits.by_goroutine[&id] {
            WaitsOn::Sync { object, .. } => assert_eq!(*object, cond, "goroutine {id}"),
            other => panic!("goroutine {id}: {other:?}"),
        }
    }
    assert_eq!(waits.syncs[&cond].waiters, [1, 2, 3]);
    match &waits.by_goroutine[&4] {
        WaitsOn::Unreadable { why } => assert!(why.contains("no sync.Cond"), "{why}"),
        other => panic!("goroutine 4: {other:?}"),
    }
}
