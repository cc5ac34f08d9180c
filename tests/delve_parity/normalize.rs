//! The format differences between Delve's and goat's `print` that are not
//! value differences, undone so that the two texts compare equal. Each rule
//! says why it is legitimate; anything else that differs is a failure.
//!
//! 1. Delve lays a long value out on several lines (a field or entry a
//!    line, a trailing comma before the closing bracket); goat prints one
//!    line. [`delve`] joins Delve's lines.
//! 2. goat's map header counts the entries (`map[K]V len: N, [...]`, and
//!    `map[K]V len: 0` when empty); Delve 1.20 prints none. The entries
//!    themselves are compared.
//! 3. Delve omits a type its container already implies: an element's,
//!    key's or value's type inside `[...]` (`{X: 1}` for a `main.Point`
//!    element, `*{...}` for a `*main.Inner` key), the interface wrapper of
//!    an `any` key (`"s"` for `interface {}(string) "s"`), and the concrete
//!    type repeated after an interface's `(T)` (`error(*T) *{...}`). goat
//!    names them all.
//! 4. A string cut at max-string-len: Delve writes `...+N more` inside the
//!    quotes, goat after them.

/// Delve's text on one line (rule 1).
pub fn delve(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\t');
        if i > 0 && out.ends_with(',') && !out.ends_with(", ") {
            // A struct's fields are separated by ", ", an array's elements
            // by ",": the innermost open bracket says which.
            if innermost_open(&out) == Some('{') {
                out.push(' ');
            }
        }
        out.push_str(line);
    }
    let out = out
        .replace(", ]", "]")
        .replace(",]", "]")
        .replace(",}", "}");
    // A map's entries end in ", " before the newline: the last one too.
    out.replace(", ]", "]")
}

/// goat's text in Delve's form (rules 2, 3, 4).
pub fn goat(text: &str) -> String {
    let s = map_headers(text);
    let s = element_types(&s);
    let s = repeated_concrete_types(&s);
    cut_strings(&s)
}

/// The innermost bracket `text` leaves open (outside string literals).
fn innermost_open(text: &str) -> Option<char> {
    let mut stack = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => skip_string(&mut chars),
            '{' | '[' => stack.push(c),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

fn skip_string(chars: &mut std::str::Chars<'_>) {
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return,
            _ => {}
        }
    }
}

/// Rule 2: `len: N, [` of a map is `[`, a lone `len: 0` is `[]`.
fn map_headers(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(" len: ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 6..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let tail = &after[digits..];
        if digits > 0 && tail.starts_with(", [") {
            out.push(' ');
            rest = &tail[2..];
        } else if &after[..digits] == "0" && !tail.starts_with(", ") {
            out.push_str(" []");
            rest = tail;
        } else {
            out.push_str(" len: ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Rule 3, first half: no type names on the elements, keys and values
/// inside a value's `[...]`.
fn element_types(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut stack: Vec<(char, bool)> = Vec::new(); // (bracket, a value body)
    let mut i = 0;
    let mut at_element = false;
    while i < b.len() {
        let c = b[i];
        if at_element {
            at_element = false;
            if let Some((keep, skip)) = element_prefix(&b[i..]) {
                out.push_str(&keep);
                i += skip;
                continue;
            }
        }
        out.push(c);
        i += 1;
        match c {
            '"' => {
                while i < b.len() {
                    out.push(b[i]);
                    i += 1;
                    match b[i - 1] {
                        '\\' if i < b.len() => {
                            out.push(b[i]);
                            i += 1;
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '[' => {
                let body = value_body(&b, i);
                stack.push(('[', body));
                at_element = body;
            }
            '{' => stack.push(('{', false)),
            ']' | '}' => {
                stack.pop();
            }
            ',' if stack.last().is_some_and(|s| s.1) => {
                if b.get(i) == Some(&' ') {
                    out.push(' ');
                    i += 1;
                }
                at_element = true;
            }
            ':' if stack.last().is_some_and(|s| s.1) && b.get(i) == Some(&' ') => {
                out.push(' ');
                i += 1;
                at_element = true;
            }
            _ => {}
        }
    }
    out
}

/// Whether the `[` just before `at` opens a value's elements, not a type's
/// `[N]`, `[]` or `map[`.
fn value_body(b: &[char], at: usize) -> bool {
    let before: String = b[..at - 1].iter().rev().take(3).collect();
    if before == "pam" {
        return false;
    }
    let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    match b.get(at + digits) {
        // `[]T` or `[N]T`: a type when a type name follows.
        Some(']') => !b
            .get(at + digits + 1)
            .is_some_and(|c| c.is_alphabetic() || matches!(c, '*' | '[' | '_')),
        _ => true,
    }
}

/// What stands for the start of `s` (an element's start) in Delve's text,
/// and how many characters of `s` it replaces: a type name Delve leaves
/// out (`T ` before `{`/`[`; a pointer's `T ` after its `*`, which stays),
/// an interface's `I(T) `.
fn element_prefix(s: &[char]) -> Option<(String, usize)> {
    let text: String = s.iter().take(200).collect();
    for iface in ["interface {}(", "error("] {
        if let Some(rest) = text.strip_prefix(iface) {
            let close = matching_paren(rest)?;
            let n = iface.chars().count() + rest[..close].chars().count() + 2;
            return rest[close..].starts_with(") ").then(|| (String::new(), n));
        }
    }
    let stars = text.chars().take_while(|c| *c == '*').count();
    let word: String = text.chars().skip(stars).take_while(|c| *c != ' ').collect();
    let next: String = text
        .chars()
        .skip(stars + word.chars().count())
        .take(2)
        .collect();
    let typed = (next == " {" || next == " [")
        && word
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '[');
    typed.then(|| ("*".repeat(stars), stars + word.chars().count() + 1))
}

/// The index in `s` of the `)` closing a `(` just before `s`.
fn matching_paren(s: &str) -> Option<usize> {
    let mut level = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => level += 1,
            ')' if level == 0 => return Some(i),
            ')' => level -= 1,
            _ => {}
        }
    }
    None
}

/// Rule 3, second half: `I(T) T {` is `I(T) {`, `I(*T) *T {` is
/// `I(*T) *{`, and a pointer element's `*T {` is `*{`.
fn repeated_concrete_types(text: &str) -> String {
    let mut s = text.to_string();
    let mut from = 0;
    while let Some(at) = s[from..].find(") ").map(|a| a + from) {
        from = at + 2;
        let Some(open) = matching_open(&s[..at]) else {
            continue;
        };
        let ty = s[open + 1..at].to_string();
        let stars = ty.len() - ty.trim_start_matches('*').len();
        if !ty.is_empty() && s[at + 2..].starts_with(&format!("{ty} {{")) {
            let end = at + 2 + ty.len() + 1;
            s.replace_range(at + 2 + stars..end, "");
        }
    }
    s
}

/// The index of the `(` that the `)` at the end of `s` closes.
fn matching_open(s: &str) -> Option<usize> {
    let mut level = 0usize;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => level += 1,
            '(' if level == 0 => return Some(i),
            '(' => level -= 1,
            _ => {}
        }
    }
    None
}

/// Rule 4: `"…"...+N more` is `"……...+N more"`.
fn cut_strings(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"...+") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(" more").map_or(after.len(), |e| e + 5);
        out.push_str(&after[..end]);
        out.push('"');
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_normalization_undoes_only_format() {
    assert_eq!(
        delve("*main.Request {\n\tID: 7,\n\tPath: \"/a\",\n\tInner: main.Inner {Name: \"d\", Count: 3},}"),
        "*main.Request {ID: 7, Path: \"/a\", Inner: main.Inner {Name: \"d\", Count: 3}}"
    );
    assert_eq!(
        delve("map[string]int [\n\t\"a\": 1, \n\t\"b\": 2, \n]"),
        "map[string]int [\"a\": 1, \"b\": 2]"
    );
    assert_eq!(
        delve("[2]main.Point [\n\t{X: 1},\n\t{X: 5},\n]"),
        "[2]main.Point [{X: 1},{X: 5}]"
    );
    assert_eq!(
        goat("map[string]int len: 2, [\"a\": 1, \"b\": 2]"),
        "map[string]int [\"a\": 1, \"b\": 2]"
    );
    assert_eq!(goat("map[string]int len: 0"), "map[string]int []");
    assert_eq!(
        goat("[]int len: 2, cap: 2, [2,3]"),
        "[]int len: 2, cap: 2, [2,3]"
    );
    assert_eq!(
        goat("[2]main.Point [main.Point {X: 1},main.Point {X: 5}]"),
        "[2]main.Point [{X: 1},{X: 5}]"
    );
    assert_eq!(
        goat("map[[2]int]int len: 1, [[2]int [1,2]: 12]"),
        "map[[2]int]int [[1,2]: 12]"
    );
    assert_eq!(
        goat("map[interface {}]string len: 2, [interface {}(main.Point) main.Point {X: 1}: \"pt\", interface {}(string) \"s\": \"str\"]"),
        "map[interface {}]string [main.Point {X: 1}: \"pt\", \"s\": \"str\"]"
    );
    assert_eq!(
        goat("map[*main.Inner]string len: 1, [*main.Inner {Name: \"p\"}: \"ptr\"]"),
        "map[*main.Inner]string [*{Name: \"p\"}: \"ptr\"]"
    );
    assert_eq!(
        goat("error(*fmt.wrapError) *fmt.wrapError {msg: \"m\", err: error(*errors.errorString) *errors.errorString {s: \"x\"}}"),
        "error(*fmt.wrapError) *{msg: \"m\", err: error(*errors.errorString) *{s: \"x\"}}"
    );
    assert_eq!(
        goat("interface {}(main.Box) main.Box {P: nil}"),
        "interface {}(main.Box) {P: nil}"
    );
    assert_eq!(goat("\"abab\"...+56 more"), "\"abab...+56 more\"");
    // A value difference stays one.
    assert_ne!(
        goat("map[string]int len: 1, [\"a\": 2]"),
        delve("map[string]int [\n\t\"a\": 1, \n]")
    );
}
