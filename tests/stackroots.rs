//! `goruntime::stack_pointer_slots`, the GC's view of a goroutine's stack,
//! against the runtime's own collector: the `stackptrs` fixture parks
//! goroutines holding a heap object in a live local, a dead spill slot, a
//! stack object only a callee's argument reaches, and a live argument; it
//! sets a finalizer on each, collects a few times, and names the objects
//! its runtime freed. A core of it (`goat core`) is then scanned: the
//! values in the returned slots must include exactly the objects the
//! runtime kept, and the freed one must still sit in its goroutine's stack
//! (else the test would prove nothing). A fifth goroutine's deferred
//! closure, held only by its defer record, must be in a slot too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{build_fixtures, fixture_path, scratch_dir, write_core, Fixture};
use goat::binary::Binary;
use goat::corefile::CoreFile;
use goat::goruntime::{stack_pointer_slots, Capture, GoProgram, Goroutine};
use goat::process::{MemoryExt, Target};

const FLAVOURS: [&str; 16] = [
    "go1.19-exe",
    "go1.19-pie",
    "go1.19-noopt",
    "go1.19-stripped",
    "go1.21-exe",
    "go1.21-pie",
    "go1.21-noopt",
    "go1.21-stripped",
    "go1.24-exe",
    "go1.24-pie",
    "go1.24-noopt",
    "go1.24-stripped",
    "go1.27-exe",
    "go1.27-pie",
    "go1.27-noopt",
    "go1.27-stripped",
];

/// Each case of the fixture and the function its goroutine is parked in.
const CASES: [(&str, &str); 4] = [
    ("live", "main.liveLocal"),
    ("dead", "main.deadLocal"),
    ("object", "main.parkWith"),
    ("arg", "main.argLive"),
];

/// The fixture's line: each case's object address, and the cases whose
/// object the runtime freed.
fn parse_line(line: &str) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut addrs = BTreeMap::new();
    let mut collected = Vec::new();
    for word in line.split_whitespace().skip(1) {
        let (k, v) = word.split_once('=').expect("key=value");
        if k == "collected" {
            collected = v
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        } else {
            let hex = v.trim_start_matches("0x");
            addrs.insert(k.to_string(), u64::from_str_radix(hex, 16).expect("hex"));
        }
    }
    (addrs, collected)
}

#[test]
fn slots_hold_what_the_runtime_keeps_alive_and_not_what_it_freed() {
    build_fixtures();
    let dir = scratch_dir("stackroots");
    for flavour in FLAVOURS {
        let (fx, line) = Fixture::start_line(flavour, "stackptrs", &[]);
        assert!(line.starts_with("ready "), "{flavour}: {line}");
        let (addrs, collected) = parse_line(&line);
        assert_eq!(addrs.len(), 5, "{flavour}: {line}");
        if !flavour.ends_with("noopt") {
            assert_eq!(
                collected,
                ["dead"],
                "{flavour}: the fixture's premise (only the dead slot's object is freed) \
                 does not hold: {line}"
            );
        }
        let core = dir.join(format!("core-{flavour}"));
        write_core(fx.pid(), &core);
        drop(fx);
        check_core(flavour, &core, &addrs, &collected);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The core at `path` of fixture `name` built as `flavour`, its program,
/// load bias and goroutines.
fn open_core(flavour: &str, name: &str, path: &Path) -> (CoreFile, GoProgram, u64, Vec<Goroutine>) {
    let core = CoreFile::open(path).expect("open the core");
    let exe = fixture_path(flavour, name);
    let named = core.executable().expect("the core names its executable");
    let mut prog = GoProgram::load(Binary::open(&exe).expect("open")).expect("load");
    let bias = prog.load_bias(core.mappings(), &named).expect("bias");
    prog.settle_layout(&core, bias).expect("layout");
    let globals = prog.locate(&core, bias).expect("globals");
    let cap = prog
        .capture(&core, &globals, None, Capture::default())
        .expect("capture");
    let dump = prog.decode(&cap, bias).expect("decode");
    (core, prog, bias, dump.goroutines)
}

fn check_core(flavour: &str, core: &Path, addrs: &BTreeMap<String, u64>, collected: &[String]) {
    let (core, prog, bias, goroutines) = open_core(flavour, "stackptrs", core);
    check_deferred(flavour, &prog, &core, bias, &goroutines, addrs["deferfn"]);
    for (case, func) in CASES {
        let g = parked_in(&goroutines, func)
            .unwrap_or_else(|| panic!("{flavour}: no goroutine in {func}"));
        let mut slots = Vec::new();
        let scan = stack_pointer_slots(&prog, &core, bias, g, &mut slots, &mut Default::default());
        let ctx = format!("{flavour} {case} ({func}): {scan:?}");
        assert_eq!(scan.incomplete, None, "{ctx}");
        assert!(scan.precise_frames >= 3, "{ctx}");
        assert_eq!(scan.conservative_frames, 0, "{ctx}");
        let values: Vec<u64> = slots
            .iter()
            .map(|&s| core.read_u64(s).expect("a slot reads"))
            .collect();
        let obj = addrs[case];
        let freed = collected.iter().any(|c| c == case);
        assert_eq!(
            values.contains(&obj),
            !freed,
            "{ctx}: object {obj:#x} {} by the runtime; slot values {values:x?}",
            if freed { "freed" } else { "kept" }
        );
        if freed {
            // The premise: the dead pointer is still on the stack.
            let sp = g.frames.first().map(|f| f.sp).expect("frames");
            let hi = prog.stack_hi(&core, g.gp).expect("stack.hi");
            let on_stack = (sp..hi)
                .step_by(8)
                .any(|a| core.read_u64(a).is_ok_and(|v| v == obj));
            assert!(
                on_stack,
                "{ctx}: the freed object's pointer is not on the stack any more: \
                 the fixture no longer tests a dead slot"
            );
        }
    }
}

/// The deferred closure of a pending defer is kept by its `_defer` record's
/// `fn` (the record in a slot of the list the `g` heads).
fn check_deferred(
    flavour: &str,
    prog: &GoProgram,
    core: &CoreFile,
    bias: u64,
    gs: &[Goroutine],
    closure: u64,
) {
    let g = parked_in(gs, "main.deferred").unwrap_or_else(|| panic!("{flavour}: no main.deferred"));
    let mut slots = Vec::new();
    let scan = stack_pointer_slots(prog, core, bias, g, &mut slots, &mut Default::default());
    assert_eq!(scan.incomplete, None, "{flavour}: {scan:?}");
    let values: Vec<u64> = slots
        .iter()
        .filter_map(|&s| core.read_u64(s).ok())
        .collect();
    assert!(
        values.contains(&closure),
        "{flavour}: the deferred closure {closure:#x} is not in a slot: {values:x?}"
    );
}

fn parked_in<'g>(gs: &'g [Goroutine], func: &str) -> Option<&'g Goroutine> {
    gs.iter()
        .find(|g| g.frames.iter().any(|f| &*f.function == func))
}

/// Every goroutine of `states` (the runtime's own included, a 200-frame
/// recursion whose printed stack is elided, and one spinning on a thread
/// or preempted) is walked to its outermost frame: parked ones wholly by
/// their maps, the spinning one's interrupted frame word by word.
#[test]
fn every_goroutine_is_scanned_to_its_end_and_a_running_one_conservatively() {
    build_fixtures();
    let dir = scratch_dir("stackroots-states");
    for flavour in ["go1.19-pie", "go1.21-exe", "go1.24-pie", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "states", &["spin"]);
        let path = dir.join(format!("core-{flavour}"));
        write_core(fx.pid(), &path);
        drop(fx);
        let (core, prog, bias, goroutines) = open_core(flavour, "states", &path);
        let mut saw = (false, false);
        for g in goroutines.iter().filter(|g| g.unreadable.is_none()) {
            let mut slots = Vec::new();
            let scan =
                stack_pointer_slots(&prog, &core, bias, g, &mut slots, &mut Default::default());
            let in_func = |name: &str| g.frames.iter().any(|f| &*f.function == name);
            let ctx = format!("{flavour} goroutine {} [{}]: {scan:?}", g.id, g.status);
            assert_eq!(scan.incomplete, None, "{ctx}");
            assert!(scan.precise_frames >= 1, "{ctx}");
            if in_func("main.spin") {
                saw.0 = true;
                assert!(scan.conservative_frames >= 1, "{ctx}");
                // The interrupted frame's every word is a slot.
                let f = g.frames.iter().find(|f| &*f.function == "main.spin");
                let sp = f.map(|f| f.sp).unwrap_or(0);
                assert!(slots.contains(&sp), "{ctx}: {slots:x?}");
            } else {
                let preempted = in_func("runtime.asyncPreempt");
                assert_eq!(scan.conservative_frames > 0, preempted, "{ctx}");
            }
            if in_func("main.recurse") {
                saw.1 = true;
                assert!(scan.precise_frames > 200, "{ctx}");
            }
        }
        assert_eq!(
            saw,
            (true, true),
            "{flavour}: no spinning or recursing goroutine"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
