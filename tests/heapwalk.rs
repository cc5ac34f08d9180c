//! The heap walker (`goat::heapwalk`) on a core of `heapobjs`, against what
//! the program's own runtime said: `MemStats.HeapObjects` and `HeapAlloc`
//! after two collections (and the same again after the core), the addresses it
//! printed (found by `object_of`, with their size classes), a pointer
//! field and a scalar field of the same objects (in `pointer_slots` and
//! not), and that marking from the global roots plus every goroutine's
//! stack (scanned conservatively from `sp` to `stack.hi`) reaches every
//! allocated object, since after a collection every allocated object is
//! live.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use common::{scratch_dir, write_core};
use goat::binary::Binary;
use goat::corefile::reader::CoreFile;
use goat::goruntime::GoProgram;
use goat::heapwalk::{global_roots, Heap, Marks, Precision};
use goat::process::{Memory, MemoryExt, Target};

/// `key=value` pairs of the fixture's line, values parsed (hex with 0x).
fn parse_line(line: &str) -> HashMap<String, u64> {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"), "heapobjs said: {line}");
    parse_pairs(words)
}

fn parse_pairs<'a>(words: impl Iterator<Item = &'a str>) -> HashMap<String, u64> {
    words
        .map(|w| {
            let (k, v) = w.split_once('=').expect("key=value");
            let v = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            }
            .expect("a number");
            (k.to_string(), v)
        })
        .collect()
}

struct Opened {
    core: CoreFile,
    prog: GoProgram,
    bias: u64,
}

fn open_core(path: &Path) -> Opened {
    let core = CoreFile::open(path).expect("open the core");
    let exe = core.executable().expect("the core names its executable");
    let bin = Binary::open(&exe).expect("open the executable");
    let mut prog = GoProgram::load(bin).expect("load the program");
    let bias = prog
        .load_bias(core.mappings(), &exe)
        .expect("the executable's load bias");
    prog.settle_layout(&core, bias).expect("settle the layout");
    Opened { core, prog, bias }
}

/// Every live goroutine's stack words from `sp` (its saved one, or the
/// syscall's) to `stack.hi`: the values there, as conservative roots.
fn stack_roots(o: &Opened) -> Vec<u64> {
    const G_DEAD: u32 = 6;
    let mem: &dyn Memory = &o.core;
    let globals = o.prog.locate(mem, o.bias).expect("runtime globals");
    let l = &o.prog.layout().g;
    let array = mem.read_u64(globals.allgs).expect("allgs");
    let len = mem.read_u64(globals.allgs + 8).expect("allgs len");
    assert!(len > 0 && len < 100_000, "allgs has {len} goroutines");
    let mut values = Vec::new();
    for i in 0..len {
        let g = mem.read_u64(array + i * 8).expect("a g pointer");
        let status = mem.read_u32(g + l.atomicstatus).expect("g status") & !0x1000;
        if status == G_DEAD {
            continue;
        }
        let lo = mem.read_u64(g + l.stack_lo).expect("stack.lo");
        let hi = mem.read_u64(g + l.stack_hi).expect("stack.hi");
        let sp = [l.sched_sp, l.syscallsp]
            .iter()
            .map(|&off| mem.read_u64(g + off).expect("sp"))
            .find(|&sp| sp >= lo && sp < hi)
            .unwrap_or(lo);
        let bytes = mem
            .read_vec(sp & !7, (hi - (sp & !7)) as usize)
            .expect("a goroutine's stack");
        values.extend(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }
    values
}

/// Size classes of the fixture's objects as each release rounds them:
/// `big` is 640 bytes with pointers, which Go 1.22+ gives an 8-byte malloc
/// header (648 rounds up to the 704 class).
fn big_class(minor: u32) -> u64 {
    if minor >= 22 {
        704
    } else {
        640
    }
}

/// `heapobjs` running, its stdin and stdout piped.
struct HeapObjs {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl HeapObjs {
    fn start(flavour: &str) -> HeapObjs {
        let path = common::fixture_path(flavour, "heapobjs");
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {} (scripts/build-fixtures): {e}", path.display()));
        let lines = BufReader::new(child.stdout.take().expect("stdout"));
        HeapObjs { child, lines }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).expect("read heapobjs");
        line.trim().to_string()
    }

    /// The runtime's counts again, read now.
    fn again(&mut self) -> (u64, u64) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"x").expect("poke heapobjs");
        let line = self.line();
        let counts = line
            .strip_prefix("again")
            .map(|rest| parse_pairs(rest.split_whitespace()));
        let counts = counts.unwrap_or_else(|| panic!("heapobjs said {line:?}"));
        (counts["heapobjects"], counts["heapalloc"])
    }
}

impl Drop for HeapObjs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check(flavour: &str) {
    let mut fx = HeapObjs::start(flavour);
    let line = fx.line();
    let mut want = parse_line(&line);
    let dir = scratch_dir(&format!("heapwalk-{flavour}"));
    let core_path = dir.join("core");
    // The runtime may allocate on its own (a new thread's m and gs, when
    // the machine is loaded): the core is compared with the counts read
    // before it only when the counts read after it agree.
    let mut cores = 0;
    loop {
        write_core(fx.child.id() as i32, &core_path);
        cores += 1;
        let now = fx.again();
        if now == (want["heapobjects"], want["heapalloc"]) {
            break;
        }
        assert!(
            cores < 5,
            "{flavour}: the heap changed around each of 5 cores: {line}"
        );
        want.insert("heapobjects".into(), now.0);
        want.insert("heapalloc".into(), now.1);
    }
    drop(fx);
    let o = open_core(&core_path);
    let mem: &dyn Memory = &o.core;
    let minor = o.prog.version().minor;
    let heap = Heap::load(&o.prog, mem, o.bias).expect("load the heap");
    let totals = heap.totals();
    let ctx = format!("{flavour}: {line}\n{totals:?}");

    // Counted from the spans, the runtime's own MemStats.
    assert_eq!(totals.objects, want["heapobjects"], "HeapObjects, {ctx}");
    assert_eq!(totals.bytes, want["heapalloc"], "HeapAlloc, {ctx}");
    assert_eq!(totals.bad_spans, 0, "{ctx}");
    assert_eq!(totals.count_mismatches, 0, "allocCount, {ctx}");
    assert_eq!(
        totals.runtime_pages_in_use,
        Some(totals.pages),
        "mheap_.pagesInUse, {ctx}"
    );
    let listed: Vec<_> = heap.objects().collect();
    assert_eq!(listed.len() as u64, totals.objects, "{ctx}");
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].base + w[0].size <= w[1].base),
        "objects() in address order, {ctx}"
    );

    // The printed addresses, with the slot sizes the runtime gives them.
    let sizes = [
        ("node", 24),
        ("scalar", 32),
        ("tiny", 16),
        ("big_ptr", big_class(minor)),
        ("large_scalar", 1 << 20),
        ("large_ptr", 802_816), // 100,000 pointers: 98 pages
        ("slice", 416),         // 50 pointers, 400 bytes: the 416 class
        ("fin", 16),
        ("stack_only", 24),
    ];
    for (key, size) in sizes {
        let addr = want[key];
        let obj = heap
            .object_of(addr)
            .unwrap_or_else(|| panic!("{key} at {addr:#x} not found, {ctx}"));
        assert_eq!(obj.size, size, "{key}'s slot size, {ctx}");
        assert!(
            obj.base <= addr && addr < obj.base + obj.size,
            "{key}, {ctx}"
        );
    }
    assert_eq!(
        heap.object_of(want["node"]).map(|o| o.base),
        Some(want["node"])
    );
    assert!(heap.object_of(want["scalar"]).is_some_and(|o| o.noscan));
    assert!(heap.object_of(0).is_none() && heap.object_of(o.bias + 0x1000).is_none());

    // A pointer field's slot is found, a scalar field's is not.
    for (ptr, scalar) in [
        ("node_ptr", "node_scalar"),
        ("big_ptr", "big_scalar"),
        ("large_ptr", "large_ptr"),
    ] {
        let obj = heap.object_of(want[ptr]).expect("object");
        let mut slots = Vec::new();
        let precision = heap.pointer_slots(mem, &obj, &mut slots);
        assert_eq!(precision, Precision::Exact, "{ptr}, {ctx}");
        assert!(
            slots.contains(&want[ptr]),
            "{ptr} not a pointer slot, {ctx}"
        );
        if scalar != ptr {
            assert!(
                !slots.contains(&want[scalar]),
                "{scalar} taken for a pointer, {ctx}"
            );
        }
    }

    // Marking from the roots reaches every allocated object.
    let roots = global_roots(&o.prog, mem, o.bias, &heap).expect("global roots");
    assert!(roots.unreadable.is_empty(), "{:?}, {ctx}", roots.unreadable);
    let global_only = roots
        .slots
        .iter()
        .find(|s| s.value == want["node"])
        .expect("the slot of main.globalOnly");
    assert_eq!(roots.name(global_only), Some("main.globalOnly"), "{ctx}");
    let mut marks = Marks::new(&heap);
    let skip = goat::heapwalk::SkipSlots::default();
    let from_globals = marks.mark_from(&heap, mem, roots.values(), &skip);
    assert!(from_globals > 0, "{ctx}");
    assert!(marks.is_marked(&heap, want["node"]));
    assert!(
        !marks.is_marked(&heap, want["stack_only"]),
        "stack_only reached from globals, {ctx}"
    );
    let from_stacks = marks.mark_from(&heap, mem, stack_roots(&o), &skip);
    assert!(marks.is_marked(&heap, want["stack_only"]), "{ctx}");
    assert_eq!(marks.mark_from(&heap, mem, roots.values(), &skip), 0);
    let unmarked: Vec<_> = listed
        .iter()
        .filter(|obj| !marks.is_marked(&heap, obj.base))
        .collect();
    assert!(
        unmarked.is_empty(),
        "{} objects not reached ({from_globals} from globals, {from_stacks} from stacks): {:x?}, {ctx}",
        unmarked.len(),
        &unmarked[..unmarked.len().min(20)]
    );
    assert_eq!(marks.marked(), (totals.objects, totals.bytes), "{ctx}");
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! flavour_tests {
    ($($name:ident: $flavour:literal,)*) => {$(
        #[test]
        fn $name() {
            common::build_fixtures();
            check($flavour);
        }
    )*};
}

flavour_tests! {
    heap_walk_matches_the_runtime_go1_19_exe: "go1.19-exe",
    heap_walk_matches_the_runtime_go1_19_pie: "go1.19-pie",
    heap_walk_matches_the_runtime_go1_21_exe: "go1.21-exe",
    heap_walk_matches_the_runtime_go1_21_pie: "go1.21-pie",
    heap_walk_matches_the_runtime_go1_24_exe: "go1.24-exe",
    heap_walk_matches_the_runtime_go1_24_pie: "go1.24-pie",
    heap_walk_matches_the_runtime_go1_27_exe: "go1.27-exe",
    heap_walk_matches_the_runtime_go1_27_pie: "go1.27-pie",
}
