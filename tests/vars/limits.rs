//! `config max-string-len`, `max-array-values` and `max-variable-recurse`
//! change what `print` shows, and `args`/`locals` take Delve's `-v` and
//! REGEX, on the held `main.hold` frame.

use super::Held;

/// (config commands, expression, what print shows after them).
const TABLE: &[(&str, &str, &str)] = &[
    ("max-string-len 4", "gLongStr", "\"abab\"...+116 more"),
    ("max-string-len 0", "name", "\"\"...+6 more"),
    (
        "max-array-values 3",
        "gLong",
        "[]int len: 100, cap: 100, [0,1,4,...+97 more]",
    ),
    ("max-array-values 0", "gArr", "[3]int [...+3 more]"),
    // As Delve: a struct's fields are not cut by max-array-values.
    (
        "max-array-values 1",
        "in",
        "main.Inner {Name: \"inner\", Count: 5}",
    ),
    ("max-array-values 2", "len(m)", "3"),
    ("max-variable-recurse 0", "in", "main.Inner {...}"),
    // A pointer is no level of its own, as in Delve.
    (
        "max-variable-recurse 1",
        "req",
        "*main.Request {ID: 7, Path: \"/api/v1\", Inner: main.Inner {...}}",
    ),
    (
        "max-variable-recurse 2",
        "req",
        "*main.Request {ID: 7, Path: \"/api/v1\", Inner: main.Inner {Name: \"deep\", Count: 3}}",
    ),
];

pub fn check_limits(h: &Held) {
    let f = &h.flavour;
    for (set, expr, want) in TABLE {
        let (out, err) = h.run(&format!("config {set}\np {expr}"));
        assert_eq!(out.trim(), *want, "{f}: config {set}; p {expr}: {err}");
    }
    // A map shows at most max-array-values entries, and counts the rest.
    let (out, _) = h.run("config max-array-values 2\np big");
    assert!(
        out.starts_with("map[int]string len: 20, [") && out.contains("...+18 more"),
        "{f}: {out}"
    );
    assert_eq!(out.matches(": \"v").count(), 2, "{f}: {out}");
    // Settings beyond goat's bounds are refused, and say the bound.
    let (_, err) = h.run("config max-array-values 100000000");
    assert!(err.contains("over goat's maximum 65536"), "{f}: {err}");
    let (out, _) = h.run("config max-variable-recurse 5\nconfig -list");
    assert!(out.contains("max-variable-recurse   5"), "{f}: {out}");
}

/// `args`/`locals [-v] [REGEX]`.
pub fn check_filters(h: &Held) {
    let f = &h.flavour;
    let (out, _) = h.run("args ^na");
    assert_eq!(out.trim(), "name = \"gopher\"", "{f}");
    let (out, _) = h.run("args -v ^in$");
    assert_eq!(
        out.trim(),
        "in = main.Inner {\n\tName: \"inner\",\n\tCount: 5,}",
        "{f}"
    );
    let (out, _) = h.run("locals ^msgs$|^flag$");
    assert_eq!(
        out.trim(),
        "msgs = []string len: 3, cap: 3, [\"zero\",\"one\",\"two\"]\nflag = true",
        "{f}"
    );
    let (out, _) = h.run("locals -v nomatch");
    assert_eq!(out.trim(), "(no locals)", "{f}");
}
