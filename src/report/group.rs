//! The grouped view (panicparse's): goroutines whose stacks are the same
//! collapse into one block.
//!
//! Two goroutines are in the same group when they have the same header
//! status text, the same `locked to thread` flag, the same sequence of
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
use std::io::{self, Write};

use super::print_name;
use crate::goruntime::{Dump, Goroutine};

/// Id list items printed before `... and K more`.
const MAX_ID_ITEMS: usize = 20;

/// What makes two goroutines "the same stack".
#[derive(PartialEq, Eq, Hash)]
struct Key<'a> {
    status: &'a str,
    locked: bool,
    frames: Vec<(&'a str, &'a str, u32, bool)>,
    elided: Option<(usize, Option<usize>)>,
    unreadable: Option<&'a str>,
    created_by: Option<(&'a str, &'a str, u32)>,
}

fn key(g: &Goroutine) -> Key<'_> {
    Key {
        status: &g.status,
        locked: g.locked,
        frames: g
            .frames
            .iter()
            .map(|f| (&*f.function, &*f.file, f.line, f.inlined))
            .collect(),
        elided: g.elided.map(|e| (e.at, e.count)),
        unreadable: g.unreadable.as_deref(),
        created_by: g
            .created_by
            .as_ref()
            .map(|c| (&*c.function, &*c.file, c.line)),
    }
}

/// Groups in print order: biggest first, then by smallest id. Members are
/// sorted by id.
fn groups(dump: &Dump) -> Vec<Vec<&Goroutine>> {
    let mut index: HashMap<Key<'_>, usize> = HashMap::new();
    let mut groups: Vec<Vec<&Goroutine>> = Vec::new();
    for g in &dump.goroutines {
        let i = *index.entry(key(g)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(g);
    }
    for members in &mut groups {
        members.sort_by_key(|g| g.id);
    }
    groups.sort_by_key(|m| (std::cmp::Reverse(m.len()), m[0].id));
    groups
}

pub(super) fn write(out: &mut dyn Write, dump: &Dump) -> io::Result<()> {
    for members in groups(dump) {
        write_group(out, &members)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn write_group(out: &mut dyn Write, members: &[&Goroutine]) -> io::Result<()> {
    let g = members[0];
    writeln!(out, "{}", header(members))?;
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
fn header(members: &[&Goroutine]) -> String {
    let g = members[0];
    let n = members.len();
    let mut s = format!(
        "{n} goroutine{} [{}",
        if n == 1 { "" } else { "s" },
        g.status
    );
    let min = members.iter().map(|g| g.wait_minutes).min().unwrap_or(0);
    let max = members.iter().map(|g| g.wait_minutes).max().unwrap_or(0);
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
    let ids: Vec<u64> = members.iter().map(|g| g.id).collect();
    s.push_str(&id_list(&ids));
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
