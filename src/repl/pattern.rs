//! The small regular expressions `funcs`, `types`, `sources` and `vars`
//! filter with (goat has no regex crate): literals, `.`, `[...]`/`[^...]`
//! classes with ranges, `\` escapes, `*` `+` `?` after one item, `^`, `$`
//! and `|` between whole alternatives. Unanchored, like Go's
//! `regexp.MatchString`. Matching is backtracking with a step budget, so a
//! pathological pattern gives up rather than hangs.

use anyhow::{bail, Result};

/// Most backtracking steps one `matches` call takes.
const BUDGET: usize = 1 << 20;
/// Most items in one alternative: matching recurses once per item, and
/// `a*` items match nothing, so a pattern of a million of them would
/// exhaust the stack before the step budget.
const MAX_ITEMS: usize = 1024;

#[derive(Debug, Clone)]
enum Atom {
    Any,
    Char(char),
    /// (negated, ranges)
    Class(bool, Vec<(char, char)>),
}

impl Atom {
    fn hit(&self, c: char) -> bool {
        match self {
            Atom::Any => true,
            Atom::Char(x) => *x == c,
            Atom::Class(neg, ranges) => ranges.iter().any(|&(a, b)| a <= c && c <= b) != *neg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rep {
    One,
    Star,
    Plus,
    Opt,
}

#[derive(Debug, Clone)]
struct Alt {
    start: bool,
    end: bool,
    items: Vec<(Atom, Rep)>,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    alts: Vec<Alt>,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern> {
        let alts = split_alts(text)
            .iter()
            .map(|a| parse_alt(a))
            .collect::<Result<Vec<Alt>>>()?;
        if let Some(long) = alts.iter().find(|a| a.items.len() > MAX_ITEMS) {
            bail!(
                "pattern too long: {} items, at most {MAX_ITEMS}",
                long.items.len()
            );
        }
        Ok(Pattern { alts })
    }

    /// Whether the pattern matches somewhere in `s`.
    pub fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let mut budget = BUDGET;
        self.alts.iter().any(|a| {
            let starts = if a.start { 0..1 } else { 0..chars.len() + 1 };
            starts
                .into_iter()
                .any(|i| match_here(&a.items, a.end, &chars[i..], &mut budget))
        })
    }
}

/// `|` outside a class and not escaped.
fn split_alts(text: &str) -> Vec<String> {
    let (mut alts, mut cur, mut in_class, mut esc) = (Vec::new(), String::new(), false, false);
    for c in text.chars() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '|' if !in_class => {
                alts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    alts.push(cur);
    alts
}

fn parse_alt(text: &str) -> Result<Alt> {
    let mut chars = text.chars().peekable();
    let mut alt = Alt {
        start: false,
        end: false,
        items: Vec::new(),
    };
    if chars.peek() == Some(&'^') {
        alt.start = true;
        chars.next();
    }
    while let Some(c) = chars.next() {
        let atom = match c {
            '$' if chars.peek().is_none() => {
                alt.end = true;
                break;
            }
            '.' => Atom::Any,
            '\\' => match chars.next() {
                Some(e) => Atom::Char(e),
                None => bail!("pattern {text:?} ends in a backslash"),
            },
            '[' => {
                let neg = chars.peek() == Some(&'^');
                if neg {
                    chars.next();
                }
                let mut ranges = Vec::new();
                loop {
                    let Some(a) = chars.next() else {
                        bail!("pattern {text:?}: [ without ]");
                    };
                    if a == ']' && !ranges.is_empty() {
                        break;
                    }
                    let a = if a == '\\' {
                        chars.next().unwrap_or('\\')
                    } else {
                        a
                    };
                    let mut look = chars.clone();
                    if look.next() == Some('-') && look.peek().is_some_and(|&b| b != ']') {
                        chars.next();
                        let b = chars.next().unwrap_or(a);
                        ranges.push((a, b));
                    } else {
                        ranges.push((a, a));
                    }
                }
                Atom::Class(neg, ranges)
            }
            '*' | '+' | '?' => bail!("pattern {text:?}: {c} follows nothing"),
            '(' | ')' | '{' | '}' => {
                bail!("pattern {text:?}: groups and counted repeats are not supported")
            }
            c => Atom::Char(c),
        };
        let rep = match chars.peek() {
            Some('*') => Rep::Star,
            Some('+') => Rep::Plus,
            Some('?') => Rep::Opt,
            _ => Rep::One,
        };
        if rep != Rep::One {
            chars.next();
        }
        alt.items.push((atom, rep));
    }
    Ok(alt)
}

fn match_here(items: &[(Atom, Rep)], end: bool, s: &[char], budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let Some(((atom, rep), rest)) = items.split_first() else {
        return !end || s.is_empty();
    };
    let (min, max) = match rep {
        Rep::One => (1, 1),
        Rep::Opt => (0, 1),
        Rep::Star => (0, usize::MAX),
        Rep::Plus => (1, usize::MAX),
    };
    let run = s.iter().take(max).take_while(|&&c| atom.hit(c)).count();
    // Longest first, as a greedy matcher does.
    (min..=run)
        .rev()
        .any(|n| match_here(rest, end, &s[n..], budget))
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
        assert!(Pattern::new("(a)").is_err() && Pattern::new("*a").is_err());
        assert!(Pattern::new("[a").is_err() && Pattern::new("a\\").is_err());
        // Pathological: gives up within the budget rather than hanging.
        let long = "a".repeat(200);
        assert!(!m("a*a*a*a*a*a*a*a*c", &long));
        // A pattern whose items match nothing would recurse once per item.
        let err = Pattern::new(&"x*".repeat(200_000)).unwrap_err().to_string();
        assert_eq!(err, "pattern too long: 200000 items, at most 1024");
        assert!(Pattern::new(&"x*".repeat(1024)).is_ok_and(|p| p.matches("main")));
    }
}
