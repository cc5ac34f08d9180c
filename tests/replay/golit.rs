//! Reading values out of Go's fmt output (`%#v`, `%q`, `%x`) and out of
//! goat's, so that the two compare by value, not by syntax.

/// Every double-quoted Go string literal in `s`, unquoted, in order.
pub fn strings(s: &str) -> Vec<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let (lit, end) = unquote(b, i + 1).unwrap_or_else(|| panic!("bad literal in {s:?}"));
        out.push(lit);
        i = end + 1;
    }
    out
}

/// The literal starting after the quote at `start`: its bytes and the
/// index of its closing quote.
fn unquote(b: &[u8], start: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'"' => return Some((out, i)),
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' | b'"' | b'\'' => out.push(c),
                    b'x' => {
                        out.push(
                            u8::from_str_radix(std::str::from_utf8(b.get(i..i + 2)?).ok()?, 16)
                                .ok()?,
                        );
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let hex = std::str::from_utf8(b.get(i..i + n)?).ok()?;
                        let ch = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                        out.extend_from_slice(ch.to_string().as_bytes());
                        i += n;
                    }
                    b'0'..=b'7' => {
                        let oct = std::str::from_utf8(b.get(i - 1..i + 2)?).ok()?;
                        out.push(u8::from_str_radix(oct, 8).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// The bytes of `%x` output.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("hex {s:?}")))
        .collect()
}

/// The numbers of the first `[a,b,...]` (goat) or `{0xa, 0xb}` (Go's
/// `%#v`) list after `key` in `s`, as bytes.
pub fn byte_list(s: &str, key: &str) -> Vec<u8> {
    let rest = &s[s.find(key).unwrap_or_else(|| panic!("no {key:?} in {s:?}")) + key.len()..];
    // The first bracket that opens a list, not the `[]` of a type name.
    let open = rest
        .match_indices(['[', '{'])
        .map(|(i, _)| i)
        .find(|&i| !rest[i..].starts_with("[]"))
        .unwrap_or_else(|| panic!("no list after {key:?} in {s:?}"));
    let close = if rest.as_bytes()[open] == b'[' {
        ']'
    } else {
        '}'
    };
    let body = &rest[open + 1..open + rest[open..].find(close).expect("an unclosed list")];
    body.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n.strip_prefix("0x") {
            Some(h) => u8::from_str_radix(h, 16),
            None => n.parse(),
        })
        .map(|n| n.unwrap_or_else(|e| panic!("{e}: a list in {s:?}")))
        .collect()
}

/// The integer right after `key` (spaces skipped) in `s`: `Port: 80` and
/// `Port:80` alike; `0x` hex too.
pub fn int_after(s: &str, key: &str) -> u64 {
    let rest =
        s[s.find(key).unwrap_or_else(|| panic!("no {key:?} in {s:?}")) + key.len()..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let n = &rest[..end];
    match n.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => n.parse(),
    }
    .unwrap_or_else(|e| panic!("{e}: {key:?} in {s:?}"))
}

/// The lines of `x`'s hex dump (`0xADDR: b0 b1 ...  ascii`), as bytes.
pub fn hexdump(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        let Some((addr, rest)) = l.split_once(": ") else {
            continue;
        };
        if !addr.starts_with("0x") {
            continue;
        }
        // The bytes end where two spaces start the ASCII column.
        let hexes = rest.split("  ").next().unwrap_or_default();
        out.extend(
            hexes
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("x line {l:?}"))),
        );
    }
    out
}

#[test]
fn go_literals_read_back() {
    let s = r#"[2]string{"a\"b\\\n\x00\u00e9", "’"}"#;
    assert_eq!(
        strings(s),
        vec![b"a\"b\\\n\x00\xc3\xa9".to_vec(), "’".as_bytes().to_vec()]
    );
    assert_eq!(
        byte_list("Name:[]uint8{0x77, 0x0}, X", "Name:"),
        vec![0x77, 0]
    );
    assert_eq!(
        byte_list("Name: []uint8 len: 2, cap: 2, [119,0], X", "Name:"),
        vec![119, 0]
    );
    assert_eq!(int_after("Flags:0xc0ffee}", "Flags:"), 0xc0ffee);
    assert_eq!(int_after("Port: 80, Zone", "Port:"), 80);
    assert_eq!(hex("00ff"), vec![0, 255]);
}
