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
        "../../../fuzz/regressions/expr_parse/oom-78a204bf31a9cdf089f2a25687fd0aec3e924d05"
    );
    let text = std::str::from_utf8(input).expect("the fuzz target takes UTF-8 only");
    assert!(parse(text).is_err());
    assert!(parse("a\u{98}").is_err());
    assert!(parse("\u{98}").is_err());
    // Letters beyond ASCII still make identifiers.
    assert!(parse("main.größe").is_ok());
}

/// Memory with nothing in it: constants need none.
struct NoMemory;

impl crate::process::Memory for NoMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), crate::process::ReadFault> {
        Err(crate::process::ReadFault {
            addr,
            len: buf.len(),
        })
    }
}

/// `1 + 1 + … + 1` with `terms` terms.
fn sum_of_ones(terms: usize) -> String {
    vec!["1"; terms].join("+")
}

/// A chain the parser builds in a loop is as deep as it is long; past
/// `MAX_TOKENS` it is refused with a clear error (issue 33, item 5: 20,000
/// terms overflowed goat's stack), and at the bound parsing, evaluation,
/// printing back and dropping all fit the stack a session runs on.
#[test]
fn long_chains_are_refused_and_the_longest_accepted_fits_the_stack() {
    use super::parse::MAX_TOKENS;
    let fields = "main.head".to_string() + &".Next".repeat(20_000);
    for text in [sum_of_ones(20_000), fields] {
        let err = parse(&text).expect_err("too long").to_string();
        assert!(err.starts_with("expression too long: "), "{err}");
        assert!(err.contains(&format!("at most {MAX_TOKENS}")), "{err}");
    }
    // The longest sum accepted: 2n-1 tokens.
    let terms = MAX_TOKENS.div_ceil(2);
    let text = sum_of_ones(terms);
    let index = crate::binary::dwarf_vars::VarIndex::default();
    let run = || {
        let scope = crate::values::Scope::bare(&NoMemory, &index);
        let shown = parse(&text).expect("at the bound").to_string();
        let value = scope.eval_text(&text).expect("constants evaluate");
        (shown, value)
    };
    let (shown, value) = std::thread::scope(|t| {
        std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(t, run)
            .expect("a thread")
            .join()
            .expect("no stack overflow or panic")
    });
    assert_eq!(shown.matches('1').count(), terms);
    assert!(
        matches!(value, super::Val::Const(super::Const::Int(n)) if n == terms as i128),
        "{value:?}"
    );
    assert!(parse(&sum_of_ones(terms + 1)).is_err());
}
