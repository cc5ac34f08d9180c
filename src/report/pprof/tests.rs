//! The profile's structure, decoded back with the same messages: what
//! pprof reads from it. `tests/stacks_pprof.rs` reads real ones with
//! `go tool pprof`.

use std::io::Read;

use prost::Message as _;

use super::*;
use crate::goruntime::{Frame, Goroutine};

fn frame(function: &str, line: u32, pc: u64, inlined: bool) -> Frame {
    Frame {
        function: function.into(),
        file: format!("/src/{function}.go").into(),
        line,
        pc,
        offset: 0,
        inlined,
        fp: 0,
        sp: 0,
        args: String::new(),
    }
}

fn goroutine(id: u64, frames: Vec<Frame>) -> Goroutine {
    Goroutine::waiting_for_tests(id, "chan receive", frames, None)
}

/// gopark at 0x1010 (innermost: a trap, not backed), then `main.inner`
/// inlined into `main.outer` at the return address 0x2020, then goexit.
fn parked(id: u64) -> Goroutine {
    goroutine(
        id,
        vec![
            frame("runtime.gopark", 7, 0x1010, false),
            frame("main.inner", 20, 0x2020, true),
            frame("main.outer", 30, 0x2020, false),
            frame("runtime.goexit", 1, 0x3030, false),
        ],
    )
}

fn decoded(p: GoroutineProfile) -> proto::Profile {
    let mut gz = Vec::new();
    p.write_gz(&mut gz).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    proto::Profile::decode(&raw[..]).unwrap()
}

/// The frames of each sample as (function, line) lists per location, leaf
/// first, with the sample's count and labels as text.
type Shown = Vec<(i64, Vec<Vec<(String, i64)>>, Vec<(String, String, i64)>)>;

fn shown(p: &proto::Profile) -> Shown {
    let s = |i: i64| p.string_table[i as usize].clone();
    let function = |id: u64| p.function.iter().find(|f| f.id == id).unwrap();
    let location = |id: u64| p.location.iter().find(|l| l.id == id).unwrap();
    p.sample
        .iter()
        .map(|sample| {
            let stack = sample
                .location_id
                .iter()
                .map(|&id| {
                    location(id)
                        .line
                        .iter()
                        .map(|l| (s(function(l.function_id).name), l.line))
                        .collect()
                })
                .collect();
            let labels = sample
                .label
                .iter()
                .map(|l| (s(l.key), s(l.str), l.num))
                .collect();
            (sample.value[0], stack, labels)
        })
        .collect()
}

fn lines(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(f, l)| (f.to_string(), *l)).collect()
}

#[test]
fn samples_merge_per_stack_and_labels_and_inlined_lines_share_a_location() {
    let mapping = ProfileMapping {
        memory_start: 0x1000,
        memory_limit: 0x4000,
        file_offset: 0,
        file: "/bin/app".into(),
        build_id: "abc".into(),
    };
    let mut p = GoroutineProfile::new(Some(&mapping));
    let job = [("job", LabelValue::Str("resize"))];
    p.add(&parked(1), &[]);
    p.add(&parked(2), &job);
    p.add(&parked(3), &[]);
    // Chunks profiled apart, then merged: the same sample adds up.
    let mut chunk = GoroutineProfile::new(Some(&mapping));
    chunk.add(&parked(4), &job);
    let waited = [(
        "minutes",
        LabelValue::Num {
            value: 3,
            unit: "minutes",
        },
    )];
    chunk.add(&parked(5), &waited);
    let mut broken = goroutine(6, Vec::new());
    broken.unreadable = Some("stack unmapped".into());
    chunk.add(&broken, &[]);
    p.merge(chunk);
    assert_eq!(p.goroutines(), 6);
    assert_eq!(p.samples(), 4);

    let d = decoded(p);
    assert_eq!(d.string_table[0], "");
    let st = &d.string_table;
    let vt = |v: &proto::ValueType| (st[v.r#type as usize].clone(), st[v.unit as usize].clone());
    let want_vt = ("goroutine".to_string(), "count".to_string());
    let types: Vec<_> = d.sample_type.iter().map(vt).collect();
    assert_eq!(types, std::slice::from_ref(&want_vt));
    assert_eq!(d.period_type.as_ref().map(vt), Some(want_vt));
    assert_eq!(d.period, 1);
    // Every string once.
    let mut sorted = st.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), st.len());

    let stack = vec![
        lines(&[("runtime.gopark", 7)]),
        lines(&[("main.inner", 20), ("main.outer", 30)]),
    ];
    let got = shown(&d);
    let l = |k: &str, v: &str, n: i64| (k.to_string(), v.to_string(), n);
    assert_eq!(
        got,
        vec![
            (2, stack.clone(), vec![]),
            (2, stack.clone(), vec![l("job", "resize", 0)]),
            (1, vec![], vec![l(UNREADABLE_LABEL, "stack unmapped", 0)]),
            (1, stack, vec![l("minutes", "", 3)]),
        ]
    );
    // The leaf stands at its PC; the caller one byte back, inside the call.
    let addresses: Vec<u64> = d.sample[0]
        .location_id
        .iter()
        .map(|&id| d.location.iter().find(|l| l.id == id).unwrap().address)
        .collect();
    assert_eq!(addresses, [0x1010, 0x201f]);
    assert!(d.location.iter().all(|l| l.mapping_id == 1));
    let m = &d.mapping[0];
    assert_eq!((m.memory_start, m.memory_limit), (0x1000, 0x4000));
    assert_eq!(st[m.filename as usize], "/bin/app");
    assert_eq!(st[m.build_id as usize], "abc");
    assert!(m.has_functions && m.has_inline_frames);
    let unit = d.sample[3].label[0].num_unit;
    assert_eq!(st[unit as usize], "minutes");
}

#[test]
fn an_empty_profile_still_says_what_it_counts() {
    let d = decoded(GoroutineProfile::new(None));
    assert!(d.sample.is_empty() && d.mapping.is_empty());
    assert_eq!(d.sample_type.len(), 1);
}
