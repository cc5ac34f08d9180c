//! `set` in `goat attach` on the `watched` fixture, for every release,
//! optimized and `-N -l`: the new values change what the program prints
//! after the session, and what cannot be written safely is refused with
//! one line while the session and the program go on.

mod common;

use common::debugregs::assert_no_debug_registers;
use common::watched::{Watched, FLAVOURS};
use common::{assert_untouched, attach_with_stdin, text};

#[test]
fn set_changes_what_the_program_prints() {
    for flavour in FLAVOURS {
        let Some(mut w) = Watched::start(flavour) else {
            continue;
        };
        let script = [
            "set main.limit = 42",
            "set main.small = -7",
            "set main.flag = true",
            "set main.ratio = 2.5",
            "set main.name = main.other",
            "set main.spare = main.heap",
            "print main.limit",
            "print main.spare == main.heap",
            "quit",
        ];
        let out = attach_with_stdin(w.pid(), &[], &format!("{}\n", script.join("\n")));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let ctx = format!("{flavour}:\n{stdout}\n{stderr}");
        assert!(!stderr.contains("error:"), "{ctx}");
        assert_eq!(stdout.lines().collect::<Vec<_>>(), ["42", "true"], "{ctx}");
        let from = w.line_count();
        let line = w.wait_line(from, |l| l.starts_with("limit=42 "));
        let line = line.unwrap_or_else(|| panic!("the program never printed limit=42: {ctx}"));
        assert!(
            line.starts_with("limit=42 small=-7 flag=true ratio=2.5 name=omega spare="),
            "{line}: {ctx}"
        );
        // spare now points at heap, which the writer keeps counting up.
        let spare: i64 = line["limit=42 small=-7 flag=true ratio=2.5 name=omega spare=".len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(spare >= 0, "spare still points at its own box (-9): {line}");
        assert_untouched(w.pid());
        assert_no_debug_registers(w.pid());
        assert!(w.alive(), "{ctx}");
    }
}

#[test]
fn set_refuses_what_it_cannot_write_safely() {
    for flavour in ["go1.19-noopt", "go1.27-exe"] {
        let Some(mut w) = Watched::start(flavour) else {
            continue;
        };
        let script = [
            "set main.small = 300",
            "set main.limit = 1.5",
            "set main.iface = 1",
            "set main.table = main.table",
            "set main.name = \"x\"",
            "set main.spare = main.limit",
            "set main.flag = 1",
            "set 1 = 2",
            "set main.limit == 3",
            "print main.limit",
            "quit",
        ];
        let out = attach_with_stdin(w.pid(), &[], &format!("{}\n", script.join("\n")));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let ctx = format!("{flavour}:\n{stdout}\n{stderr}");
        let errors = common::error_lines(&stderr);
        let expected = [
            "300 does not fit in main.small (int8)",
            "cannot assign 1.5 to main.limit (int64)",
            "main.iface is a interface {}",
            "main.table is a map[string]int",
            "cannot assign a string literal to main.name (string)",
            "cannot assign a value of type int64 to main.spare (*main.box)",
            "cannot assign 1 to main.flag (bool)",
            "1 is a constant, not a variable",
            "usage: set EXPR = VALUE",
        ];
        assert_eq!(errors.len(), expected.len(), "{ctx}");
        for (e, want) in errors.iter().zip(expected) {
            assert!(e.contains(want), "{e:?} should say {want:?}: {ctx}");
        }
        assert_eq!(stdout.trim(), "3", "nothing was written: {ctx}");
        assert_untouched(w.pid());
        assert!(w.alive(), "{ctx}");
    }
}
