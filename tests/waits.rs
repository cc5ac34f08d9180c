//! `goat why`'s library half on the `hangs` fixture, a service stuck in
//! every way at once: each scenario's goroutines (the ids the program
//! wrote to its manifest) must wait on what the program's source makes
//! them wait on, every release, exe, PIE and stripped. The oracle is the
//! manifest and the source: which goroutines share a mutex, a channel,
//! which package variable that is (`main.state.mu`, `main.jobs`,
//! `main.table.RWMutex`), who queues on each channel.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{build_fixtures, fixture_path, scratch_dir, write_core, Fixture};
use goat::goruntime::waits::{ChanOp, IoMode, IoWait, SyncKind, Waits, WaitsOn};
use goat::goruntime::Dump;
use goat::inspect::Inspector;

const RELEASES: [&str; 4] = ["go1.19", "go1.21", "go1.24", "go1.27"];
const KINDS: [&str; 4] = ["exe", "pie", "nodwarf", "stripped"];

/// What names a build can give: symbols and DWARF (`main.state.mu`),
/// symbols alone (the variable, `main.state`), or none.
#[derive(Clone, Copy, PartialEq)]
enum Naming {
    Fields,
    Variables,
    Nothing,
}

impl Naming {
    fn of(kind: &str) -> Naming {
        match kind {
            "stripped" => Naming::Nothing,
            "nodwarf" => Naming::Variables,
            _ => Naming::Fields,
        }
    }
}

/// The manifest: scenario → goroutine ids.
fn manifest(path: &Path) -> BTreeMap<String, Vec<u64>> {
    let text = std::fs::read_to_string(path).expect("the fixture wrote its manifest");
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let cat = words.next()?.to_string();
            let ids = words.map(|w| w.parse().expect("an id")).collect();
            Some((cat, ids))
        })
        .collect()
}

fn start(flavour: &str, dir: &Path) -> Fixture {
    build_fixtures();
    let path = fixture_path(flavour, "hangs");
    assert!(
        path.exists(),
        "{} is not built: run scripts/build-fixtures",
        path.display()
    );
    let m = dir.join("manifest");
    let leak = dir.join("leak");
    Fixture::start(
        flavour,
        "hangs",
        &[m.to_str().expect("utf-8"), leak.to_str().expect("utf-8")],
    )
}

fn on(w: &Waits, id: u64) -> &WaitsOn {
    w.by_goroutine
        .get(&id)
        .unwrap_or_else(|| panic!("goroutine {id} missing"))
}

/// The one channel `ids` all wait on with `op`.
fn shared_chan(w: &Waits, ids: &[u64], op: ChanOp, label: &str) -> u64 {
    let chans: BTreeSet<u64> = ids
        .iter()
        .map(|&id| match on(w, id) {
            WaitsOn::Chan { chan, op: o } if *o == op && *chan != 0 => *chan,
            other => panic!("{label}: goroutine {id} waits on {other:?}, not a {op:?}"),
        })
        .collect();
    assert_eq!(chans.len(), 1, "{label}: {ids:?} wait on {chans:x?}");
    *chans.first().expect("one")
}

/// The one sync object `ids` all wait on as `kind`.
fn shared_sync(w: &Waits, ids: &[u64], kind: SyncKind, label: &str) -> u64 {
    let objects: BTreeSet<u64> = ids
        .iter()
        .map(|&id| match on(w, id) {
            WaitsOn::Sync {
                object, kind: k, ..
            } if *k == kind => *object,
            other => panic!("{label}: goroutine {id} waits on {other:?}, not a {kind:?}"),
        })
        .collect();
    assert_eq!(objects.len(), 1, "{label}: {ids:?} wait on {objects:x?}");
    *objects.first().expect("one")
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v
}

/// Every scenario's goroutines wait on what the source says.
fn check(label: &str, w: &Waits, m: &BTreeMap<String, Vec<u64>>, naming: Naming, live: bool) {
    let ids = |cat: &str| -> &[u64] {
        m.get(cat)
            .unwrap_or_else(|| panic!("{label}: no {cat} in the manifest"))
    };
    // `want` with its field path; without DWARF only the variable.
    let name = |n: Option<&String>, want: &str| {
        let want = match naming {
            Naming::Fields => Some(want),
            // `main.state.mu` → `main.state`.
            Naming::Variables => {
                let end = want
                    .match_indices('.')
                    .nth(1)
                    .map_or(want.len(), |(i, _)| i);
                want.get(..end)
            }
            Naming::Nothing => None,
        };
        assert_eq!(n.map(String::as_str), want, "{label}");
    };

    // A mutex held across a network read: the holder in IO, the others
    // on the client's mutex (a heap object: no name).
    let holder = ids("io_holder")[0];
    match on(w, holder) {
        WaitsOn::Io(io) if io.fd.is_some() && io.mode == IoMode::Read => {
            let IoWait {
                fd: Some(fd),
                local,
                peer,
                ..
            } = io.as_ref()
            else {
                unreachable!("the guard checked fd");
            };
            assert!(*fd > 2, "{label}: fd {fd}");
            if live {
                for a in [local, peer] {
                    let a = a
                        .as_deref()
                        .unwrap_or_else(|| panic!("{label}: no address"));
                    assert!(a.starts_with("127.0.0.1:"), "{label}: {a}");
                }
                assert_ne!(local, peer, "{label}");
            }
        }
        other => panic!("{label}: io_holder waits on {other:?}"),
    }
    let mu = shared_sync(w, ids("mutex_waiters"), SyncKind::Mutex, label);
    let st = &w.syncs[&mu];
    assert_eq!(st.waiters, sorted(ids("mutex_waiters")), "{label}");
    assert_eq!(st.locked, Some(true), "{label}");
    assert_eq!(st.name, None, "{label}: a heap mutex has no name");

    // The cycle: b waits on main.state.mu, which a holds while it waits
    // to send on a channel nobody else receives from.
    let state_mu = shared_sync(w, ids("cycle_b"), SyncKind::Mutex, label);
    name(w.syncs[&state_mu].name.as_ref(), "main.state.mu");
    assert_eq!(w.syncs[&state_mu].locked, Some(true), "{label}");
    let handoff = shared_chan(w, ids("cycle_a"), ChanOp::Send, label);
    assert_eq!(w.chans[&handoff].send_waiters, ids("cycle_a"), "{label}");
    assert!(w.chans[&handoff].recv_waiters.is_empty(), "{label}");

    // Orphans: five channels, one receiver each.
    let mut orphans = BTreeSet::new();
    for &id in ids("orphans") {
        let c = shared_chan(w, &[id], ChanOp::Recv, label);
        assert_eq!(w.chans[&c].recv_waiters, [id], "{label}");
        assert_eq!(w.chans[&c].cap, 0, "{label}");
        orphans.insert(c);
    }
    assert_eq!(orphans.len(), 5, "{label}");

    // Idle workers on main.jobs.
    let jobs = shared_chan(w, ids("workers"), ChanOp::Recv, label);
    assert_eq!(
        sorted(&w.chans[&jobs].recv_waiters),
        sorted(ids("workers")),
        "{label}"
    );
    name(w.chans[&jobs].name.as_ref(), "main.jobs");
    assert_eq!(w.chans[&jobs].elem_type.as_deref(), Some("int"), "{label}");
    assert!(!w.chans[&jobs].closed, "{label}");

    // A sleeper that alone could feed two receivers.
    assert!(
        matches!(on(w, ids("sleeper")[0]), WaitsOn::Sleep { until_ns: Some(t) } if *t > 0),
        "{label}: {:?}",
        on(w, ids("sleeper")[0])
    );
    let c = shared_chan(w, ids("sleeper_waiters"), ChanOp::Recv, label);
    assert_eq!(
        sorted(&w.chans[&c].recv_waiters),
        sorted(ids("sleeper_waiters")),
        "{label}"
    );

    // A WaitGroup whose three workers wait on a channel nobody closes.
    let wg = shared_sync(w, ids("wg_waiter"), SyncKind::WaitGroup, label);
    assert_eq!(w.syncs[&wg].counter, Some(3), "{label}");
    let stuck = shared_chan(w, ids("wg_workers"), ChanOp::Recv, label);
    assert_eq!(
        w.chans[&stuck].elem_type.as_deref(),
        Some("struct {}"),
        "{label}"
    );
    assert_eq!(
        sorted(&w.chans[&stuck].recv_waiters),
        sorted(ids("wg_workers")),
        "{label}"
    );

    // Sleeping readers hold main.table; a writer waits for them, a late
    // reader behind the writer.
    for &id in ids("rw_readers") {
        assert!(
            matches!(on(w, id), WaitsOn::Sleep { .. }),
            "{label}: {:?}",
            on(w, id)
        );
    }
    let table = shared_sync(w, ids("rw_writer"), SyncKind::RWMutexWrite, label);
    let late = shared_sync(w, ids("rw_late_reader"), SyncKind::RWMutexRead, label);
    assert_eq!(table, late, "{label}: the late reader waits on main.table");
    let st = &w.syncs[&table];
    name(st.name.as_ref(), "main.table.RWMutex");
    assert_eq!(st.counter, Some(2), "{label}: two readers hold it");
    assert_eq!(st.writer_waiting, Some(ids("rw_writer")[0]), "{label}");

    // A Cond nobody signals.
    let cond = shared_sync(w, ids("cond_waiters"), SyncKind::Cond, label);
    assert_eq!(
        w.syncs[&cond].waiters,
        sorted(ids("cond_waiters")),
        "{label}"
    );
    assert_eq!(
        w.syncs[&cond].name, None,
        "{label}: the Cond is on the heap"
    );
    let held = w.syncs[&cond].held_by.as_deref();
    match naming {
        Naming::Nothing => assert_eq!(held, None, "{label}"),
        _ => assert_eq!(held, Some("main.ready"), "{label}"),
    }

    assert_eq!(
        on(w, ids("select_forever")[0]),
        &WaitsOn::Select { cases: Vec::new() },
        "{label}"
    );
}

/// One slot per sudog the leak rule hides, on every release (goat applies
/// Go 1.27's rule to all of them): each chan wait's sudog, each select
/// case's, and each sync wait's semaphore sudog. Before 1.26 a `Cond`'s
/// sudog names no address (`elem` is nil): nothing to hide.
fn untraceable_checked(label: &str, release: &str, dump: &Dump, w: &Waits) {
    let old_cond = release != "go1.27";
    let mut want = 0;
    for g in &dump.goroutines {
        let hidden = match w.by_goroutine.get(&g.id) {
            Some(WaitsOn::Chan { chan, .. }) if *chan != 0 => 1,
            Some(WaitsOn::Select { cases }) => cases.len(),
            Some(WaitsOn::Sync {
                kind: SyncKind::Cond,
                ..
            }) if old_cond => 0,
            Some(WaitsOn::Sync { .. }) => 1,
            _ => 0,
        };
        want += hidden;
    }
    assert!(want >= 25, "{label}: only {want} chan and sync waits");
    assert_eq!(w.untraceable_slots.len(), want, "{label}");
    let distinct: BTreeSet<u64> = w.untraceable_slots.iter().copied().collect();
    assert_eq!(distinct.len(), want, "{label}: slots repeat");
}

#[test]
fn every_scenario_waits_on_what_its_source_says_live() {
    for release in RELEASES {
        for kind in KINDS {
            let flavour = format!("{release}-{kind}");
            let dir = scratch_dir(&format!("waits-{flavour}"));
            let fx = start(&flavour, &dir);
            let m = manifest(&dir.join("manifest"));
            let insp = Inspector::open_pid(fx.pid(), &mut |_| {}).expect("open");
            let (dump, w) = insp.waits().expect("waits");
            let label = format!("{flavour} live");
            check(&label, &w, &m, Naming::of(kind), true);
            untraceable_checked(&label, release, &dump, &w);
            syscalls_checked(&label, fx.pid(), &dump, &w);
            if flavour == "go1.27-exe" {
                after_leak_detection(&dir, &fx, &m);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Go 1.27's leak detection (the fixture runs it on SIGUSR1) hides the
/// sudogs' objects from a GC cycle and marks leaked goroutines: once it
/// is over, every scenario still reads the same, leaked or not.
fn after_leak_detection(dir: &Path, fx: &Fixture, m: &BTreeMap<String, Vec<u64>>) {
    let done = dir.join("leak.done");
    let _ = std::fs::remove_file(&done);
    let sent = std::process::Command::new("kill")
        .args(["-USR1", &fx.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let start = std::time::Instant::now();
    while !done.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the fixture wrote no leak profile"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let profile = std::fs::read_to_string(dir.join("leak")).expect("the leak profile");
    let insp = Inspector::open_pid(fx.pid(), &mut |_| {}).expect("open");
    let (dump, w) = insp.waits().expect("waits");
    let label = "go1.27-exe after leak detection";
    check(label, &w, m, Naming::Fields, true);
    untraceable_checked(label, "go1.27", &dump, &w);
    assert!(!profile.contains("unsupported"), "{profile}");
}

/// A goroutine in a system call is given its thread's call: the number
/// the kernel shows in `/proc/PID/task/TID/syscall` (the program is idle:
/// its threads stay in the calls they were stopped in). Go 1.19's signal
/// goroutine waits in one (futex); later releases park it instead.
fn syscalls_checked(label: &str, pid: i32, dump: &Dump, w: &Waits) {
    const G_SYSCALL: u32 = 3;
    for g in dump
        .goroutines
        .iter()
        .filter(|g| g.status_code == G_SYSCALL)
    {
        let Some(m) = g.m else { continue };
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{}/syscall", m.tid))
            .unwrap_or_default();
        let Some(Ok(kernel)) = text.split_whitespace().next().map(str::parse::<u64>) else {
            continue; // "running", or gone
        };
        match on(w, g.id) {
            WaitsOn::Syscall { nr, .. } => assert_eq!(*nr, Some(kernel), "{label}: {}", g.id),
            other => panic!("{label}: goroutine {} in a syscall gave {other:?}", g.id),
        }
    }
}

#[test]
fn every_scenario_waits_on_what_its_source_says_in_a_core() {
    for release in RELEASES {
        let flavour = format!("{release}-pie");
        let dir = scratch_dir(&format!("waits-core-{flavour}"));
        let fx = start(&flavour, &dir);
        let m = manifest(&dir.join("manifest"));
        let core = dir.join("core");
        write_core(fx.pid(), &core);
        let insp = Inspector::open_core(&core, None, &mut |_| {}).expect("open core");
        let (dump, w) = insp.waits().expect("waits");
        let label = format!("{flavour} core");
        check(&label, &w, &m, Naming::Fields, false);
        untraceable_checked(&label, release, &dump, &w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
