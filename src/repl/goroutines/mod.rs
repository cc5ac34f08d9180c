//! goroutine, threads, thread (the `goroutines` list is in grlist.rs).
//!
//! The family: `goroutines` filtered and grouped, one screen at a time
//! (`grlist.rs`, `grpage.rs`), commands run on other goroutines
//! (`grexec.rs`), their labels (`labels.rs`).

pub(super) mod grexec;
pub(super) mod grlist;
pub(super) mod grpage;
pub(super) mod labels;

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::goruntime::{Frame, Goroutine};
use crate::repl::table;
use crate::session::Session;

/// `Goroutine 12 - chan receive - main.chanReceive (main.go:31) [locked] (thread 123)`
/// The "user" location, the default of `goroutines` as in Delve: the
/// innermost frame outside the runtime (`runtime.`, `internal/`), where
/// standard-library code inlined into the user's counts as the user's, as
/// it does for Delve, which looks only at physical functions: a goroutine
/// waiting in an inlined `sync.(*Mutex).Lock` is at `main.(*cache).get`,
/// not at the wrapper. Code of the user's own inlined elsewhere (a `go f()`
/// whose `f` is inlined into the `gowrap` closure) is still shown as `f`,
/// where Delve shows the closure. Without such a frame, the innermost.
pub(in crate::repl) fn user_frame(g: &Goroutine) -> Option<&Frame> {
    g.user_frame()
}

/// `goroutine [ID [COMMAND]]`
pub fn goroutine(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let Some((&id, rest)) = args.split_first() else {
        return describe(s, out);
    };
    let id: u64 = id
        .parse()
        .map_err(|_| anyhow!("goroutine: {id:?} is not a goroutine id"))?;
    if !rest.is_empty() {
        // Run one command on goroutine `id`, then come back.
        let saved = (s.current, s.frame);
        s.select(id)?;
        let result = table::execute(s, &rest.join(" "), out);
        crate::repl::stack::restore(s, saved);
        return result;
    }
    let from = s.current;
    s.select(id)?;
    match from {
        Some(f) if f != id => writeln!(out, "Switched from {f} to {id}")?,
        _ => writeln!(out, "Goroutine {id}")?,
    }
    Ok(())
}

fn describe(s: &Session, out: &mut dyn Write) -> Result<()> {
    let g = s.current_g()?;
    writeln!(out, "{}", crate::repl::grlist::user_summary(g))?;
    if let Some(f) = g.frames.first() {
        writeln!(out, "\tRuntime: {} ({}:{})", f.function, f.file, f.line)?;
    }
    if let Some(f) = user_frame(g) {
        writeln!(out, "\tUser: {} ({}:{})", f.function, f.file, f.line)?;
    }
    if let Some(c) = &g.created_by {
        write!(out, "\tCreated by: {} ({}:{})", c.function, c.file, c.line)?;
        if let Some(p) = c.goroutine.filter(|&p| p != 0) {
            write!(out, " in goroutine {p}")?;
        }
        writeln!(out)?;
    }
    match s.thread_of(g) {
        Some(t) => writeln!(out, "\tThread: {}", t.tid)?,
        None => writeln!(out, "\tThread: none (not running)")?,
    }
    if let Some(text) = crate::repl::labels::line(&crate::repl::labels::of(s, g)) {
        writeln!(out, "\t{text}")?;
    }
    if let Some(why) = &g.unreadable {
        writeln!(out, "\tStack unreadable: {why}")?;
    }
    Ok(())
}

/// `threads`
pub fn threads(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: threads");
    }
    let target = s.target()?;
    let current_tid = s.current_g().ok().and_then(|g| g.m).map(|m| m.tid);
    for t in target.threads() {
        let tid = i64::from(t.tid);
        let mark = if Some(tid) == current_tid { '*' } else { ' ' };
        let on = match goroutine_on(s.headers(), tid) {
            Some(g) => format!("goroutine {}", g.id),
            None => "no goroutine".to_string(),
        };
        writeln!(
            out,
            "{mark} Thread {} at {:#x} {} - {on}",
            t.tid,
            t.regs.rip,
            s.symbolize(t.regs.rip)
        )?;
    }
    Ok(())
}

/// The goroutine on thread `tid`, among `heads` (headers suffice).
fn goroutine_on(heads: &[Goroutine], tid: i64) -> Option<&Goroutine> {
    heads.iter().find(|g| g.m.is_some_and(|m| m.tid == tid))
}

/// `thread TID`
pub fn thread(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let [tid] = args else {
        bail!("usage: thread TID");
    };
    let tid: i32 = tid
        .parse()
        .map_err(|_| anyhow!("thread: {tid:?} is not a thread id"))?;
    let Some(t) = s.target()?.threads().iter().find(|t| t.tid == tid) else {
        bail!("no thread {tid}");
    };
    let rip = t.regs.rip;
    match goroutine_on(s.headers(), i64::from(tid)).map(|g| g.id) {
        Some(id) => {
            s.select(id)?;
            writeln!(out, "Switched to goroutine {id} (thread {tid})")?;
        }
        None => writeln!(
            out,
            "Thread {tid} runs no goroutine (it is at {rip:#x} {}); the current goroutine is unchanged",
            s.symbolize(rip)
        )?,
    }
    Ok(())
}

/// Words, where "..." or '...' makes one word of a status with spaces
/// (`-status "chan receive"`).
pub(in crate::repl) fn quoted_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let (word, after) = match quote {
            Some(q) => match rest[1..].find(q) {
                Some(end) => (&rest[1..1 + end], &rest[2 + end..]),
                None => (&rest[1..], ""),
            },
            None => rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len())),
        };
        words.push(word.to_string());
        rest = after.trim_start();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::quoted_words;

    #[test]
    fn quotes_group_a_status_with_spaces() {
        assert_eq!(
            quoted_words(r#"-status "chan receive" -t"#),
            ["-status", "chan receive", "-t"]
        );
        assert_eq!(
            quoted_words("-status 'select (no cases)'"),
            ["-status", "select (no cases)"]
        );
        assert_eq!(quoted_words("  -f main.hold  "), ["-f", "main.hold"]);
        assert_eq!(quoted_words(r#"-s "unterminated"#), ["-s", "unterminated"]);
        assert!(quoted_words("").is_empty());
    }
}
