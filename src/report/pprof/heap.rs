//! `goat heap --pprof`: the heap as `go tool pprof` reads it, with
//! reference chains for stacks (the layout goref uses): sample types
//! `inuse_objects`/`count` and `inuse_space`/`bytes` (the names of Go's
//! heap profile, so `-sample_index` works as there), a sample per distinct
//! chain, its locations leaf first: the object's type on top, the root at
//! the bottom. A location per frame name, without an address or mapping:
//! the "functions" are roots and types, named so.

use std::collections::HashMap;
use std::io::{self, Write};

use prost::Message as _;

use super::{proto, Strings};
use crate::heapgraph::ReferenceStacks;

/// `stacks` as a gzipped profile.proto, written to `out`.
pub fn write_heap_profile(stacks: &ReferenceStacks, out: &mut impl Write) -> io::Result<()> {
    let bytes = heap_profile(stacks).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()
}

fn heap_profile(stacks: &ReferenceStacks) -> proto::Profile {
    let mut strings = Strings::new();
    let objects = proto::ValueType {
        r#type: strings.of("inuse_objects"),
        unit: strings.of("count"),
    };
    let space = proto::ValueType {
        r#type: strings.of("inuse_space"),
        unit: strings.of("bytes"),
    };
    // Frame name index to its location (and function) id, from 1.
    let mut ids: HashMap<u32, u64> = HashMap::new();
    let mut function = Vec::new();
    let mut location = Vec::new();
    let mut sample = Vec::with_capacity(stacks.stacks.len());
    for (frames, n, bytes) in &stacks.stacks {
        let location_id = frames
            .iter()
            .map(|&f| {
                *ids.entry(f).or_insert_with(|| {
                    let id = function.len() as u64 + 1;
                    let name = strings.of(stacks.frames.get(f as usize).map_or("?", |s| s));
                    function.push(proto::Function {
                        id,
                        name,
                        system_name: name,
                        filename: 0,
                        start_line: 0,
                    });
                    location.push(proto::Location {
                        id,
                        mapping_id: 0,
                        address: 0,
                        line: vec![proto::Line {
                            function_id: id,
                            line: 0,
                        }],
                    });
                    id
                })
            })
            .collect();
        sample.push(proto::Sample {
            location_id,
            value: vec![
                i64::try_from(*n).unwrap_or(i64::MAX),
                i64::try_from(*bytes).unwrap_or(i64::MAX),
            ],
            label: Vec::new(),
        });
    }
    proto::Profile {
        sample_type: vec![objects, space],
        sample,
        mapping: Vec::new(),
        location,
        function,
        string_table: strings.table.iter().map(|s| s.to_string()).collect(),
        time_nanos: 0,
        period_type: Some(space),
        period: 1,
        comment: Vec::new(),
    }
}
