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

/// Every table row equals what DWARF says, for every release built here
/// (the hangs fixture uses every sync type, so DWARF has them all).
#[test]
fn table_matches_dwarf() {
    let mut checked = 0;
    for minor in [19, 21, 24, 27] {
        let path = bin_path(&format!("go1.{minor}-exe"));
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
    assert_eq!(checked, 4);
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

/// Memory that cannot be read at all.
struct Nothing;

impl Memory for Nothing {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        Err(ReadFault {
            addr,
            len: buf.len(),
        })
    }
}

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
