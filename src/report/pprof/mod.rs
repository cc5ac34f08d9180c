//! Goroutine profiles as `go tool pprof` reads them: pprof's
//! `profile.proto` (`proto.rs`), gzipped, shaped like the one Go's own
//! `runtime/pprof` writes for `goroutine` (debug=0):
//!
//! - sample type and period type `goroutine`/`count`, period 1; a sample
//!   per distinct (stack, labels), its value the goroutines that share it;
//! - a location per physical frame (its PC; a return address one byte
//!   back, as Go's `runtime.Frame.PC` is, so the address falls inside the
//!   call), its lines innermost first: inlined calls, then the function
//!   they were inlined into (pprof's order); `runtime.goexit`, which Go's
//!   profile leaves out, left out too;
//! - functions with name (as the runtime prints it) and file, and one
//!   mapping for the executable (its text, path and build ID), marked as
//!   symbolized so that pprof does not look for the binary;
//! - labels per sample: the goroutine's pprof labels as string labels, as
//!   Go's profile has them, and whatever else the caller adds (numeric
//!   ones with a unit).
//!
//! Unlike Go's profile, every goroutine of the dump is counted, the
//! runtime's own (system goroutines) too, and the frames are those the
//! text dump shows (a stack the runtime would elide keeps its innermost
//! and outermost frames). A goroutine whose stack could not be read is a
//! sample without locations labelled `goat_unreadable` with the reason.
//!
//! Memory grows with the distinct stacks and label sets, not with the
//! goroutines: a million goroutines in a thousand stacks hold a thousand
//! samples. Chunks of goroutines are profiled on their own threads
//! ([`GoroutineProfile::add_view`] in a decoder's buffers) and merged in
//! order ([`GoroutineProfile::merge`]).

mod heap;
mod proto;

pub use heap::write_heap_profile;

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use prost::Message as _;

use crate::goruntime::{FrameRef, Goroutine, GoroutineView};

/// The frame Go's profile leaves out of every stack (`runtime/pprof`'s
/// `allFrames`): the bottom of every goroutine.
const GOEXIT: &str = "runtime.goexit";
/// The label of a goroutine whose stack could not be read.
pub const UNREADABLE_LABEL: &str = "goat_unreadable";

/// The executable's text as the process maps it: where profile addresses
/// point.
#[derive(Debug, Clone, Default)]
pub struct ProfileMapping {
    /// Run-time start and end (exclusive) of the mapped text.
    pub memory_start: u64,
    pub memory_limit: u64,
    /// The file offset mapped at `memory_start`.
    pub file_offset: u64,
    /// The executable's path.
    pub file: String,
    /// Its GNU build ID in hex, else its Go build ID, else empty.
    pub build_id: String,
}

/// A sample label's value: text, or a number in a unit (`minutes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelValue<'a> {
    Str(&'a str),
    Num { value: i64, unit: &'a str },
}

/// Strings deduplicated, in table order; index 0 is "".
#[derive(Default)]
struct Strings {
    index: HashMap<Arc<str>, i64>,
    table: Vec<Arc<str>>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings::default();
        s.of("");
        s
    }

    fn of(&mut self, text: &str) -> i64 {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        let i = i64::try_from(self.table.len()).unwrap_or(i64::MAX);
        let text: Arc<str> = text.into();
        self.table.push(text.clone());
        self.index.insert(text, i);
        i
    }

    fn get(&self, i: i64) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.table.get(i))
            .map_or("", |s| s)
    }
}

/// A location's identity: its address and lines (function id, line).
type LocationKey = (u64, Box<[(u64, i64)]>);

/// A sample's identity: its location ids, leaf first, and its labels
/// sorted (string indices into this profile's table).
type SampleKey = (Box<[u64]>, Box<[proto::Label]>);

/// A goroutine profile being gathered; see the module's documentation.
pub struct GoroutineProfile {
    mapping: Option<ProfileMapping>,
    strings: Strings,
    /// (name, file) by function id - 1.
    functions: Vec<(i64, i64)>,
    function_ids: HashMap<(i64, i64), u64>,
    /// By location id - 1.
    locations: Vec<LocationKey>,
    location_ids: HashMap<LocationKey, u64>,
    samples: HashMap<SampleKey, i64>,
    goroutines: u64,
    /// A decoder's frame key (PC and which of its source frames) to its
    /// (function id, line): a million goroutines stand at a few hundred
    /// PCs, so names are hashed once per PC rather than once per frame.
    /// Keys name frames of one decoding thread only: the cache serves the
    /// goroutines added to this profile, never a merge.
    by_frame_key: HashMap<(u64, u32), (u64, i64)>,
}

impl GoroutineProfile {
    /// An empty profile whose locations lie in `mapping`, when known.
    pub fn new(mapping: Option<&ProfileMapping>) -> Self {
        GoroutineProfile {
            mapping: mapping.cloned(),
            strings: Strings::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            samples: HashMap::new(),
            goroutines: 0,
            by_frame_key: HashMap::new(),
        }
    }

    /// Goroutines counted so far.
    pub fn goroutines(&self) -> u64 {
        self.goroutines
    }

    /// Distinct (stack, labels) so far.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    /// Counts in a goroutine seen in a decoder's buffers, with `labels`.
    pub fn add_view(&mut self, g: &GoroutineView<'_>, labels: &[(&str, LabelValue<'_>)]) {
        self.add_frames(g.frames(), g.header().unreadable.as_deref(), labels);
    }

    /// Counts in an owned goroutine, with `labels`.
    pub fn add(&mut self, g: &Goroutine, labels: &[(&str, LabelValue<'_>)]) {
        self.add_frames(
            g.frames.iter().map(|f| f.view()),
            g.unreadable.as_deref(),
            labels,
        );
    }

    fn add_frames<'f>(
        &mut self,
        frames: impl Iterator<Item = FrameRef<'f>>,
        unreadable: Option<&str>,
        labels: &[(&str, LabelValue<'_>)],
    ) {
        let mut stack = Vec::new();
        let mut lines: Vec<(u64, i64)> = Vec::new();
        let mut pending_address = None;
        let mut physical = 0usize;
        for f in frames {
            if !f.inlined && f.function == GOEXIT {
                continue;
            }
            lines.push(self.line_of(&f));
            let address = address_of(&f, physical);
            pending_address = Some(address);
            if !f.inlined {
                // The function the pending inlined calls were inlined into:
                // one physical frame, one location.
                stack.push(self.location(address, &mut lines));
                physical += 1;
                pending_address = None;
            }
        }
        // Inlined calls whose physical frame was elided.
        if let Some(address) = pending_address {
            stack.push(self.location(address, &mut lines));
        }
        let mut sample_labels: Vec<proto::Label> =
            labels.iter().map(|(k, v)| self.label(k, *v)).collect();
        if let Some(why) = unreadable {
            let l = self.label(UNREADABLE_LABEL, LabelValue::Str(why));
            sample_labels.push(l);
        }
        sample_labels.sort_unstable();
        *self
            .samples
            .entry((stack.into(), sample_labels.into()))
            .or_insert(0) += 1;
        self.goroutines += 1;
    }

    /// The (function id, line) of a frame.
    fn line_of(&mut self, f: &FrameRef<'_>) -> (u64, i64) {
        if let Some(line) = f.key.and_then(|k| self.by_frame_key.get(&k)) {
            return *line;
        }
        let name = self.strings.of(f.function);
        let file = self.strings.of(f.file);
        let line = (self.function(name, file), i64::from(f.line));
        if let Some(k) = f.key {
            self.by_frame_key.insert(k, line);
        }
        line
    }

    fn function(&mut self, name: i64, file: i64) -> u64 {
        if let Some(&id) = self.function_ids.get(&(name, file)) {
            return id;
        }
        self.functions.push((name, file));
        let id = self.functions.len() as u64;
        self.function_ids.insert((name, file), id);
        id
    }

    /// The id of the location at `address` with `lines` (emptied).
    fn location(&mut self, address: u64, lines: &mut Vec<(u64, i64)>) -> u64 {
        let key: LocationKey = (address, std::mem::take(lines).into());
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        self.locations.push(key.clone());
        let id = self.locations.len() as u64;
        self.location_ids.insert(key, id);
        id
    }

    fn label(&mut self, key: &str, value: LabelValue<'_>) -> proto::Label {
        let key = self.strings.of(key);
        match value {
            LabelValue::Str(s) => proto::Label {
                key,
                str: self.strings.of(s),
                num: 0,
                num_unit: 0,
            },
            LabelValue::Num { value, unit } => proto::Label {
                key,
                str: 0,
                num: value,
                num_unit: self.strings.of(unit),
            },
        }
    }

    /// Adds every sample of `other` (a chunk profiled elsewhere) to this
    /// profile, its strings, functions and locations renumbered here.
    pub fn merge(&mut self, mut other: GoroutineProfile) {
        let samples = std::mem::take(&mut other.samples);
        let mut functions: Vec<Option<u64>> = vec![None; other.functions.len()];
        let mut locations: Vec<Option<u64>> = vec![None; other.locations.len()];
        for ((stack, labels), count) in samples {
            let stack: Box<[u64]> = stack
                .iter()
                .map(|&id| self.merged_location(&other, id, &mut locations, &mut functions))
                .collect();
            let mut labels: Vec<proto::Label> = labels
                .iter()
                .map(|l| proto::Label {
                    key: self.strings.of(other.strings.get(l.key)),
                    str: self.strings.of(other.strings.get(l.str)),
                    num: l.num,
                    num_unit: self.strings.of(other.strings.get(l.num_unit)),
                })
                .collect();
            labels.sort_unstable();
            let n = self.samples.entry((stack, labels.into())).or_insert(0);
            *n = n.saturating_add(count);
        }
        self.goroutines = self.goroutines.saturating_add(other.goroutines);
    }

    /// This profile's id for `other`'s location `id`, memoized in `seen`.
    fn merged_location(
        &mut self,
        other: &GoroutineProfile,
        id: u64,
        seen: &mut [Option<u64>],
        functions: &mut [Option<u64>],
    ) -> u64 {
        let i = id.saturating_sub(1) as usize;
        if let Some(Some(mine)) = seen.get(i) {
            return *mine;
        }
        let Some((address, lines)) = other.locations.get(i) else {
            return 0;
        };
        let mut mine: Vec<(u64, i64)> = lines
            .iter()
            .map(|&(fid, line)| {
                let f = fid.saturating_sub(1) as usize;
                let mapped = match functions.get(f) {
                    Some(Some(m)) => *m,
                    _ => {
                        let (name, file) = other.functions.get(f).copied().unwrap_or((0, 0));
                        let name = self.strings.of(other.strings.get(name));
                        let file = self.strings.of(other.strings.get(file));
                        let m = self.function(name, file);
                        if let Some(slot) = functions.get_mut(f) {
                            *slot = Some(m);
                        }
                        m
                    }
                };
                (mapped, line)
            })
            .collect();
        let id = self.location(*address, &mut mine);
        if let Some(slot) = seen.get_mut(i) {
            *slot = Some(id);
        }
        id
    }

    /// The profile as `profile.proto` bytes, not compressed.
    pub fn encode(self) -> Vec<u8> {
        self.into_proto().encode_to_vec()
    }

    /// Writes the profile gzipped, as pprof files are.
    pub fn write_gz(self, out: &mut impl Write) -> io::Result<()> {
        let bytes = self.encode();
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        gz.write_all(&bytes)?;
        gz.finish()?.flush()
    }

    fn into_proto(mut self) -> proto::Profile {
        let goroutine = self.strings.of("goroutine");
        let count = self.strings.of("count");
        let value_type = proto::ValueType {
            r#type: goroutine,
            unit: count,
        };
        let mapping = self.mapping.take().map(|m| proto::Mapping {
            id: 1,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: self.strings.of(&m.file),
            build_id: self.strings.of(&m.build_id),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        let in_mapping = |address: u64| {
            mapping
                .as_ref()
                .is_some_and(|m| (m.memory_start..m.memory_limit).contains(&address))
        };
        let location = self
            .locations
            .iter()
            .zip(1u64..)
            .map(|((address, lines), id)| proto::Location {
                id,
                mapping_id: u64::from(in_mapping(*address)),
                address: *address,
                line: lines
                    .iter()
                    .map(|&(function_id, line)| proto::Line { function_id, line })
                    .collect(),
            })
            .collect();
        let function = self
            .functions
            .iter()
            .zip(1u64..)
            .map(|(&(name, filename), id)| proto::Function {
                id,
                name,
                system_name: name,
                filename,
                start_line: 0,
            })
            .collect();
        // Biggest first, then by stack: the same dump gives the same file.
        let mut samples: Vec<(SampleKey, i64)> = self.samples.into_iter().collect();
        samples.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let sample = samples
            .into_iter()
            .map(|((stack, labels), n)| proto::Sample {
                location_id: stack.into(),
                value: vec![n],
                label: labels.into(),
            })
            .collect();
        proto::Profile {
            sample_type: vec![value_type],
            sample,
            mapping: mapping.into_iter().collect(),
            location,
            function,
            string_table: self.strings.table.iter().map(|s| s.to_string()).collect(),
            time_nanos: 0,
            period_type: Some(value_type),
            period: 1,
            comment: Vec::new(),
        }
    }
}

/// A frame's location address: its PC, or for a return address (a
/// caller's frame) one byte back, inside the call, as Go's profile has it.
/// A decoder's frame says how its PC was looked up; an owned frame does
/// not, and every physical frame but the innermost is taken as a caller.
fn address_of(f: &FrameRef<'_>, physical_before: usize) -> u64 {
    let backed = match f.key {
        Some((_, k)) => k >> 31 == 1,
        None => physical_before > 0,
    };
    f.pc.saturating_sub(u64::from(backed))
}

#[cfg(test)]
mod tests;
