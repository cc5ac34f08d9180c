//! Goroutine labels (pprof's) as the session shows and filters them:
//! `goroutines -l`, `-with|-without label KEY[=VALUE]`, `-group label KEY`
//! and `goroutine`'s description, in Delve's forms.

use std::collections::HashMap;

use crate::goruntime::Goroutine;
use crate::session::Session;

/// A goroutine's labels sorted by key, or why they could not be read.
pub(in crate::repl) type Labels = Result<Vec<(String, String)>, String>;

/// Labels shown on one line at most (Delve's bound), then `... (N more)`.
const SHOWN: usize = 5;

/// The labels of `g`, read from the stopped target.
pub(in crate::repl) fn of(s: &Session, g: &Goroutine) -> Labels {
    let t = s.target().map_err(|e| e.to_string())?;
    s.prog.labels(t, g.gp).map_err(|e| e.to_string())
}

/// The labels of each goroutine of `gs`, by id.
pub(in crate::repl) fn of_all<'g>(
    s: &Session,
    gs: impl Iterator<Item = &'g Goroutine>,
) -> HashMap<u64, Labels> {
    gs.map(|g| (g.id, of(s, g))).collect()
}

/// `Labels: "job":"resize", "worker":"7"` (without the indent), or `None`
/// when there are none.
pub(in crate::repl) fn line(labels: &Labels) -> Option<String> {
    let l = match labels {
        Err(why) => return Some(format!("Labels: (unreadable: {why})")),
        Ok(l) if l.is_empty() => return None,
        Ok(l) => l,
    };
    let mut s = String::from("Labels: ");
    let shown: Vec<String> = l
        .iter()
        .take(SHOWN)
        .map(|(k, v)| format!("{k:?}:{v:?}"))
        .collect();
    s += &shown.join(", ");
    if l.len() > SHOWN {
        s += &format!("... ({} more)", l.len() - SHOWN);
    }
    Some(s)
}

/// Whether `labels` hold `KEY=VALUE`, or just `KEY` when `arg` has no `=`.
/// Unreadable labels match nothing.
pub(in crate::repl) fn matches(labels: &Labels, arg: &str) -> bool {
    let Ok(l) = labels else { return false };
    match arg.split_once('=') {
        Some((k, v)) => l.iter().any(|(lk, lv)| lk == k && lv == v),
        None => l.iter().any(|(lk, _)| lk == arg),
    }
}

/// The group `-group label KEY` puts a goroutine in: `KEY=VALUE` (the
/// value empty when it has no such label, as Delve's).
pub(in crate::repl) fn group_key(labels: &Labels, key: &str) -> String {
    let value = match labels {
        Ok(l) => l
            .iter()
            .find(|(k, _)| k == key)
            .map_or(String::new(), |(_, v)| v.clone()),
        Err(_) => "(unreadable)".into(),
    };
    format!("{key}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Ok(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn line_quotes_and_bounds_as_delve() {
        assert_eq!(
            line(&l(&[("job", "resize"), ("worker", "7")])).as_deref(),
            Some(r#"Labels: "job":"resize", "worker":"7""#)
        );
        assert_eq!(line(&l(&[])), None);
        let many = l(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", "5"),
            ("f", "6"),
        ]);
        assert!(line(&many).unwrap().ends_with(r#""e":"5"... (1 more)"#));
    }

    #[test]
    fn key_or_key_value_filters() {
        let w = l(&[("worker", "7")]);
        assert!(matches(&w, "worker"));
        assert!(matches(&w, "worker=7"));
        assert!(!matches(&w, "worker=8"));
        assert!(!matches(&w, "job"));
        assert!(!matches(&Err("x".into()), "worker"));
        assert_eq!(group_key(&w, "worker"), "worker=7");
        assert_eq!(group_key(&w, "job"), "job=");
    }
}
