//! Issue 33, item 5: `p 1+1+…+1` with 20,000 terms and `p
//! main.head.Next.Next…` 20,000 deep overflowed goat's stack (exit 134).
//! Both are refused with a clear error on a live `vars` fixture, the
//! session goes on, the longest chain accepted is evaluated, and the
//! target is left running and untraced.

mod common;

use common::{assert_untouched, attach_with_stdin, build_fixtures, error_lines, text, Fixture};

/// Tokens in the longest expression goat takes (`MAX_TOKENS` in
/// src/values/eval/parse.rs).
const MAX_TOKENS: usize = 1024;

#[test]
fn expressions_past_the_bound_are_refused_not_a_stack_overflow() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "vars", &[]);
        let sum = vec!["1"; 20_000].join("+");
        let deep = "main.head".to_string() + &".Next".repeat(20_000) + ".Val";
        // `head` then `.Next` and `.Val`, two tokens each, within the bound.
        let links = (MAX_TOKENS - 5) / 2;
        let longest = "main.head".to_string() + &".Next".repeat(links) + ".Val";
        let script = format!("p {sum}\np {deep}\np 1+1+1\np {longest}\n");
        let out = attach_with_stdin(fx.pid(), &[], &script);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{flavour}: {stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 2, "{flavour}: {stderr}");
        assert!(
            errors[0].starts_with("error: expression too long: 39999 tokens, at most 1024"),
            "{flavour}: {}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("error: expression too long: 40005 tokens, at most 1024"),
            "{flavour}: {}",
            errors[1]
        );
        let values: Vec<&str> = stdout.lines().collect();
        assert_eq!(values, ["3", &links.to_string()], "{flavour}: {stderr}");
        assert_untouched(fx.pid());
    }
}
