//! The regular expressions `funcs`, `types`, `sources`, `vars`, `args`,
//! `locals` and `list /RE/` filter with: the `regex` crate, whose syntax is
//! RE2's, that of Go's `regexp` (what Delve's users type), and whose
//! matching takes linear time, so no pattern can hang the session.
//! Unanchored, like Go's `regexp.MatchString`.

use regex::{Regex, RegexBuilder};

/// Most bytes a compiled pattern may take: a pattern typed at a prompt
/// never needs more, and `x{1000}{1000}` would otherwise take gigabytes.
const SIZE_LIMIT: usize = 1 << 20;

/// A pattern the user typed that is not a regular expression.
#[derive(Debug, thiserror::Error)]
#[error("bad regular expression {text:?}: {why}")]
pub struct BadPattern {
    text: String,
    why: String,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    re: Regex,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, BadPattern> {
        let re = RegexBuilder::new(text)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| BadPattern {
                text: text.to_string(),
                why: last_line(&e.to_string()),
            })?;
        Ok(Pattern { re })
    }

    /// Whether the pattern matches somewhere in `s`.
    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// The crate's syntax errors draw the pattern over several lines, with the
/// reason last (`error: unclosed group`): one line for the prompt.
fn last_line(msg: &str) -> String {
    let line = msg.lines().last().unwrap_or(msg).trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().matches(s)
    }

    #[test]
    fn matches_like_go_regexp_for_the_usual_filters() {
        assert!(m("main", "main.main"));
        assert!(m("^main\\.", "main.tick"));
        assert!(!m("^main\\.", "runtime.main"));
        assert!(m("tick$", "main.tick"));
        assert!(!m("tick$", "main.ticker"));
        assert!(m("ma.n", "xmaxn"));
        assert!(m("^a*b$", "aaab") && m("^a*b$", "b") && !m("^a+b$", "b"));
        assert!(m("colou?r", "color") && m("colou?r", "colour"));
        assert!(m("[0-9]+", "go1") && !m("^[^a-z]+$", "abc"));
        assert!(m("chanSend|chanReceive", "main.chanReceive"));
        assert!(m("", "anything"));
        // RE2's groups and counted repeats, as Go's regexp has them.
        assert!(m("^main\\.(chan|lock)[A-Z]", "main.lockRead"));
        assert!(m("^x{2,3}$", "xxx") && !m("^x{2,3}$", "xxxx"));
        assert!(Pattern::new("*a").is_err() && Pattern::new("[a").is_err());
        assert!(Pattern::new("a\\").is_err());
        let err = Pattern::new("(").unwrap_err().to_string();
        assert_eq!(err, "bad regular expression \"(\": unclosed group");
    }

    #[test]
    fn pathological_patterns_neither_hang_nor_exhaust_memory() {
        let long = "a".repeat(10_000);
        assert!(!m("a*a*a*a*a*a*a*a*c", &long));
        assert!(!m("(a+)+$b", &long));
        assert!(Pattern::new("x{1000}{1000}").is_err());
        assert!(Pattern::new(&"x*".repeat(200_000)).is_err());
    }
}
