//! `goat heap`'s text: totals beside the runtime's own accounting (and
//! why they differ), the histogram by type, the roots by retained size,
//! and a reference chain for the biggest types.

use std::fmt::Write as _;

use crate::heapgraph::{Growth, HeapDiff, HeapReport, Totals};

/// How much of the report the text shows.
#[derive(Debug, Clone, Copy)]
pub struct HeapTextOptions {
    /// Rows of the histogram and of the roots.
    pub top: usize,
}

/// The whole report as text. `of`: "pid 1234" or "core FILE".
pub fn heap_text(r: &HeapReport, of: &str, opts: HeapTextOptions) -> String {
    let mut out = String::new();
    let t = &r.totals;
    let _ = writeln!(
        out,
        "goat heap: {of} ({}): {} objects, {} allocated; {} objects, {} reachable from roots",
        r.go_version,
        t.objects,
        bytes(t.bytes),
        t.reachable_objects,
        bytes(t.reachable_bytes),
    );
    accounting(&mut out, t);
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let shown = r.types.len().min(opts.top);
    let _ = writeln!(
        out,
        "\nTypes (the {shown} biggest of {}, by bytes):",
        r.types.len()
    );
    let _ = writeln!(
        out,
        "{:>12} {:>6} {:>10}  type",
        "bytes", "share", "objects"
    );
    for row in r.types.iter().take(shown) {
        let _ = writeln!(
            out,
            "{:>12} {:>5.1}% {:>10}  {}",
            bytes(row.bytes),
            share(row.bytes, t.bytes),
            row.objects,
            row.type_name
        );
    }
    let shown = r.roots.len().min(opts.top);
    let _ = writeln!(
        out,
        "\nRoots by retained size (the {shown} biggest of {}; what would be freed if the root went away):",
        r.roots.len()
    );
    let _ = writeln!(out, "{:>12} {:>10}  root", "retained", "objects");
    for row in r.roots.iter().take(shown) {
        let _ = writeln!(
            out,
            "{:>12} {:>10}  {}",
            bytes(row.retained_bytes),
            row.retained_objects,
            row.root
        );
    }
    if !r.chains.is_empty() {
        out.push_str("\nHow the biggest types are held (shortest chain from a root):\n");
        for c in &r.chains {
            let _ = writeln!(
                out,
                "  {} ({} at {}, retains {}):\n    {}",
                c.type_name,
                bytes(c.bytes),
                c.address,
                bytes(c.retained_bytes),
                c.path.join(" → ")
            );
        }
    }
    out
}

/// The runtime's own numbers beside goat's, and what the difference is.
fn accounting(out: &mut String, t: &Totals) {
    if let Some(marked) = t.runtime_heap_marked {
        let why = if t.bytes >= marked {
            "more: allocated after that GC, or garbage not swept yet"
        } else {
            "less: freed since by the sweeper"
        };
        let _ = writeln!(
            out,
            "runtime: the last GC marked {} live; goat counts {} allocated now ({} {why})",
            bytes(marked),
            bytes(t.bytes),
            bytes(t.bytes.abs_diff(marked)),
        );
    }
    if let Some(live) = t.runtime_heap_live {
        let _ = writeln!(
            out,
            "runtime: heapLive {} (marked, plus whole spans handed to threads' caches for allocation since)",
            bytes(live)
        );
    }
    if let Some(pages) = t.runtime_pages_in_use {
        let in_spans = pages.saturating_mul(8192);
        let _ = writeln!(
            out,
            "runtime: {} pages in use ({}): {} of them free slots in used spans (fragmentation)",
            pages,
            bytes(in_spans),
            bytes(in_spans.saturating_sub(t.bytes)),
        );
    }
    if t.unreachable_objects > 0 {
        let _ = writeln!(
            out,
            "unreachable: {} objects, {} (garbage the runtime has not freed yet, or held by something goat does not see as a root: a register, cgo memory)",
            t.unreachable_objects,
            bytes(t.unreachable_bytes)
        );
    }
    if t.count_mismatches > 0 || t.bad_spans > 0 {
        let _ = writeln!(
            out,
            "note: {} spans being allocated from at the copy, {} spans unreadable",
            t.count_mismatches, t.bad_spans
        );
    }
    if t.conservative_objects > 0 {
        let _ = writeln!(
            out,
            "note: {} objects' pointer metadata unreadable: scanned word by word (retained sizes may be over-counted)",
            t.conservative_objects
        );
    }
}

/// `goat heap --diff`'s text: growth by type and by root since the old
/// report, the biggest growth first.
pub fn heap_diff_text(d: &HeapDiff, of: &str, opts: HeapTextOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "goat heap --diff: {of}: {} objects, {} now; {} objects, {} before ({} objects, {})",
        d.new_totals.objects,
        bytes(d.new_totals.bytes),
        d.old_totals.objects,
        bytes(d.old_totals.bytes),
        signed(
            i128::from(d.new_totals.objects) - i128::from(d.old_totals.objects),
            false
        ),
        signed(
            i128::from(d.new_totals.bytes) - i128::from(d.old_totals.bytes),
            true
        ),
    );
    growth_rows(&mut out, "Types", "type", &d.types, opts.top);
    growth_rows(&mut out, "Roots (retained)", "root", &d.roots, opts.top);
    out
}

fn growth_rows(out: &mut String, title: &str, what: &str, rows: &[Growth], top: usize) {
    let shown = rows.len().min(top);
    let _ = writeln!(
        out,
        "\n{title}: the {shown} biggest changes of {}, by bytes:",
        rows.len()
    );
    let _ = writeln!(
        out,
        "{:>13} {:>12} {:>12} {:>10}  {what}",
        "bytes", "now", "before", "objects"
    );
    for g in rows.iter().take(shown) {
        let _ = writeln!(
            out,
            "{:>13} {:>12} {:>12} {:>10}  {}",
            signed(i128::from(g.bytes_delta), true),
            bytes(g.new.bytes),
            bytes(g.old.bytes),
            signed(i128::from(g.objects_delta), false),
            g.name
        );
    }
}

/// `+1.5 MiB`, `-3`.
fn signed(n: i128, as_bytes: bool) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    let abs = u64::try_from(n.unsigned_abs()).unwrap_or(u64::MAX);
    match as_bytes {
        true => format!("{sign}{}", bytes(abs)),
        false => format!("{sign}{abs}"),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `1.5 MiB`, `312 B`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(312), "312 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 << 20), "20.0 MiB");
        assert_eq!(share(1, 0), 0.0);
        assert_eq!(signed(-2048, true), "-2.0 KiB");
        assert_eq!(signed(3, false), "+3");
    }
}
