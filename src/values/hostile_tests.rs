//! Maps and channels over synthetic DWARF types and memory that is torn or
//! hostile (cycles, huge counts, unreadable pointers): every walk ends with
//! a partial result marked as such, never a hang or a panic.

use std::collections::BTreeMap;

use super::types::kind;
use super::{Place, Scope, Value};
use crate::binary::dwarf_vars::{Member, Type, VarIndex};
use crate::process::{Memory, ReadFault};

/// Sparse memory: regions by start address.
#[derive(Default)]
struct Sparse(BTreeMap<u64, Vec<u8>>);

impl Sparse {
    fn put(&mut self, addr: u64, words: &[u64]) {
        self.0
            .insert(addr, words.iter().flat_map(|w| w.to_le_bytes()).collect());
    }
}

impl Memory for Sparse {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let (start, bytes) = self.0.range(..=addr).next_back().ok_or(fault)?;
        let off = (addr - start) as usize;
        let src = bytes.get(off..off + buf.len()).ok_or(fault)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fn ty(tag: gimli::DwTag, name: &str, size: u64, k: u8) -> Type {
    Type {
        tag,
        name: name.into(),
        size: Some(size),
        kind: k,
        target: None,
        elem: None,
        key: None,
        encoding: 0,
        count: None,
        members: Vec::new(),
    }
}

fn st(name: &str, size: u64, fields: &[(&str, u64, usize)]) -> Type {
    let mut t = ty(gimli::DW_TAG_structure_type, name, size, kind::STRUCT);
    t.members = fields
        .iter()
        .map(|&(n, offset, ty)| Member {
            name: n.into(),
            offset,
            ty: Some(ty),
            embedded: false,
        })
        .collect();
    t
}

fn ptr(to: usize) -> Type {
    let mut t = ty(gimli::DW_TAG_pointer_type, "*x", 8, kind::POINTER);
    t.target = Some(to);
    t
}

fn array(of: usize, n: u64, size: u64) -> Type {
    let mut t = ty(gimli::DW_TAG_array_type, "[8]x", size, kind::ARRAY);
    (t.target, t.count) = (Some(of), Some(n));
    t
}

// Type offsets of the index below.
const INT: usize = 1;
const U8: usize = 2;
const SWISS: usize = 10;
const CLASSIC: usize = 20;
const CHAN: usize = 30;

/// `map[int]int` both ways and `chan int`, with runtime-like layouts.
fn index() -> VarIndex {
    let mut ix = VarIndex::default();
    let mut add = |off: usize, t: Type| ix.types.insert(off, t);
    add(INT, ty(gimli::DW_TAG_base_type, "int", 8, kind::INT));
    add(U8, ty(gimli::DW_TAG_base_type, "uint8", 1, kind::UINT));
    for (off, hdr) in [(SWISS, SWISS + 2), (CLASSIC, CLASSIC + 2)] {
        let mut m = ty(gimli::DW_TAG_typedef, "map[int]int", 8, kind::MAP);
        (m.target, m.key, m.elem) = (Some(off + 1), Some(INT), Some(INT));
        add(off, m);
        add(off + 1, ptr(hdr));
    }
    // map<int,int> {used, seed, dirPtr **table, dirLen}; table {groups};
    // groupReference {data *group, lengthMask}; group {ctrl, slots}.
    add(
        12,
        st(
            "map<int,int>",
            48,
            &[("used", 0, INT), ("dirPtr", 16, 13), ("dirLen", 24, INT)],
        ),
    );
    add(13, ptr(14));
    add(14, ptr(15));
    add(
        15,
        st(
            "table<int,int>",
            32,
            &[("used", 0, INT), ("groups", 16, 16)],
        ),
    );
    add(
        16,
        st(
            "groupReference<int,int>",
            16,
            &[("data", 0, 17), ("lengthMask", 8, INT)],
        ),
    );
    add(17, ptr(18));
    add(18, st("group", 136, &[("ctrl", 0, INT), ("slots", 8, 19)]));
    add(19, array(9, 8, 128));
    add(9, st("slot", 16, &[("key", 0, INT), ("elem", 8, INT)]));
    // hash<int,int> {count, flags, B, buckets, oldbuckets}; bucket<int,int>.
    let hash = [("count", 0, INT), ("flags", 8, U8), ("B", 9, U8)];
    let mut hash = hash.to_vec();
    hash.extend([("buckets", 16, 23), ("oldbuckets", 24, 23)]);
    add(22, st("hash<int,int>", 48, &hash));
    add(23, ptr(24));
    let bucket = [
        ("tophash", 0, 25),
        ("keys", 8, 26),
        ("values", 72, 26),
        ("overflow", 136, 23),
    ];
    add(24, st("bucket<int,int>", 144, &bucket));
    add(25, array(U8, 8, 8));
    add(26, array(INT, 8, 64));
    // chan int -> *hchan<int>; waitq<int> {first *sudog<int>}; g {goid}.
    let mut c = ty(gimli::DW_TAG_typedef, "chan int", 8, kind::CHAN);
    (c.target, c.elem) = (Some(31), Some(INT));
    add(CHAN, c);
    add(31, ptr(32));
    let hchan = [("qcount", 0, INT), ("dataqsiz", 8, INT), ("buf", 16, INT)];
    let mut hchan = hchan.to_vec();
    hchan.extend([
        ("closed", 28, INT),
        ("recvx", 48, INT),
        ("recvq", 56, 33),
        ("sendq", 72, 33),
    ]);
    add(32, st("hchan<int>", 96, &hchan));
    add(
        33,
        st("waitq<int>", 16, &[("first", 0, 34), ("last", 8, 34)]),
    );
    add(34, ptr(35));
    add(
        35,
        st(
            "sudog<int>",
            40,
            &[("g", 0, 36), ("next", 8, 34), ("elem", 24, 34)],
        ),
    );
    add(36, ptr(37));
    add(37, st("runtime.g", 160, &[("goid", 152, INT)]));
    ix
}

fn show(mem: &Sparse, ty: usize, addr: u64) -> String {
    let index = index();
    let s = Scope::bare(mem, &index);
    let v = Value {
        ty,
        place: Place::Bytes(addr.to_le_bytes().to_vec()),
    };
    s.format(&v)
}

/// A control word with the given slots full (h2 = 1) and the rest empty.
fn ctrl(full: &[u64]) -> u64 {
    (0..8).fold(0, |w, i| {
        w | if full.contains(&i) { 1 } else { 0x80 } << (8 * i)
    })
}

#[test]
fn swiss_small_map_and_torn_directories() {
    let mut m = Sparse::default();
    // Small map: dirLen 0, dirPtr at one group with slots 0 and 2 full.
    m.put(0x1000, &[2, 0, 0x2000, 0]);
    let mut g = vec![ctrl(&[0, 2]); 1];
    g.extend([10, 11, 0, 0, 30, 31, 0, 0]);
    g.resize(17, 0);
    m.put(0x2000, &g);
    assert_eq!(
        show(&m, SWISS, 0x1000),
        "map[int]int len: 2, [10: 11, 30: 31]"
    );
    // A directory claiming 2^40 tables at unreadable memory: cut short.
    m.put(0x3000, &[5, 0, 0x9000_0000, 1 << 40]);
    assert_eq!(
        show(&m, SWISS, 0x3000),
        "map[int]int len: 5, [...+5 more, <partial: directory of 1099511627776 tables>]"
    );
    // One table repeated in every slot, its groups at unreadable memory
    // with a 2^64 length: walked once, bounded, marked.
    m.put(0x4000, &[9, 0, 0x5000, 4]);
    m.put(0x5000, &[0x6000; 4]);
    m.put(0x6000, &[0, 0, 0xdead_0000, u64::MAX]);
    let s = show(&m, SWISS, 0x4000);
    assert!(
        s.ends_with("+9 more, <partial: unreadable memory at 0xdead0000>]"),
        "{s}"
    );
}

/// An interface whose dynamic type is an interface (Go never makes one),
/// holding itself: each level shows the next at the same depth, so only
/// the bound on nested values ends it, not a stack overflow.
#[test]
fn an_interface_holding_itself_is_cut_short() {
    const ANY: usize = 40;
    const TYPE_ADDR: u64 = 0x7000;
    let mut ix = index();
    let mut any = st("interface {}", 16, &[("_type", 0, 13), ("data", 8, 13)]);
    any.kind = kind::INTERFACE;
    ix.types.insert(ANY, any);
    ix.add_runtime_type(TYPE_ADDR, ANY);
    let mut m = Sparse::default();
    m.put(0x1000, &[TYPE_ADDR, 0x1000]);
    let show = || {
        let v = Value {
            ty: ANY,
            place: Place::Mem(0x1000),
        };
        Scope::bare(&m, &ix).format(&v)
    };
    // Run where a session runs: on a thread with the main thread's stack.
    let out = std::thread::scope(|t| {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(t, show)
            .expect("a thread")
            .join()
            .expect("no panic")
    });
    assert!(out.ends_with("<nested too deeply>"), "{out}");
    assert_eq!(
        out.matches("interface {}(interface {})").count(),
        super::limits::NESTED_PER_PRINT
    );
}

#[test]
fn classic_bucket_cycles_and_huge_b_are_bounded() {
    let mut m = Sparse::default();
    // B = 0: one bucket whose overflow points at itself.
    m.put(0x1000, &[3, 0, 0x2000, 0]);
    let mut b = vec![0x05u64 | 0x06 << 8];
    b.extend([1, 2, 0, 0, 0, 0, 0, 0, 100, 200, 0, 0, 0, 0, 0, 0, 0x2000]);
    m.put(0x2000, &b);
    assert_eq!(
        show(&m, CLASSIC, 0x1000),
        "map[int]int len: 3, [1: 100, 2: 200,...+1 more, <partial: bucket cycle>]"
    );
    // B = 255 over unreadable buckets: stops at the first failed read
    // of each bucket, within MAX_BUCKETS.
    m.put(0x3000, &[7, 0xff << 8, 0xdead_0000, 0]);
    let s = show(&m, CLASSIC, 0x3000);
    assert!(
        s.contains("<partial: unreadable memory at 0xdead0000>"),
        "{s}"
    );
}

#[test]
fn channel_ring_order_and_sudog_cycles() {
    let mut m = Sparse::default();
    // cap 3, 3 queued from recvx 1: 2, 3, 4; receivers g7 <-> g8 in a cycle.
    let mut h = vec![3, 3, 0x2000, 0, 0, 0, 1, 0x3000, 0x3000, 0xdead_0000, 0, 0];
    h[3] = 1 << 32; // closed (at 28)
    m.put(0x1000, &h);
    m.put(0x2000, &[4, 2, 3]);
    m.put(0x3000, &[0x5000, 0x4000, 0, 0, 0]);
    m.put(0x4000, &[0x6000, 0x3000, 0, 0, 0]);
    let mut g = vec![0u64; 20];
    g[19] = 7;
    m.put(0x5000, &g);
    g[19] = 8;
    m.put(0x6000, &g);
    assert_eq!(
        show(&m, CHAN, 0x1000),
        "chan int {len: 3, cap: 3, closed: true, elems: [2, 3, 4], \
         recvq: [goroutine 7, goroutine 8, <partial: sudog cycle>], \
         sendq: [<partial: unreadable sudog at 0xdead0000>]}"
    );
    // A torn count larger than the capacity shows at most cap elements.
    m.put(0x7000, &[1 << 60, 2, 0x2000, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        show(&m, CHAN, 0x7000),
        "chan int {len: 1152921504606846976, cap: 2, closed: false, elems: [4, 2], \
         recvq: [], sendq: []}"
    );
}

/// A slice header Go could never make (optimized code's DWARF pointing at a
/// stale slot) is reported, not printed as 58 TiB of elements.
#[test]
fn impossible_slice_headers_are_reported() {
    let mut index = index();
    let mut slice = st(
        "[]int",
        24,
        &[("array", 0, 40), ("len", 8, INT), ("cap", 16, INT)],
    );
    (slice.kind, slice.elem) = (kind::SLICE, Some(INT));
    index.types.insert(41, slice);
    index.types.insert(40, ptr(INT));
    let mut mem = Sparse::default();
    mem.put(0x1000, &[7, 8, 9]);
    let s = Scope::bare(&mem, &index);
    let header = |len: u64, cap: u64| Value {
        ty: 41,
        place: Place::Bytes(
            [0x1000, len, cap]
                .iter()
                .flat_map(|w: &u64| w.to_le_bytes())
                .collect(),
        ),
    };
    assert_eq!(s.format(&header(2, 3)), "[]int len: 2, cap: 3, [7,8]");
    for (len, cap) in [(58_693_126_676_432, 4_487_527), (1, 1 << 60)] {
        let out = s.format(&header(len, cap));
        assert!(out.contains("not a valid slice header"), "{out}");
    }
}

/// The value_print fuzz target's memory (fuzz/fuzz_targets/repeating.rs).
use crate::goruntime::hostile_tests::repeating::Repeating;

/// Inputs `value_print` found (fuzz/regressions/value_print/), replayed as
/// the target does: the expression before the NUL, over the memory after
/// the shift, with the `vars` fixture's DWARF.
#[test]
fn fuzz_findings_of_value_print_stay_fixed() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/go1.27-exe/vars");
    if !crate::require::require_fixture(&path) {
        return;
    }
    let bin = crate::binary::Binary::open(&path).expect("the vars fixture opens");
    let index = VarIndex::load(bin.debug_data()).expect("the vars fixture has DWARF");
    // `main.gSmall["b"]` over a map of 65536 hostile string keys: each key
    // was read in full (up to 1 MiB) to compare it with "b", for minutes.
    let input = include_bytes!(
        "../../fuzz/regressions/value_print/timeout-e21dac4445eda72131db21342b3187010548c0bd"
    );
    let nul = input.iter().position(|&b| b == 0).expect("a NUL");
    let (expr, rest) = (&input[..nul], &input[nul + 1..]);
    let mem = Repeating::of_input(rest).expect("memory after the shift");
    let mut scope = Scope::bare(&mem, &index);
    scope.types = bin.pclntab().ok().and_then(|t| t.types());
    let started = std::time::Instant::now();
    let _ = scope.eval_text(std::str::from_utf8(expr).unwrap());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// `children` pages a map by its entries, a struct by its fields and an
/// array by its elements; a page past the end is empty, a torn map is
/// marked partial rather than walked without end.
#[test]
fn children_come_a_page_at_a_time_within_bounds() {
    let mut m = Sparse::default();
    let mut g = vec![ctrl(&[0, 2]); 1];
    g.extend([10, 11, 0, 0, 30, 31, 0, 0]);
    g.resize(17, 0);
    m.put(0x1000, &[2, 0, 0x2000, 0]);
    m.put(0x2000, &g);
    m.put(0x3000, &[5, 0, 0x9000_0000, 1 << 40]);
    let index = index();
    let s = Scope::bare(&m, &index);
    let at = |ty: usize, addr: u64| Value {
        ty,
        place: Place::Bytes(addr.to_le_bytes().to_vec()),
    };
    let page = |v: &Value, start: u64, count: u64| {
        let c = s.children(v, start, count).unwrap();
        let items: Vec<String> = c
            .items
            .iter()
            .map(|(n, v)| format!("{n}={}", s.format(v)))
            .collect();
        (c.total, items, c.partial)
    };
    let map = at(SWISS, 0x1000);
    assert_eq!(page(&map, 0, 10).1, ["[10]=11", "[30]=31"]);
    assert_eq!(page(&map, 1, 1).1, ["[30]=31"]);
    assert_eq!(page(&map, 5, 1), (2, vec![], None));
    assert_eq!(s.child_count(&map), 2);
    let torn = page(&at(SWISS, 0x3000), 0, 3);
    assert_eq!(torn.0, 5);
    assert!(
        torn.2.as_deref().is_some_and(|p| p.contains("directory")),
        "{torn:?}"
    );
    // The group struct at 0x2000: ctrl, then the slots array of 8.
    let group = Value {
        ty: 18,
        place: Place::Mem(0x2000),
    };
    let (n, fields, _) = page(&group, 0, 100);
    assert_eq!((n, fields.len()), (2, 2));
    assert!(fields[0].starts_with("ctrl="), "{fields:?}");
    let slots = Value {
        ty: 19,
        place: Place::Mem(0x2008),
    };
    let (n, elems, _) = page(&slots, 2, 1);
    assert_eq!(n, 8);
    assert_eq!(elems, ["[2]=slot {key: 30, elem: 31}"]);
    // A count beyond a page is cut to one page.
    assert!(s.children(&slots, 0, u64::MAX).unwrap().items.len() <= 8);
}
