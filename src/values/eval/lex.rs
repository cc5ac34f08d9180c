//! Go tokens: identifiers, number/rune/string literals and operators.

use super::super::VarError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Int(i128),
    Float(f64),
    Char(i128),
    Str(Vec<u8>),
    /// An operator or punctuation, longest match first.
    Op(&'static str),
}

/// Longest first, so `&^` wins over `&` and `<<` over `<`.
const OPS: &[&str] = &[
    "&^", "<<", ">>", "==", "!=", "<=", ">=", "&&", "||", "+", "-", "*", "/", "%", "&", "|", "^",
    "<", ">", "!", "(", ")", "[", "]", ".", ",", ":",
];

/// Splits `text` into tokens, each with its byte offset.
pub fn lex(text: &str) -> Result<Vec<(usize, Tok)>, VarError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok =
            if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                let end = number_end(b, i);
                let t = number(&text[i..end])?;
                i = end;
                t
            } else if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 {
                // Go identifiers are letters and digits; Delve also takes
                // the compiler's `~r0` names (see below).
                let end = text[i..]
                    .char_indices()
                    .find(|&(_, ch)| !(ch == '_' || ch.is_alphanumeric()))
                    .map_or(text.len(), |(n, _)| i + n);
                // A non-ASCII character that is no letter (U+0098, say)
                // starts nothing: without this the empty identifier never
                // moved `i`, and the loop filled memory with them.
                if end == i {
                    return Err(VarError::UnexpectedChar {
                        at: start,
                        ch: text[i..].chars().next().unwrap_or('?'),
                    });
                }
                let t = Tok::Ident(text[i..end].to_string());
                i = end;
                t
            } else if c == b'~' && b.get(i + 1).is_some_and(|x| x.is_ascii_alphanumeric()) {
                let end = text[i + 1..]
                    .find(|ch: char| !(ch == '_' || ch.is_alphanumeric()))
                    .map_or(text.len(), |n| i + 1 + n);
                let t = Tok::Ident(text[i..end].to_string());
                i = end;
                t
            } else if c == b'"' {
                let (s, end) = quoted(text, i, b'"')?;
                i = end;
                Tok::Str(s)
            } else if c == b'`' {
                let close = text[i + 1..]
                    .find('`')
                    .ok_or(VarError::Unterminated(start))?;
                let s = text.as_bytes()[i + 1..i + 1 + close].to_vec();
                i += close + 2;
                Tok::Str(s)
            } else if c == b'\'' {
                let (s, end) = quoted(text, i, b'\'')?;
                let rune = match std::str::from_utf8(&s)
                    .ok()
                    .map(|t| t.chars().collect::<Vec<_>>())
                {
                    Some(cs) if cs.len() == 1 => i128::from(u32::from(cs[0])),
                    _ if s.len() == 1 => i128::from(s[0]),
                    _ => return Err(VarError::BadRune(start)),
                };
                i = end;
                Tok::Char(rune)
            } else {
                let op = OPS
                    .iter()
                    .find(|o| text[i..].starts_with(**o))
                    .ok_or_else(|| VarError::UnexpectedChar {
                        at: start,
                        ch: text[i..].chars().next().unwrap_or('?'),
                    })?;
                i += op.len();
                Tok::Op(op)
            };
        out.push((start, tok));
    }
    Ok(out)
}

/// Where a number starting at `i` ends (digits, letters for prefixes and
/// exponents, `_`, `.`, and a sign right after an exponent letter).
fn number_end(b: &[u8], mut i: usize) -> usize {
    let hex = b.get(i + 1).is_some_and(|x| *x == b'x' || *x == b'X') && b[i] == b'0';
    while i < b.len() {
        let c = b[i];
        let exp = if hex { b"pP" } else { b"eE" };
        let signed = (c == b'+' || c == b'-') && i > 0 && exp.contains(&b[i - 1]);
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || signed {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn number(s: &str) -> Result<Tok, VarError> {
    let bad = || VarError::BadNumber(s.to_string());
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let radix = |p: &str, r: u32| -> Option<Result<Tok, VarError>> {
        let digits = lower.strip_prefix(p)?;
        Some(
            i128::from_str_radix(digits, r)
                .map(Tok::Int)
                .map_err(|_| bad()),
        )
    };
    if let Some(hex) = lower.strip_prefix("0x").filter(|h| h.contains('p')) {
        return hex_float(hex).map(Tok::Float).ok_or_else(bad);
    }
    if let Some(t) = radix("0x", 16)
        .or_else(|| radix("0b", 2))
        .or_else(|| radix("0o", 8))
    {
        return t;
    }
    if lower.contains(['.', 'e']) {
        return lower.parse().map(Tok::Float).map_err(|_| bad());
    }
    // A leading 0 is octal in Go (0755).
    if lower.len() > 1 && lower.starts_with('0') {
        return i128::from_str_radix(&lower[1..], 8)
            .map(Tok::Int)
            .map_err(|_| bad());
    }
    lower.parse().map(Tok::Int).map_err(|_| bad())
}

/// Go's hexadecimal float `MANTISSAp±EXP` (after `0x`): the mantissa's
/// hex digits, with an optional point, times two to EXP.
fn hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut m = 0f64;
    for c in int.chars().chain(frac.chars()) {
        m = m * 16.0 + f64::from(c.to_digit(16)?);
    }
    let frac_bits = i32::try_from(frac.len()).ok()?.checked_mul(4)?;
    Some(m * 2f64.powi(exp.checked_sub(frac_bits)?))
}

/// A `"` or `'` quoted literal at `start`, with Go's escapes: its bytes and
/// where it ends.
fn quoted(text: &str, start: usize, q: u8) -> Result<(Vec<u8>, usize), VarError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        let c = *b.get(i).ok_or(VarError::Unterminated(start))?;
        i += 1;
        if c == q {
            return Ok((out, i));
        }
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *b.get(i).ok_or(VarError::Unterminated(start))?;
        i += 1;
        let simple = match e {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'v' => Some(11),
            b'\\' | b'\'' | b'"' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (len, radix) = match e {
            b'x' => (2, 16),
            b'u' => (4, 16),
            b'U' => (8, 16),
            b'0'..=b'7' => (2, 8),
            _ => return Err(VarError::BadEscape(i - 2)),
        };
        let from = if radix == 8 { i - 1 } else { i };
        let digits = text
            .get(from..from + len + usize::from(radix == 8))
            .ok_or(VarError::BadEscape(i - 2))?;
        let n = u32::from_str_radix(digits, radix).map_err(|_| VarError::BadEscape(i - 2))?;
        i = from + digits.len();
        if e == b'u' || e == b'U' {
            let ch = char::from_u32(n).ok_or(VarError::BadEscape(from))?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        } else {
            out.push(u8::try_from(n).map_err(|_| VarError::BadEscape(from))?);
        }
    }
}
