//! (expression, the error `print` reports): every error of the evaluator
//! (src/values/eval/) that a frame of the `vars` fixture can reach,
//! and the parser's. Not here: `empty expression` (`print` with no
//! expression is a usage error; the parser's unit tests have it), and the
//! errors of hostile DWARF or memory (unknown types, stale interface
//! words), which src/values/hostile_tests.rs provokes.

pub const ERRORS: &[(&str, &str)] = &[
    // Names.
    ("nope", "no variable \"nope\" in main.hold"),
    ("main.nope", "no variable \"main.nope\" in main.hold"),
    ("nope.x", "no variable \"nope\" in main.hold"),
    ("fmt.nope", "no variable \"fmt.nope\" in main.hold"),
    ("main.Inner", "main.Inner is a type, not a value"),
    ("in.Nope", "no field \"Nope\" in main.Inner"),
    ("runtime.curg.nope", "no field \"nope\" in runtime.g"),
    ("counter.x", "counter.x: int has no fields"),
    // Pointers.
    ("*counter", "*counter: cannot dereference a int"),
    ("*gNilPtr", "*gNilPtr: nil pointer dereference"),
    ("gNilPtr.ID", "gNilPtr.ID: nil pointer dereference"),
    (
        "&(counter+1)",
        "&(counter + 1): cannot take the address of a value not in memory",
    ),
    // Indexing and maps.
    ("msgs[5]", "index 5 out of range [0:3]"),
    ("gLong[100]", "index 100 out of range [0:100]"),
    ("counter[0]", "counter[0]: cannot index a int"),
    ("gLong[\"a\"]", "gLong[\"a\"]: index must be an integer"),
    ("gLong[1.5]", "gLong[1.5]: index must be an integer"),
    ("m[\"zz\"]", "m[\"zz\"]: key not in map"),
    ("gSmall[\"zz\"]", "gSmall[\"zz\"]: key not in map"),
    ("gByAny[\"t\"]", "gByAny[\"t\"]: key not in map"),
    (
        "gManyKeys[-1]",
        "gManyKeys[-1]: key not among the first 65536 entries read",
    ),
    (
        "gByPoint[gArrKey]",
        "gByPoint[gArrKey]: key of type [2]int, the map's keys are main.Point",
    ),
    (
        "gByPoint[1]",
        "gByPoint[1]: cannot look up a key of type main.Point",
    ),
    (
        "gByComplex[1]",
        "gByComplex[1]: cannot look up a key of type complex128",
    ),
    // Slicing.
    ("msgs[1:9]", "msgs[1:9]: invalid slice indices 1:9 (cap 3)"),
    (
        "gLong[5:2]",
        "gLong[5:2]: invalid slice indices 5:2 (cap 100)",
    ),
    ("gStr[1.5:]", "gStr[1.5:]: index must be an integer"),
    (
        "gPoints[0:1]",
        "gPoints[0:1]: no slice type []main.Point in DWARF",
    ),
    // Type assertions.
    (
        "sh.(*main.Inner)",
        "sh.(*main.Inner): dynamic type is *main.Request",
    ),
    ("gAny.(string)", "gAny.(string): dynamic type is int"),
    (
        "gNilErr.(*errors.errorString)",
        "gNilErr.(*errors.errorString): dynamic type is nil",
    ),
    ("counter.(int)", "counter.(int): not an interface: int"),
    (
        "in.(main.Inner)",
        "in.(main.Inner): not an interface: main.Inner",
    ),
    (
        "gHidden3.(main.hiddenRatio)",
        "gHidden3.(main.hiddenRatio): main.hiddenRatio has no DWARF type: \
         print the interface to see its value",
    ),
    // Operators.
    (
        "counter + name",
        "counter + name: mismatched types int and string",
    ),
    (
        "gU16 + counter",
        "gU16 + counter: mismatched types uint16 and int",
    ),
    (
        "nil == counter",
        "nil == counter: mismatched types int and nil",
    ),
    ("-name", "-name: operator - not defined on string"),
    ("!counter", "!counter: operator ! not defined on int"),
    (
        "gStr - \"a\"",
        "gStr - \"a\": operator - not defined on string",
    ),
    ("gYes + gYes", "gYes + gYes: operator + not defined on bool"),
    ("gYes < gYes", "gYes < gYes: operator < not defined on bool"),
    ("gF32 & 1", "gF32 & 1: operator & not defined on float32"),
    (
        "1.5 % 2",
        "1.5 % 2: operator % not defined on untyped float",
    ),
    ("nil < nil", "nil < nil: operator < not defined on nil"),
    ("counter / 0", "counter / 0: integer divide by zero"),
    ("1 << 100 << 100", "1 << 100 << 100: constant overflow"),
    ("1 << -1", "1 << -1: invalid shift count -1"),
    (
        "gHuge == \"z\"",
        "gHuge == \"z\": value too long to compare (1048577 bytes)",
    ),
    // Calls and conversions.
    (
        "len(counter)",
        "len(counter): invalid argument for len: int",
    ),
    (
        "cap(gSmall)",
        "cap(gSmall): invalid argument for cap: map[string]int",
    ),
    ("len(counter, 1)", "len(counter, 1): len takes one argument"),
    (
        "counter(1)",
        "counter(1): cannot call counter: only len, cap and conversions are evaluated",
    ),
    (
        "main.Inner(1)",
        "main.Inner(1): cannot convert untyped int to main.Inner",
    ),
    ("int8(gStr)", "int8(gStr): cannot convert string to int8"),
    (
        "[]main.Nope(counter)",
        "[]main.Nope: no type named []main.Nope",
    ),
    // The parser.
    ("1 +", "unexpected end of expression"),
    ("(1", "expected )"),
    ("a b", "unexpected \"b\" at 2"),
    ("a[]", "unexpected \"]\" at 2"),
    ("1x", "bad number \"1x\""),
    ("a..b", "expected a field name after '.' in \"a\""),
    ("\"abc", "unterminated literal at 0"),
    ("'ab'", "bad rune literal at 0"),
    ("a $ b", "unexpected character '$' at 2"),
    ("\"\\q\"", "bad escape at 1"),
    ("x.()", "expected a type"),
];
