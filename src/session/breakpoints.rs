//! The session's breakpoints as the user knows them (Delve's logical
//! breakpoints): an id and an optional name, the addresses they stand at
//! (every inlined copy of a function), a condition, a hit-count
//! condition, commands run at each hit (`on`), whether it traces instead
//! of stopping, whether it is enabled, and the hits counted. The tracer
//! holds only the physical int3s, one per address, under ids of its own;
//! a disabled breakpoint has none.

use std::collections::BTreeMap;

use super::error::{Result, SessionError};

/// `unrecovered-panic` and `runtime-fatal-throw`: goat sets them at attach, with
/// Delve's ids.
pub const UNRECOVERED_PANIC: &str = "unrecovered-panic";
pub const FATAL_THROW: &str = "runtime-fatal-throw";

/// Most `on` commands one breakpoint keeps.
const MAX_ON_COMMANDS: usize = 64;

/// `cond -hitcount` / `-per-g-hitcount`: `count OP k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitCond {
    pub op: HitOp,
    pub k: u64,
    /// Against the hits of the goroutine that hit, not the total.
    pub per_g: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOp {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// `% k`: every k-th hit.
    Rem,
}

impl HitOp {
    pub fn parse(op: &str) -> Option<HitOp> {
        Some(match op {
            "==" => HitOp::Eq,
            "!=" => HitOp::Ne,
            ">" => HitOp::Gt,
            "<" => HitOp::Lt,
            ">=" => HitOp::Ge,
            "<=" => HitOp::Le,
            "%" => HitOp::Rem,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            HitOp::Eq => "==",
            HitOp::Ne => "!=",
            HitOp::Gt => ">",
            HitOp::Lt => "<",
            HitOp::Ge => ">=",
            HitOp::Le => "<=",
            HitOp::Rem => "%",
        }
    }
}

impl HitCond {
    /// Whether a hit whose count is `n` stops.
    pub(crate) fn holds(self, n: u64) -> bool {
        match self.op {
            HitOp::Eq => n == self.k,
            HitOp::Ne => n != self.k,
            HitOp::Gt => n > self.k,
            HitOp::Lt => n < self.k,
            HitOp::Ge => n >= self.k,
            HitOp::Le => n <= self.k,
            HitOp::Rem => self.k != 0 && n.is_multiple_of(self.k),
        }
    }

    pub(crate) fn text(self) -> String {
        let which = if self.per_g {
            "per-g-hitcount"
        } else {
            "hitcount"
        };
        format!("{which} {} {}", self.op.text(), self.k)
    }
}

/// One breakpoint as the user sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logical {
    pub id: i64,
    pub name: Option<String>,
    /// Run-time addresses, ascending.
    pub addrs: Vec<u64>,
    /// A traced function's RETs (run-time): a hit there prints what it
    /// returns (`>> goroutine(G): FUNC => (VALUES)`), as Delve's trace.
    pub returns: Vec<u64>,
    /// The tracer's ids of its int3s while enabled (addrs, then returns).
    pub phys: Vec<u32>,
    pub cond: Option<String>,
    pub hitcond: Option<HitCond>,
    /// A tracepoint: prints and goes on.
    pub trace: bool,
    /// Frames a tracepoint prints (`trace -stack N`).
    pub stack: usize,
    /// Commands run at each hit (`on`).
    pub on: Vec<String>,
    pub enabled: bool,
    pub hits: BTreeMap<u64, u64>,
    pub total: u64,
}

impl Logical {
    /// `hits goroutine(G):N total:T` as Delve shows them.
    pub(crate) fn hits_text(&self) -> String {
        let mut text = String::from("hits");
        for (g, n) in &self.hits {
            text.push_str(&format!(" goroutine({g}):{n}"));
        }
        text.push_str(&format!(" total:{}", self.total));
        text
    }

    /// `on` adds a command, at most [`MAX_ON_COMMANDS`].
    pub(crate) fn add_on(&mut self, cmd: String) -> Result<()> {
        if self.on.len() >= MAX_ON_COMMANDS {
            return Err(SessionError::TooManyCommands {
                id: self.id,
                max: MAX_ON_COMMANDS,
            });
        }
        self.on.push(cmd);
        Ok(())
    }
}

/// Every breakpoint of the session.
#[derive(Debug, Default)]
pub(crate) struct BpTable {
    pub list: Vec<Logical>,
    next_id: i64,
}

/// Whether `word` can name a breakpoint: not a number (ids are), not a
/// location (`main.f`, `file.go:3`, `*0x10`, `+2`), not a flag.
pub(crate) fn is_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl BpTable {
    /// The next user id (1, 2, ...; the runtime's breakpoints are < 0).
    pub(crate) fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The index of the breakpoint a user word names: an id or a name.
    pub(crate) fn find(&self, word: &str) -> Result<usize> {
        let found = match word.parse::<i64>() {
            Ok(id) => self.list.iter().position(|b| b.id == id),
            Err(_) => self
                .list
                .iter()
                .position(|b| b.name.as_deref() == Some(word)),
        };
        found.ok_or_else(|| SessionError::NoBreakpoint(word.to_string()))
    }

    /// Whether `name` is taken.
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.list.iter().any(|b| b.name.as_deref() == Some(name))
    }

    /// Keeps the list in Delve's order: by id.
    pub(crate) fn insert(&mut self, b: Logical) {
        let at = self.list.partition_point(|x| x.id < b.id);
        self.list.insert(at, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_conditions_compare_as_delve_does() {
        let c = |op, k| HitCond {
            op: HitOp::parse(op).unwrap(),
            k,
            per_g: false,
        };
        assert!(c("==", 3).holds(3) && !c("==", 3).holds(2));
        assert!(c(">", 3).holds(4) && !c(">", 3).holds(3));
        assert!(c("%", 2).holds(4) && !c("%", 2).holds(3));
        assert!(!c("%", 0).holds(0), "% 0 never holds, and never divides");
        assert!(HitOp::parse("=~").is_none());
    }

    #[test]
    fn names_are_not_ids_or_locations() {
        assert!(is_name("mybp") && is_name("req_seen") && is_name("x-1"));
        for w in ["1", "-1", "main.f", "main.go:3", "*0x10", "+2", "", "-a"] {
            assert!(!is_name(w), "{w}");
        }
    }

    #[test]
    fn find_takes_ids_and_names() {
        let mut t = BpTable::default();
        let id = t.next_id();
        t.insert(Logical {
            id,
            name: Some("mybp".into()),
            ..Default::default()
        });
        t.insert(Logical {
            id: -1,
            name: Some(UNRECOVERED_PANIC.into()),
            ..Default::default()
        });
        assert_eq!(t.list[0].id, -1);
        assert_eq!(t.find("1").unwrap(), 1);
        assert_eq!(t.find("mybp").unwrap(), 1);
        assert_eq!(t.find("unrecovered-panic").unwrap(), 0);
        assert!(t.find("2").is_err() && t.find("other").is_err());
    }
}
