//! The grouped view (panicparse's): goroutines whose stacks are the same
//! collapse into one block.
//!
//! Two goroutines are in the same group when they have the same header
//! status text and status, the same `locked to thread` flag, the same sequence of
//! (function, file, line, inlined) frames, the same elision, the same
//! unreadable reason and the same `created by` (function, file, line). Ids,
//! addresses, arguments, parent goroutine and wait time are ignored.
//!
//! Each group prints as:
//!
//! ```text
//! 3 goroutines [chan receive, 2-7 minutes]: 12, 14-16
//! runtime.gopark(...)
//!     /usr/lib/go/src/runtime/proc.go:363
//! main.worker(...)
//!     /src/app/main.go:42
//! created by main.main
//!     /src/app/main.go:100
//!
//! ```
//!
//! (the location lines start with a tab)
//!
//! - `1 goroutine` / `N goroutines`.
//! - The bracket holds the status, then `, M minutes` when every member has
//!   waited the same M ≥ 1 minutes, or `, MIN-MAX minutes` when they differ
//!   (omitted when all waited under a minute), then `, locked to thread`.
//! - Ids ascending; runs of three or more consecutive ids are written
//!   `a-b`; after 20 items the list ends `, ... and K more` (K goroutines).
//! - Frames print as `function(...)` and `\tfile:line`, without offsets,
//!   arguments or fp/sp/pc, which differ between members.
//! - Groups are ordered biggest first, ties broken by smallest id; each block
//!   is followed by a blank line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::io::{self, Write};

use super::print_name;
use crate::goruntime::{FrameRef, Goroutine, GoroutineView};

/// Id list items printed before `... and K more`.
const MAX_ID_ITEMS: usize = 20;

/// What makes two goroutines "the same stack", but the frames: the
/// header's parts of the key.
type HeadKey<'a> = (
    &'a str,
    u32,
    bool,
    Option<(usize, Option<usize>)>,
    Option<&'a str>,
    Option<(&'a str, &'a str, u32)>,
);

fn head_key(g: &Goroutine) -> HeadKey<'_> {
    (
        &g.status,
        // The same reason text can be waiting or (Go 1.26+) leaked.
        g.status_code,
        g.locked,
        g.elided.map(|e| (e.at, e.count)),
        g.unreadable.as_deref(),
        g.created_by
            .as_ref()
            .map(|c| (&*c.function, &*c.file, c.line)),
    )
}

/// A frame's part of the key.
type FrameKey<'a> = (&'a str, &'a str, u32, bool);

fn frame_key(f: FrameRef<'_>) -> FrameKey<'_> {
    (f.function, f.file, f.line, f.inlined)
}

fn frame_keys(g: &Goroutine) -> impl Iterator<Item = FrameKey<'_>> {
    g.frames.iter().map(|f| frame_key(f.view()))
}

/// Whether two goroutines' frames are the same, key by key.
fn same_frames<'a, 'b>(
    mut a: impl Iterator<Item = FrameKey<'a>>,
    mut b: impl Iterator<Item = FrameKey<'b>>,
) -> bool {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// One distinct stack: a copy of its first goroutine (what the block
/// prints comes from the key, which all members share) and what the header
/// says of the members.
struct Group {
    first: Goroutine,
    ids: Vec<u64>,
    min_wait: i64,
    max_wait: i64,
}

impl Group {
    /// A group of no goroutine yet, whose stack is `first`'s.
    fn of(first: Goroutine) -> Group {
        Group {
            first,
            ids: Vec::new(),
            min_wait: i64::MAX,
            max_wait: i64::MIN,
        }
    }

    /// The shortest and longest known wait, if any is known.
    fn wait_range(&self) -> Option<(i64, i64)> {
        (self.min_wait <= self.max_wait).then_some((self.min_wait, self.max_wait))
    }

    /// Counts `g` (whose stack this is) in.
    fn count(&mut self, g: &Goroutine) {
        self.ids.push(g.id);
        // Unknown waits are left out: the range is of the known ones.
        if let Some(m) = g.wait_minutes {
            self.min_wait = self.min_wait.min(m);
            self.max_wait = self.max_wait.max(m);
        }
    }
}

/// Goroutines grouped by stack, in order of first appearance; each
/// distinct stack is held once, whatever the number of goroutines.
/// Chunks are grouped on their own threads, then merged in order.
#[derive(Default)]
pub(super) struct Groups {
    groups: Vec<Group>,
    /// The key's hash to the groups with that hash (the key borrows from
    /// its goroutine, so the map cannot hold keys itself).
    by_hash: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
}

impl Groups {
    /// Adds one goroutine.
    pub(super) fn add(&mut self, g: &Goroutine) {
        let i = self
            .find(g, || frame_keys(g))
            .unwrap_or_else(|hash| self.insert(hash, Group::of(g.clone())));
        self.groups[i].count(g);
    }

    /// Adds a goroutine seen in a decoder's buffers: its key is read there,
    /// and an owned copy made only for a stack not seen before (a million
    /// goroutines are mostly a few thousand stacks).
    pub(super) fn add_view(&mut self, v: &GoroutineView<'_>) {
        let h = v.header();
        let frames = || v.frames().map(frame_key);
        let i = self
            .find(h, frames)
            .unwrap_or_else(|hash| self.insert(hash, Group::of(v.to_goroutine())));
        self.groups[i].count(h);
    }

    /// Adds every group of `other` (grouped after this one's goroutines);
    /// a stack new here moves in whole.
    pub(super) fn merge(&mut self, other: Groups) {
        for part in other.groups {
            match self.find(&part.first, || frame_keys(&part.first)) {
                Ok(i) => {
                    let group = &mut self.groups[i];
                    group.ids.extend_from_slice(&part.ids);
                    group.min_wait = group.min_wait.min(part.min_wait);
                    group.max_wait = group.max_wait.max(part.max_wait);
                }
                Err(hash) => {
                    self.insert(hash, part);
                }
            }
        }
    }

    /// The group of the stack whose header is `head` and frames
    /// `frames()`; if none, the key's hash, to [`Self::insert`] one.
    fn find<'f, I>(&self, head: &Goroutine, frames: impl Fn() -> I) -> Result<usize, u64>
    where
        I: Iterator<Item = FrameKey<'f>>,
    {
        let k = head_key(head);
        let mut state = self.hasher.build_hasher();
        k.hash(&mut state);
        let mut n = 0usize;
        for f in frames() {
            f.hash(&mut state);
            n += 1;
        }
        n.hash(&mut state);
        let hash = state.finish();
        self.by_hash
            .get(&hash)
            .and_then(|candidates| {
                candidates.iter().copied().find(|&i| {
                    let g = &self.groups[i].first;
                    head_key(g) == k && same_frames(frame_keys(g), frames())
                })
            })
            .ok_or(hash)
    }

    /// Adds a group whose key hashes to `hash`; its index.
    fn insert(&mut self, hash: u64, group: Group) -> usize {
        self.by_hash
            .entry(hash)
            .or_default()
            .push(self.groups.len());
        self.groups.push(group);
        self.groups.len() - 1
    }

    /// Writes the groups biggest first, ties broken by smallest id; each
    /// block followed by a blank line.
    pub(super) fn write(self, out: &mut dyn Write) -> io::Result<()> {
        self.write_first(out, usize::MAX).map(|_| ())
    }

    /// [`Self::write`] of the first `limit` groups only (a session pages
    /// its output); returns how many groups there are.
    pub(super) fn write_first(self, out: &mut dyn Write, limit: usize) -> io::Result<usize> {
        let groups = self.sorted();
        for g in groups.iter().take(limit) {
            write_group(out, g)?;
            out.write_all(b"\n")?;
        }
        Ok(groups.len())
    }

    /// Writes the groups as JSON (`json.rs`), in [`Self::write`]'s order.
    pub(super) fn write_json(self, out: &mut dyn Write, go_version: &str) -> io::Result<()> {
        let groups = self.sorted();
        let views = groups
            .iter()
            .map(|g| super::json::group_view(&g.first, &g.ids, g.wait_range()));
        super::json::write_groups(out, go_version, views)
    }

    /// The groups biggest first, ties broken by smallest id, their ids
    /// ascending.
    fn sorted(mut self) -> Vec<Group> {
        for g in &mut self.groups {
            g.ids.sort_unstable();
        }
        self.groups
            .sort_by_key(|g| (std::cmp::Reverse(g.ids.len()), g.ids.first().copied()));
        self.groups
    }
}

fn write_group(out: &mut dyn Write, group: &Group) -> io::Result<()> {
    let g = &group.first;
    writeln!(out, "{}", header(group))?;
    for (i, f) in g.frames.iter().enumerate() {
        write_elision_at(out, g, i)?;
        write!(
            out,
            "{}(...)\n\t{}:{}\n",
            print_name(&f.function),
            f.file,
            f.line
        )?;
    }
    write_elision_at(out, g, usize::MAX)?;
    if let Some(reason) = &g.unreadable {
        writeln!(out, "\tgoroutine stack unreadable: {reason}")?;
    }
    if let Some(c) = &g.created_by {
        write!(
            out,
            "created by {}\n\t{}:{}\n",
            print_name(&c.function),
            c.file,
            c.line
        )?;
    }
    Ok(())
}

/// Writes the elision line if it goes before frame `i` (`usize::MAX`: after
/// the last frame).
fn write_elision_at(out: &mut dyn Write, g: &Goroutine, i: usize) -> io::Result<()> {
    let Some(e) = g.elided else { return Ok(()) };
    let here = if i == usize::MAX {
        e.at >= g.frames.len()
    } else {
        e.at == i
    };
    match (here, e.count) {
        (false, _) => Ok(()),
        (true, Some(n)) => writeln!(out, "...{n} frames elided..."),
        (true, None) => writeln!(out, "...additional frames elided..."),
    }
}

/// `N goroutines [status, a-b minutes, locked to thread]: ids`.
fn header(group: &Group) -> String {
    let g = &group.first;
    let n = group.ids.len();
    let mut s = format!(
        "{n} goroutine{} [{}",
        if n == 1 { "" } else { "s" },
        g.status
    );
    let (min, max) = (group.min_wait, group.max_wait);
    if max >= 1 {
        if min == max {
            let _ = write!(s, ", {max} minutes");
        } else {
            let _ = write!(s, ", {}-{max} minutes", min.max(0));
        }
    }
    if g.locked {
        s.push_str(", locked to thread");
    }
    s.push_str("]: ");
    s.push_str(&id_list(&group.ids));
    s
}

/// Sorted ids as `1, 3-6, 9`, capped at [`MAX_ID_ITEMS`] items.
fn id_list(ids: &[u64]) -> String {
    let mut items: Vec<(String, usize)> = Vec::new(); // (text, ids covered)
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j].wrapping_add(1) {
            j += 1;
        }
        if j - i >= 2 {
            items.push((format!("{}-{}", ids[i], ids[j]), j - i + 1));
        } else {
            for id in &ids[i..=j] {
                items.push((id.to_string(), 1));
            }
        }
        i = j + 1;
    }
    let shown: Vec<&str> = items
        .iter()
        .take(MAX_ID_ITEMS)
        .map(|(t, _)| t.as_str())
        .collect();
    let mut s = shown.join(", ");
    let rest: usize = items.iter().skip(MAX_ID_ITEMS).map(|(_, c)| c).sum();
    if rest > 0 {
        let _ = write!(s, ", ... and {rest} more");
    }
    s
}

#[cfg(test)]
pub(super) fn id_list_for_test(ids: &[u64]) -> String {
    id_list(ids)
}
