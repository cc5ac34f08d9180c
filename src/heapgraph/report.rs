//! The summary `goat heap` prints and `--json` emits (docs/heap-json.md):
//! totals beside the runtime's own accounting, the histogram by type, the
//! roots by retained size, and a reference chain for the biggest types.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::roots::RootKind;
use super::HeapGraph;

/// What the summary holds.
#[derive(Debug, Clone, Copy)]
pub struct ReportOptions {
    /// Chains shown: one for each of the biggest types.
    pub chains: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeapReport {
    pub go_version: String,
    pub totals: Totals,
    /// Every type, the most bytes first.
    pub types: Vec<TypeRow>,
    /// Every root that retains something, the most bytes first.
    pub roots: Vec<RootRow>,
    pub chains: Vec<Chain>,
    /// What could not be read or is not exact.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Allocated objects and their bytes (slot sizes): what the runtime's
    /// `MemStats.HeapObjects` and `HeapAlloc` count.
    pub objects: u64,
    pub bytes: u64,
    /// Of those, what a root reaches, and what none does (garbage the
    /// runtime has not swept yet, or held by roots goat cannot see).
    pub reachable_objects: u64,
    pub reachable_bytes: u64,
    pub unreachable_objects: u64,
    pub unreachable_bytes: u64,
    /// In-use spans and their pages (8 KiB each).
    pub spans: u64,
    pub pages: u64,
    /// The runtime's own accounting, where this release has it: bytes the
    /// last GC marked (`gcController.heapMarked`), bytes the pacer counts
    /// live now (`heapLive`: marked, plus spans cached for allocation
    /// since), and `mheap_.pagesInUse`.
    pub runtime_heap_marked: Option<u64>,
    pub runtime_heap_live: Option<u64>,
    pub runtime_pages_in_use: Option<u64>,
    /// In-use spans whose allocated slots differ from their `allocCount`
    /// (being allocated from at the copy), and spans that could not be read.
    pub count_mismatches: u64,
    pub bad_spans: u64,
    /// Objects whose pointer metadata could not be read, scanned word by
    /// word.
    pub conservative_objects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeRow {
    #[serde(rename = "type")]
    pub type_name: String,
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootRow {
    pub root: String,
    pub kind: RootKind,
    /// What would be freed if the root went away: the objects it alone
    /// reaches (its subtree in the dominator tree).
    pub retained_bytes: u64,
    pub retained_objects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chain {
    #[serde(rename = "type")]
    pub type_name: String,
    /// The object chosen: of its type, the one retaining the most.
    pub address: String,
    pub bytes: u64,
    pub retained_bytes: u64,
    /// The root, then each object's type along the shortest path.
    pub path: Vec<String>,
}

/// Per type: objects, bytes, and its reachable object retaining the most
/// (retained bytes, object number).
#[derive(Default)]
struct TypeSum {
    objects: u64,
    bytes: u64,
    best: Option<(u64, u32)>,
}

impl HeapGraph {
    /// The summary; see [`HeapReport`].
    pub fn report(&self, go_version: &str, opts: ReportOptions) -> HeapReport {
        let t = self.heap_totals();
        let mut totals = Totals {
            objects: t.objects,
            bytes: t.bytes,
            spans: t.spans,
            pages: t.pages,
            runtime_heap_marked: t.runtime_heap_marked,
            runtime_heap_live: t.runtime_heap_live,
            runtime_pages_in_use: t.runtime_pages_in_use,
            count_mismatches: t.count_mismatches,
            bad_spans: t.bad_spans,
            conservative_objects: self.conservative_objects,
            ..Totals::default()
        };
        // Per type: objects, bytes, and its object retaining the most.
        let mut by_type: HashMap<u32, TypeSum> = HashMap::new();
        for (i, _, size) in self.objects() {
            let reachable = self.is_reachable(i);
            if reachable {
                totals.reachable_objects += 1;
                totals.reachable_bytes += size;
            } else {
                totals.unreachable_objects += 1;
                totals.unreachable_bytes += size;
            }
            let ty = self.types.of.get(i as usize).unwrap_or(u32::MAX);
            let e = by_type.entry(ty).or_default();
            e.objects += 1;
            e.bytes += size;
            if reachable {
                let r = self.retained_sized(i, || size).0;
                if e.best.is_none_or(|(best, _)| r > best) {
                    e.best = Some((r, i));
                }
            }
        }
        let mut rows: Vec<(TypeRow, Option<(u64, u32)>)> = by_type
            .into_iter()
            .map(|(ty, sum)| {
                let name = self
                    .types
                    .names
                    .get(ty as usize)
                    .cloned()
                    .unwrap_or_else(|| "?".to_string());
                (
                    TypeRow {
                        type_name: name,
                        objects: sum.objects,
                        bytes: sum.bytes,
                    },
                    sum.best,
                )
            })
            .collect();
        rows.sort_by(|a, b| {
            b.0.bytes
                .cmp(&a.0.bytes)
                .then_with(|| a.0.type_name.cmp(&b.0.type_name))
        });
        let chains = rows
            .iter()
            .filter_map(|(row, best)| {
                let (retained, i) = (*best)?;
                let obj = self.objects.object(&self.heap, i)?;
                let (base, size) = (obj.base, obj.size);
                Some(Chain {
                    type_name: row.type_name.clone(),
                    address: format!("{base:#x}"),
                    bytes: size,
                    retained_bytes: retained,
                    path: self.chain(i)?,
                })
            })
            .take(opts.chains)
            .collect();
        let mut roots: Vec<RootRow> = (0..self.roots.len())
            .filter_map(|k| {
                let (bytes, objects) = self.root_retained(k);
                (objects > 0).then(|| RootRow {
                    root: self.roots.name(k),
                    kind: self.roots.kind(k),
                    retained_bytes: bytes,
                    retained_objects: objects,
                })
            })
            .collect();
        roots.sort_by(|a, b| {
            b.retained_bytes
                .cmp(&a.retained_bytes)
                .then_with(|| a.root.cmp(&b.root))
        });
        HeapReport {
            go_version: go_version.to_string(),
            totals,
            types: rows.into_iter().map(|(r, _)| r).collect(),
            roots,
            chains,
            notes: self.notes.clone(),
        }
    }
}
