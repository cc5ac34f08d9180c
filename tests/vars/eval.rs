//! Go expressions in `print` and `whatis` over the held `main.hold` frame,
//! compared with the values the fixture set (see tests/fixtures/vars).

use super::Held;

/// (expression, what print shows).
const TABLE: &[(&str, &str)] = &[
    ("len(name)", "6"),
    ("len(payload)", "17"),
    ("cap(msgs)", "3"),
    ("len(m)", "3"),
    ("len(big)", "20"),
    ("len(ch)", "1"),
    ("cap(ch)", "2"),
    ("m[\"b\"]", "2"),
    ("big[7]", "\"v7\""),
    ("big[3+4]", "\"v7\""),
    ("main.gSmall[\"c\"]", "3"),
    ("gByPoint[gPointKey]", "\"p34\""),
    ("gByArr[gArrKey]", "56"),
    ("gByAny[\"s\"]", "1"),
    ("gByAny[2]", "2"),
    ("gLarge[1000]", "2000"),
    ("msgs[1:3]", "[]string len: 2, cap: 2, [\"one\",\"two\"]"),
    ("name[1:4]", "\"oph\""),
    ("gArr[1:]", "[]int len: 2, cap: 2, [2,3]"),
    ("counter+1", "43"),
    ("counter*2 - 4", "80"),
    ("counter / 5", "8"),
    ("counter % 5", "2"),
    ("counter << 2", "168"),
    ("counter &^ 2", "40"),
    ("-counter", "-42"),
    ("counter == 42", "true"),
    ("counter > 50 || flag", "true"),
    ("!flag", "false"),
    ("ratio * 2", "5"),
    ("name + \"!\"", "\"gopher!\""),
    ("name == \"gopher\"", "true"),
    ("name < \"h\"", "true"),
    ("in.Count + 1", "6"),
    ("req.ID", "7"),
    ("sh.Path", "\"/api/v1\""),
    ("sh.Inner.Name", "\"deep\""),
    ("sh.(*main.Request).ID", "7"),
    ("err.s", "\"boom\""),
    ("req == nil", "false"),
    ("gNilPtr == nil", "true"),
    ("gNilMap == nil", "true"),
    ("0x10 + 0b1 + 0o7 + 1_000", "1024"),
    ("'a' + 1", "98"),
    ("1 + 2*3", "7"),
    ("(1 + 2) * 3", "9"),
    ("7 / 2.0", "3.5"),
    ("`raw`", "\"raw\""),
    ("int8(300)", "44"),
    ("uint8(counter)", "42"),
    ("float64(counter) / 4", "10.5"),
    (
        "*(*main.Inner)(uintptr(&in))",
        "main.Inner {Name: \"inner\", Count: 5}",
    ),
    ("&in == &in", "true"),
    ("%x counter", "2a"),
    ("%b 5", "101"),
    ("%o counter", "52"),
    ("%x payload[0:3]", "[]uint8 len: 3, cap: 17, [50,41,59]"),
];

/// (expression, the error print reports).
const ERRORS: &[(&str, &str)] = &[
    ("m[\"zz\"]", "m[\"zz\"]: key not in map"),
    (
        "gByPoint[gArrKey]",
        "gByPoint[gArrKey]: key of type [2]int, the map's keys are main.Point",
    ),
    ("gByAny[\"t\"]", "gByAny[\"t\"]: key not in map"),
    (
        "sh.(*main.Inner)",
        "sh.(*main.Inner): dynamic type is *main.Request",
    ),
    (
        "counter + name",
        "counter + name: mismatched types int and string",
    ),
    ("counter / 0", "counter / 0: integer divide by zero"),
    ("msgs[1:9]", "msgs[1:9]: invalid slice indices 1:9 (cap 3)"),
    (
        "len(counter)",
        "len(counter): invalid argument for len: int",
    ),
    ("gNilPtr.ID", "gNilPtr.ID: nil pointer dereference"),
    (
        "in.(main.Inner)",
        "in.(main.Inner): not an interface: main.Inner",
    ),
    ("-name", "-name: operator - not defined on string"),
];

pub fn check_expressions(h: &Held) {
    let f = &h.flavour;
    for (expr, want) in TABLE {
        assert_eq!(h.print(expr).as_deref(), Ok(*want), "{f}: p {expr}");
    }
    for (expr, want) in ERRORS {
        assert_eq!(h.print(expr), Err(want.to_string()), "{f}: p {expr}");
    }
    let whatis = |e: &str| h.run(&format!("whatis {e}")).0.trim().to_string();
    assert_eq!(whatis("req"), "*main.Request", "{f}");
    assert_eq!(whatis("main.Inner"), "main.Inner", "{f}");
    assert_eq!(whatis("len(msgs)"), "int", "{f}");
    assert_eq!(
        whatis("sh"),
        "main.Shape\nConcrete type: *main.Request",
        "{f}"
    );
}
