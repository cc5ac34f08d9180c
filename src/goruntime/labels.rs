//! A goroutine's pprof labels (`pprof.Do`, `pprof.SetGoroutineLabels`):
//! `g.labels` points at a `runtime/pprof.labelMap`, whose shape changed:
//!
//! - Go 1.19–1.23: `type labelMap map[string]string`, so `g.labels` is a
//!   `*map[string]string`: a word holding the `*hmap` of a classic bucketed
//!   map (`hmap.count` at 0, `B` at 9, `buckets` at 16, `oldbuckets` at
//!   24; a `bucket<string,string>` is 8 tophash bytes, 8 keys, 8 values
//!   and the overflow pointer: 272 bytes).
//! - Go 1.24+: `type labelMap struct{ LabelSet }` (1.26: `label.Set`), a
//!   struct whose first word is a `[]label` of `{key, value string}`.
//!
//! The layouts are fixed by the runtime's source for these releases (the
//! map's are checked against DWARF by `labels::tests`), so labels need no
//! DWARF.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use thiserror::Error;

use super::version::GoVersion;
use crate::process::{Memory, MemoryExt, ReadFault};

/// More labels than this on one goroutine is garbage.
const MAX_LABELS: u64 = 4096;
/// Label keys and values are read up to this many bytes.
const MAX_TEXT: usize = 4096;
/// Buckets (with overflow buckets) walked at most.
const MAX_BUCKETS: u64 = 1 << 12;

const HMAP_COUNT: u64 = 0;
const HMAP_FLAGS: u64 = 8;
const HMAP_B: u64 = 9;
const HMAP_BUCKETS: u64 = 16;
const HMAP_OLDBUCKETS: u64 = 24;
const BUCKET_KEYS: u64 = 8;
const BUCKET_VALUES: u64 = 8 + 8 * 16;
const BUCKET_OVERFLOW: u64 = 8 + 16 * 16;
const BUCKET_SIZE: u64 = BUCKET_OVERFLOW + 8;
/// `tophash` values below this mark an empty or evacuated slot.
const MIN_TOP_HASH: u8 = 5;
/// `hmap.flags` bit of a same-size grow (as many old buckets as new).
const SAME_SIZE_GROW: u8 = 8;

#[derive(Debug, Error)]
pub enum LabelError {
    #[error("cannot read the labels: {0}")]
    Read(#[from] ReadFault),
    #[error("the label map claims {0} labels")]
    TooMany(u64),
    #[error("the label map's buckets loop")]
    Cycle,
    #[error("the label map's address overflows")]
    Overflow,
}

/// The labels of the goroutine whose `g.labels` word is at `labels_at`,
/// sorted by key (as `pprof` prints them).
pub fn read(
    mem: &dyn Memory,
    version: GoVersion,
    labels_at: u64,
) -> Result<Vec<(String, String)>, LabelError> {
    read_map(mem, version, mem.read_u64(labels_at)?)
}

/// The labels `map` (a `g.labels` word) points at, sorted by key.
fn read_map(
    mem: &dyn Memory,
    version: GoVersion,
    map: u64,
) -> Result<Vec<(String, String)>, LabelError> {
    if map == 0 {
        return Ok(Vec::new());
    }
    let mut labels = if version.at_least(24) {
        from_slice(mem, map)?
    } else {
        match mem.read_u64(map)? {
            0 => Vec::new(),
            hmap => from_hmap(mem, hmap)?,
        }
    };
    labels.sort();
    Ok(labels)
}

/// Distinct label sets read for one [`LabelTable`] at most: goroutines
/// share their creator's set, so a program has few; past this many the
/// rest are unreadable rather than goat's memory and time growing with
/// what the target holds.
pub const MAX_LABEL_SETS: usize = 1 << 16;
/// Bytes of label text one [`LabelTable`] holds at most (past it, like
/// past [`MAX_LABEL_SETS`], sets are not read): each set is bounded, but
/// not their sum.
pub const MAX_LABEL_BYTES: usize = 64 << 20;

/// A goroutine's labels sorted by key, or why they could not be read.
pub type LabelSet = Result<Arc<[(String, String)]>, String>;

/// The labels of every goroutine of a capture, each distinct set read
/// once (a goroutine inherits its creator's `g.labels` pointer, and Go
/// never changes a set once made: `pprof.WithLabels` makes a new one).
#[derive(Debug)]
pub struct LabelTable {
    /// `runtime.g` address to its `g.labels` word, for labelled ones.
    by_g: HashMap<u64, u64>,
    /// `g.labels` word to the set it points at.
    by_set: HashMap<u64, LabelSet>,
    /// What a set past [`MAX_LABEL_SETS`] shows.
    too_many: LabelSet,
}

impl LabelTable {
    /// Reads the labels of the goroutines at `gs`: each `g.labels` word
    /// (at `offset` into the `g`) from `gs_mem`, where the `g`s were
    /// copied, and the sets from `sets_mem`, where they are.
    pub fn read(
        gs_mem: &dyn Memory,
        sets_mem: &dyn Memory,
        version: GoVersion,
        offset: u64,
        gs: &[u64],
    ) -> LabelTable {
        let mut t = LabelTable {
            by_g: HashMap::new(),
            by_set: HashMap::new(),
            too_many: Err(format!(
                "not read: more than {MAX_LABEL_SETS} distinct label sets, or {} MiB of labels",
                MAX_LABEL_BYTES >> 20
            )),
        };
        let mut bytes = 0usize;
        for &g in gs {
            let Some(word) = g.checked_add(offset).and_then(|a| gs_mem.read_u64(a).ok()) else {
                continue;
            };
            if word == 0 {
                continue;
            }
            t.by_g.insert(g, word);
            if t.by_set.contains_key(&word) {
                continue;
            }
            // Past the bounds, a set is not read (`of` says so).
            if t.by_set.len() < MAX_LABEL_SETS && bytes < MAX_LABEL_BYTES {
                let set = read_map(sets_mem, version, word).map_err(|e| e.to_string());
                if let Ok(set) = &set {
                    let size: usize = set.iter().map(|(k, v)| k.len() + v.len()).sum();
                    bytes = bytes.saturating_add(size);
                }
                t.by_set.insert(word, set.map(Arc::from));
            }
        }
        t
    }

    /// The labels of the goroutine at `g`; `None` when it has none.
    pub fn of(&self, g: u64) -> Option<&LabelSet> {
        let word = self.by_g.get(&g)?;
        Some(self.by_set.get(word).unwrap_or(&self.too_many))
    }
}

fn at(base: u64, off: u64) -> Result<u64, LabelError> {
    base.checked_add(off).ok_or(LabelError::Overflow)
}

/// A Go string header at `addr`.
fn string(mem: &dyn Memory, addr: u64) -> Result<String, LabelError> {
    Ok(mem.read_go_string(addr, MAX_TEXT)?)
}

/// `[]label` at `slice`: pointer, len, cap; each label two strings.
fn from_slice(mem: &dyn Memory, slice: u64) -> Result<Vec<(String, String)>, LabelError> {
    let ptr = mem.read_u64(slice)?;
    let len = mem.read_u64(at(slice, 8)?)?;
    if len > MAX_LABELS {
        return Err(LabelError::TooMany(len));
    }
    (0..len)
        .map(|i| {
            let l = at(ptr, i * 32)?;
            Ok((string(mem, l)?, string(mem, at(l, 16)?)?))
        })
        .collect()
}

/// The entries of a classic `map[string]string`: the new buckets, and the
/// old ones a grow has not evacuated yet (their evacuated slots are marked
/// below `MIN_TOP_HASH`).
fn from_hmap(mem: &dyn Memory, hmap: u64) -> Result<Vec<(String, String)>, LabelError> {
    let count = mem.read_u64(at(hmap, HMAP_COUNT)?)?;
    if count > MAX_LABELS {
        return Err(LabelError::TooMany(count));
    }
    let (mut flags, mut b) = ([0u8], [0u8]);
    mem.read(at(hmap, HMAP_FLAGS)?, &mut flags)?;
    mem.read(at(hmap, HMAP_B)?, &mut b)?;
    let (flags, b) = (flags[0], b[0]);
    let nbuckets = 1u64.checked_shl(u32::from(b)).unwrap_or(u64::MAX);
    if nbuckets > MAX_BUCKETS {
        return Err(LabelError::TooMany(nbuckets));
    }
    let buckets = mem.read_u64(at(hmap, HMAP_BUCKETS)?)?;
    let old = mem.read_u64(at(hmap, HMAP_OLDBUCKETS)?)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut walked = 0u64;
    let nold = match flags & SAME_SIZE_GROW {
        0 => (nbuckets / 2).max(1),
        _ => nbuckets,
    };
    for (base, n) in [(old, nold), (buckets, nbuckets)] {
        if base == 0 {
            continue;
        }
        for i in 0..n {
            let mut bucket = Some(at(base, i * BUCKET_SIZE)?);
            while let Some(bk) = bucket.filter(|&bk| bk != 0) {
                walked += 1;
                if walked > MAX_BUCKETS || !seen.insert(bk) {
                    return Err(LabelError::Cycle);
                }
                let mut top = [0u8; 8];
                mem.read(bk, &mut top)?;
                for (slot, _) in top.iter().enumerate().filter(|(_, &t)| t >= MIN_TOP_HASH) {
                    let slot = slot as u64;
                    let k = string(mem, at(bk, BUCKET_KEYS + slot * 16)?)?;
                    let v = string(mem, at(bk, BUCKET_VALUES + slot * 16)?)?;
                    out.push((k, v));
                    if out.len() as u64 > MAX_LABELS {
                        return Err(LabelError::TooMany(out.len() as u64));
                    }
                }
                bucket = Some(mem.read_u64(at(bk, BUCKET_OVERFLOW)?)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::dwarf::DwarfTypes;
    use crate::binary::Binary;

    use crate::process::CapturedMemory;

    fn put(m: &mut CapturedMemory, addr: u64, words: &[u64]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        m.insert(addr, &bytes);
    }

    /// A one-bucket `map[string]string` {"k": "v"} at 0x3000 whose
    /// overflow pointer is `overflow`, and `g.labels` at 0x1000.
    fn classic(overflow: u64) -> CapturedMemory {
        let mut m = CapturedMemory::new();
        put(&mut m, 0x1000, &[0x2000]);
        put(&mut m, 0x2000, &[0x3000]);
        // count 1; flags 0, B 0; buckets 0x4000; no old buckets.
        put(&mut m, 0x3000, &[1, 0, 0x4000, 0]);
        let mut bucket = vec![0u64; (BUCKET_SIZE / 8) as usize];
        bucket[0] = 9; // tophash[0]: a full slot
        bucket[1] = 0x5000; // keys[0]
        bucket[2] = 1;
        bucket[(BUCKET_VALUES / 8) as usize] = 0x5001; // values[0]
        bucket[(BUCKET_VALUES / 8) as usize + 1] = 1;
        bucket[(BUCKET_OVERFLOW / 8) as usize] = overflow;
        put(&mut m, 0x4000, &bucket);
        m.insert(0x5000, b"kv");
        m
    }

    #[test]
    fn hostile_label_maps_are_errors_not_loops() {
        let v = |minor| GoVersion { major: 1, minor };
        let ok = read(&classic(0), v(21), 0x1000).unwrap();
        assert_eq!(ok, [("k".to_string(), "v".to_string())]);
        // An overflow bucket pointing back at itself.
        assert!(matches!(
            read(&classic(0x4000), v(21), 0x1000),
            Err(LabelError::Cycle)
        ));
        // A slice (1.24+) claiming 2^40 labels.
        let mut m = CapturedMemory::new();
        put(&mut m, 0x1000, &[0x2000]);
        put(&mut m, 0x2000, &[0x3000, 1 << 40, 1 << 40]);
        assert!(matches!(
            read(&m, v(27), 0x1000),
            Err(LabelError::TooMany(_))
        ));
        // Unmapped: a read error.
        assert!(matches!(read(&m, v(27), 0x9000), Err(LabelError::Read(_))));
    }

    /// Goroutines sharing a set share one read of it; one without labels
    /// has none; an unreadable set is an error of that goroutine only.
    #[test]
    fn a_label_table_reads_each_set_once() {
        let mut m = CapturedMemory::new();
        // g.labels at offset 0x10 of each g: two share the set at
        // 0x2000, one has none, one points at nothing mapped.
        for (g, word) in [
            (0x1000, 0x2000),
            (0x1100, 0x2000),
            (0x1200, 0),
            (0x1300, 0x9000),
        ] {
            put(&mut m, g + 0x10, &[word]);
        }
        // Go 1.24+: a []label {ptr, len, cap} of {key, value string}.
        put(&mut m, 0x2000, &[0x3000, 1, 1]);
        put(&mut m, 0x3000, &[0x4000, 1, 0x4001, 1]);
        m.insert(0x4000, b"kv");
        let v = GoVersion {
            major: 1,
            minor: 27,
        };
        let gs = [0x1000, 0x1100, 0x1200, 0x1300, 0xdead];
        let t = LabelTable::read(&m, &m, v, 0x10, &gs);
        let kv = [("k".to_string(), "v".to_string())];
        assert_eq!(t.of(0x1000).unwrap().as_deref().unwrap(), kv);
        assert_eq!(t.of(0x1100).unwrap().as_deref().unwrap(), kv);
        assert_eq!(t.by_set.len(), 2);
        assert!(t.of(0x1200).is_none());
        assert!(t.of(0x1300).unwrap().is_err());
        // A g whose word cannot be read has no labels to show.
        assert!(t.of(0xdead).is_none());
    }

    /// The classic map's header offsets agree with every pre-1.24 fixture
    /// built here.
    #[test]
    fn hmap_offsets_match_dwarf() {
        let bins = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin");
        let mut checked = 0;
        for v in ["go1.19", "go1.21", "go1.22", "go1.23"] {
            let path = bins.join(format!("{v}-exe/states"));
            let Ok(bin) = Binary::open(&path) else {
                continue;
            };
            let d = DwarfTypes::load(bin.debug_data()).expect("DWARF");
            let off = |f| d.field_offset("runtime.hmap", f);
            assert_eq!(off("count"), Some(HMAP_COUNT), "{v}");
            assert_eq!(off("flags"), Some(HMAP_FLAGS), "{v}");
            assert_eq!(off("B"), Some(HMAP_B), "{v}");
            assert_eq!(off("buckets"), Some(HMAP_BUCKETS), "{v}");
            assert_eq!(off("oldbuckets"), Some(HMAP_OLDBUCKETS), "{v}");
            checked += 1;
        }
        assert!(checked >= 2, "run scripts/build-fixtures");
    }
}
