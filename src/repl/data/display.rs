//! `display`: expressions printed at every stop, as Delve's.

use std::io::Write;

use anyhow::{anyhow, bail, Result};

use crate::session::Session;
use crate::values::eval::Verb;

/// Most expressions `display -a` keeps.
const MAX_DISPLAYS: usize = 256;

/// `display -a [%VERB] EXPR | -d N` (no argument: show them all now).
pub fn display(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    match args {
        [] => write_displays(s, out),
        ["-a", rest @ ..] if !rest.is_empty() => {
            let text = rest.join(" ");
            let expr = match rest.first().and_then(|a| Verb::parse(a)) {
                Some(_) => rest[1..].join(" "),
                None => text.clone(),
            };
            crate::values::eval::parse(&expr).map_err(|e| anyhow!("display: {expr:?}: {e}"))?;
            if s.displays.iter().flatten().count() >= MAX_DISPLAYS {
                bail!("display: {MAX_DISPLAYS} expressions are displayed already");
            }
            s.displays.push(Some(text));
            write_one(s, s.displays.len() - 1, out)
        }
        ["-d", n] => {
            let slot = n
                .parse::<usize>()
                .ok()
                .and_then(|i| s.displays.get_mut(i))
                .filter(|d| d.is_some())
                .ok_or_else(|| anyhow!("display: no expression {n}"))?;
            *slot = None;
            Ok(())
        }
        _ => bail!("usage: display -a [%VERB] EXPR | display -d N | display"),
    }
}

/// `N: EXPR = VALUE` for every displayed expression (an error in one is
/// shown in its place).
pub(in crate::repl) fn write_displays(s: &Session, out: &mut dyn Write) -> Result<()> {
    for i in 0..s.displays.len() {
        write_one(s, i, out)?;
    }
    Ok(())
}

fn write_one(s: &Session, i: usize, out: &mut dyn Write) -> Result<()> {
    let Some(Some(text)) = s.displays.get(i) else {
        return Ok(());
    };
    let (expr, shown) = show_expr(s, text);
    match shown {
        Ok(v) => writeln!(out, "{i}: {expr} = {v}")?,
        Err(e) => writeln!(out, "{i}: {expr} = error {e:#}")?,
    }
    Ok(())
}

/// `[%VERB] EXPR` evaluated in the selected frame: the expression without
/// the verb, and its value as print shows it.
pub(in crate::repl) fn show_expr(s: &Session, text: &str) -> (String, Result<String>) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (verb, expr) = match words.first().and_then(|a| Verb::parse(a)) {
        Some(v) => (Some(v), words[1..].join(" ")),
        None => (None, text.to_string()),
    };
    let shown = s.scope().map_err(anyhow::Error::from).and_then(|sc| {
        let v = sc.eval_text(&expr).map_err(|e| anyhow!(e))?;
        sc.show(&v, verb).map_err(|e| anyhow!(e))
    });
    (expr, shown)
}
