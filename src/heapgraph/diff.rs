//! `goat heap --diff OLD.json`: what grew between an earlier report and
//! now, by type and by root. Rows present on one side only count as zero
//! on the other; the biggest growth in bytes comes first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HeapReport;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeapDiff {
    pub old_totals: Counts,
    pub new_totals: Counts,
    pub types: Vec<Growth>,
    pub roots: Vec<Growth>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub objects: u64,
    pub bytes: u64,
}

/// One type's or root's numbers before and after (a root's are what it
/// retains).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    pub name: String,
    pub old: Counts,
    pub new: Counts,
    pub objects_delta: i64,
    pub bytes_delta: i64,
}

fn delta(new: u64, old: u64) -> i64 {
    i64::try_from(i128::from(new) - i128::from(old)).unwrap_or(i64::MAX)
}

fn growth(old: BTreeMap<String, Counts>, new: BTreeMap<String, Counts>) -> Vec<Growth> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut rows: Vec<Growth> = names
        .into_iter()
        .map(|name| {
            let o = old.get(name).copied().unwrap_or_default();
            let n = new.get(name).copied().unwrap_or_default();
            Growth {
                name: name.clone(),
                old: o,
                new: n,
                objects_delta: delta(n.objects, o.objects),
                bytes_delta: delta(n.bytes, o.bytes),
            }
        })
        .filter(|g| g.old != g.new)
        .collect();
    rows.sort_by(|a, b| {
        b.bytes_delta
            .cmp(&a.bytes_delta)
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

/// Growth from `old` to `new`.
pub fn diff(old: &HeapReport, new: &HeapReport) -> HeapDiff {
    let types = |r: &HeapReport| -> BTreeMap<String, Counts> {
        r.types
            .iter()
            .map(|t| {
                let c = Counts {
                    objects: t.objects,
                    bytes: t.bytes,
                };
                (t.type_name.clone(), c)
            })
            .collect()
    };
    // Goroutine numbers change between runs of a program, not within
    // one: a root is compared by its name as written.
    let roots = |r: &HeapReport| -> BTreeMap<String, Counts> {
        r.roots
            .iter()
            .map(|t| {
                let c = Counts {
                    objects: t.retained_objects,
                    bytes: t.retained_bytes,
                };
                (t.root.clone(), c)
            })
            .collect()
    };
    let totals = |r: &HeapReport| Counts {
        objects: r.totals.objects,
        bytes: r.totals.bytes,
    };
    HeapDiff {
        old_totals: totals(old),
        new_totals: totals(new),
        types: growth(types(old), types(new)),
        roots: growth(roots(old), roots(new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_on_one_side_count_zero_on_the_other() {
        let mut old = BTreeMap::new();
        old.insert(
            "a".to_string(),
            Counts {
                objects: 2,
                bytes: 20,
            },
        );
        old.insert(
            "gone".to_string(),
            Counts {
                objects: 1,
                bytes: 8,
            },
        );
        old.insert(
            "same".to_string(),
            Counts {
                objects: 1,
                bytes: 8,
            },
        );
        let mut new = BTreeMap::new();
        new.insert(
            "a".to_string(),
            Counts {
                objects: 5,
                bytes: 50,
            },
        );
        new.insert(
            "born".to_string(),
            Counts {
                objects: 1,
                bytes: 100,
            },
        );
        new.insert(
            "same".to_string(),
            Counts {
                objects: 1,
                bytes: 8,
            },
        );
        let g = growth(old, new);
        let names: Vec<&str> = g.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["born", "a", "gone"]);
        assert_eq!((g[1].objects_delta, g[1].bytes_delta), (3, 30));
        assert_eq!(g[2].bytes_delta, -8);
    }
}
