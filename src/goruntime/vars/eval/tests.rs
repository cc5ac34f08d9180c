//! The parser over a table of expressions and of errors.

use super::parse;

#[test]
fn parses_a_table_of_expressions() {
    // (input, how it prints back: precedence made explicit by the tree)
    let table = [
        ("a", "a"),
        ("&**a.b[3].c", "&**a.b[3].c"),
        ("main.counter", "main.counter"),
        ("\"net/http\".DefaultClient", "net/http.DefaultClient"),
        ("m[\"zz\"]", "m[\"zz\"]"),
        ("s[1:3]", "s[1:3]"),
        ("s[:2]", "s[:2]"),
        ("s[1:]", "s[1:]"),
        ("x.(*main.T)", "x.(*main.T)"),
        ("x.(main.T).F", "x.(main.T).F"),
        ("(*main.T)(0xc000012345)", "(*main.T)(824633795397)"),
        ("*(*main.T)(0x10)", "*(*main.T)(16)"),
        ("len(buf)", "len(buf)"),
        ("[]byte(s)", "[]byte(s)"),
        ("n+1", "n + 1"),
        ("1 + 2*3", "1 + 2 * 3"),
        ("a || b && c", "a || b && c"),
        ("-x", "-x"),
        ("!ok", "!ok"),
        ("^0", "^0"),
        ("a &^ b << 2", "a &^ b << 2"),
        (
            "0x_ff + 0o17 + 0b101 + 017 + 1_000",
            "255 + 15 + 5 + 15 + 1000",
        ),
        ("'a'", "'a'"),
        ("`raw\\n`", "\"raw\\\\n\""),
        ("\"\\u4e16\\x41\"", "\"世A\""),
        ("1.5e3", "1500.0"),
        ("0x1p4", "16.0"),
        ("0x1.8p1", "3.0"),
        ("0x.8p-1", "0.25"),
    ];
    for (input, want) in table {
        let e = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(e.to_string(), want, "{input}");
    }
    // Precedence: * binds tighter than +, && tighter than ||.
    let e = parse("1 + 2 * 3 == 7 || false").unwrap();
    assert!(matches!(
        e,
        super::ast::Expr::Binary(super::ast::BinOp::LOr, _, _)
    ));
}

#[test]
fn rejects_a_table_of_errors() {
    let table = [
        ("", "empty expression"),
        ("a[", "unexpected end of expression"),
        ("a b", "unexpected \"b\" at 2"),
        ("1x", "bad number \"1x\""),
        ("a..b", "expected a field name after '.' in \"a\""),
        ("\"abc", "unterminated literal at 0"),
        ("'ab'", "bad rune literal at 0"),
        ("a[]", "unexpected \"]\" at 2"),
        ("f(a", "expected ,"),
        ("a $ b", "unexpected character '$' at 2"),
        ("\"\\q\"", "bad escape at 1"),
        ("x.()", "expected a type"),
    ];
    for (input, want) in table {
        let got = parse(input).map(|e| e.to_string());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{input}"
        );
    }
    // Hostile nesting is an error, not a stack overflow.
    let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    assert!(parse(&deep).is_err());
    let neg = "-".repeat(10_000) + "1";
    assert!(parse(&neg).is_err());
}

/// Inputs the `expr_parse` fuzz target found (fuzz/regressions/expr_parse/).
#[test]
fn fuzz_findings_of_expr_parse_stay_fixed() {
    // A non-letter non-ASCII character (U+0098) lexed as an empty
    // identifier without moving on: endless tokens, out of memory.
    let input = include_bytes!(
        "../../../../fuzz/regressions/expr_parse/oom-78a204bf31a9cdf089f2a25687fd0aec3e924d05"
    );
    let text = std::str::from_utf8(input).expect("the fuzz target takes UTF-8 only");
    assert!(parse(text).is_err());
    assert!(parse("a\u{98}").is_err());
    assert!(parse("\u{98}").is_err());
    // Letters beyond ASCII still make identifiers.
    assert!(parse("main.größe").is_ok());
}
