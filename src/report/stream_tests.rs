//! The streaming writer against the whole-dump writers and serde's own
//! compact text (JSON): the same bytes however the goroutines are chunked.

use serde::Serialize;

use super::super::*;
use super::{goroutine, parse_oracle, G119_EXE_ALL, G127_PIE_ALL};

/// The whole document as serde writes it, compact.
#[derive(Serialize)]
struct WholeDocument<'a> {
    go_version: &'a str,
    goroutines: Vec<json::GoroutineView<'a>>,
}

/// What `--json` writes for `dump`: serde's compact text of the whole
/// document, a line break before each goroutine and before the closing
/// `]}`, and one at the end.
fn serde_whole(dump: &Dump) -> Vec<u8> {
    let doc = WholeDocument {
        go_version: &dump.go_version,
        goroutines: dump.goroutines.iter().map(json::view).collect(),
    };
    let head = serde_json::to_vec(&WholeDocument {
        goroutines: Vec::new(),
        ..doc
    })
    .unwrap();
    let mut out = head[..head.len() - 2].to_vec();
    for (i, g) in doc.goroutines.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        out.extend(serde_json::to_vec(g).unwrap());
    }
    if !doc.goroutines.is_empty() {
        out.push(b'\n');
    }
    out.extend_from_slice(b"]}\n");
    // Without its line breaks (JSON strings hold none), serde's own text.
    let joined: Vec<u8> = out.iter().copied().filter(|&b| b != b'\n').collect();
    assert_eq!(joined, serde_json::to_vec(&doc).unwrap());
    out
}

/// `dump` written through a [`StreamWriter`] in chunks of the given sizes
/// (cycled; 0 is an empty chunk, as a chunk of dead goroutines is).
fn streamed(dump: &Dump, format: Format, sizes: &[usize]) -> Vec<u8> {
    let info = dump.info();
    let formatter = ChunkFormatter::new(&info, format);
    let mut out = Vec::new();
    let mut w = StreamWriter::new(&mut out, &info, format);
    let mut rest = &dump.goroutines[..];
    for &n in sizes.iter().cycle() {
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        w.write(formatter.format(chunk).unwrap()).unwrap();
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    assert_eq!(w.goroutines(), dump.goroutines.len());
    w.finish().unwrap();
    out
}

fn whole(dump: &Dump, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        Format::Text => write_text(&mut out, dump),
        Format::Json => write_json(&mut out, dump),
        Format::Grouped => write_grouped(&mut out, dump),
        Format::GroupedJson => write_grouped_json(&mut out, dump),
    }
    .unwrap();
    out
}

fn oracles() -> Vec<Dump> {
    vec![
        parse_oracle(G127_PIE_ALL, "go1.27.0", true),
        parse_oracle(G119_EXE_ALL, "go1.19.13", false),
    ]
}

#[test]
fn json_is_serde_compact_text_one_goroutine_a_line() {
    for dump in oracles() {
        let want = serde_whole(&dump);
        assert_eq!(whole(&dump, Format::Json), want);
        // A line per goroutine, each a JSON object of its own.
        let text = String::from_utf8(want.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), dump.goroutines.len() + 2);
        for (line, g) in lines[1..lines.len() - 1].iter().zip(&dump.goroutines) {
            let v: serde_json::Value = serde_json::from_str(line.trim_end_matches(',')).unwrap();
            assert_eq!(v["id"], g.id);
        }
        for sizes in [&[1][..], &[0, 3, 0, 2], &[1000]] {
            assert_eq!(streamed(&dump, Format::Json, sizes), want, "{sizes:?}");
        }
    }
    let empty = Dump {
        goroutines: Vec::new(),
        ..oracles().remove(0)
    };
    assert_eq!(whole(&empty, Format::Json), serde_whole(&empty));
}

#[test]
fn any_chunking_writes_what_the_whole_dump_writes() {
    for dump in oracles() {
        for format in [
            Format::Text,
            Format::Json,
            Format::Grouped,
            Format::GroupedJson,
        ] {
            let want = whole(&dump, format);
            assert!(!want.is_empty());
            for sizes in [&[1][..], &[2, 0, 5], &[7, 1]] {
                assert_eq!(
                    String::from_utf8(streamed(&dump, format, sizes)).unwrap(),
                    String::from_utf8(want.clone()).unwrap(),
                    "{format:?} {sizes:?}"
                );
            }
        }
    }
}

#[test]
fn groups_merge_across_chunks_keeping_one_copy_per_stack() {
    // Two stacks interleaved over many chunks, ids out of order: the
    // merged groups must count, order and list ids as one pass would.
    let oracle = parse_oracle(G127_PIE_ALL, "go1.27.0", true);
    let (a, b) = (&oracle.goroutines[0], &oracle.goroutines[1]);
    let mut dump = Dump {
        goroutines: Vec::new(),
        ..oracle.clone()
    };
    for i in 0..500u64 {
        let mut g = if i % 3 == 0 { b.clone() } else { a.clone() };
        g.id = 10_000 - i * 7;
        g.wait_minutes = Some((i % 5) as i64);
        dump.goroutines.push(g);
    }
    let out = String::from_utf8(streamed(&dump, Format::Grouped, &[13, 0, 64])).unwrap();
    assert_eq!(
        out,
        String::from_utf8(whole(&dump, Format::Grouped)).unwrap()
    );
    let headers: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" goroutines ["))
        .collect();
    assert_eq!(headers.len(), 2, "{out}");
    assert!(headers[0].starts_with("333 goroutines ["), "{}", headers[0]);
    assert!(headers[0].contains(", 0-4 minutes"), "{}", headers[0]);
    assert!(headers[1].starts_with("167 goroutines ["), "{}", headers[1]);
    // Ids ascending: the smallest first.
    assert!(
        headers[1].contains("]: 6514, 6535, 6556, "),
        "{}",
        headers[1]
    );
    assert!(headers[1].ends_with(", ... and 147 more"), "{}", headers[1]);
}

#[test]
fn an_empty_stream_writes_no_text() {
    let dump = oracles().remove(0);
    let info = dump.info();
    for format in [Format::Text, Format::Json, Format::Grouped] {
        let mut out = Vec::new();
        let mut w = StreamWriter::new(&mut out, &info, format);
        w.write(ChunkFormatter::new(&info, format).format(&[]).unwrap())
            .unwrap();
        assert_eq!(w.goroutines(), 0);
        drop(w);
        assert!(out.is_empty(), "{format:?}");
    }
    let _ = goroutine(1, "x", Vec::new(), None);
}
