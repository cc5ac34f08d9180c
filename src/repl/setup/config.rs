//! `config`: the session's settings (Delve's names). Process-wide, as one
//! goat process runs one session; `list` and the stop banners read
//! `substitute-path` through [`substitute`].

use std::io::Write;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};

use crate::repl::config_file;
use crate::session::Session;
use crate::values::limits::Limits;

#[derive(Debug, Clone)]
pub struct Config {
    /// (from, to) prefixes, first match wins (Delve's order).
    pub substitute_path: Vec<(String, String)>,
    /// What `print`, `locals`, `args`... show of a value (Delve's
    /// max-string-len, max-array-values, max-variable-recurse).
    pub limits: Limits,
    pub source_list_line_count: usize,
}

static CONFIG: Mutex<Config> = Mutex::new(Config {
    substitute_path: Vec::new(),
    // goat's defaults (string 100 bytes, 64 values, 3 levels), which differ
    // from Delve's (64 bytes, 64 values, 1 level): `help config` says so.
    limits: Limits::DEFAULT,
    // Delve's default.
    source_list_line_count: 5,
});

/// A copy of the settings.
pub fn get() -> Config {
    CONFIG
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |c| c.clone())
}

fn update(f: impl FnOnce(&mut Config)) {
    let mut c = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut c);
}

/// `path` with the first matching substitute-path rule applied (a rule
/// matches a whole leading directory: /a does not rewrite /ab).
pub fn substitute(path: &str) -> Option<String> {
    get().substitute_path.iter().find_map(|(from, to)| {
        let from = from.trim_end_matches('/');
        let rest = path.strip_prefix(from)?;
        (rest.is_empty() || rest.starts_with('/') || from.is_empty())
            .then(|| format!("{}{rest}", to.trim_end_matches('/')))
    })
}

fn number(name: &str, v: &str) -> Result<usize> {
    v.parse()
        .map_err(|_| anyhow!("config {name}: {v:?} is not a number"))
}

/// `number`, refused above `max` (the bound goat keeps on hostile lengths)
/// rather than silently lowered, so the user knows what is in force.
fn limit(name: &str, v: &str, max: u64) -> Result<u64> {
    let n = number(name, v)? as u64;
    if n > max {
        bail!("config {name}: {n} is over goat's maximum {max}");
    }
    Ok(n)
}

/// `config -list | -save | substitute-path FROM TO | substitute-path
/// -clear [FROM] | max-string-len N | max-array-values N
/// | max-variable-recurse N | source-list-line-count N`
pub fn config(_s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    match args {
        ["-list"] | [] => {
            let c = get();
            writeln!(out, "max-string-len         {}", c.limits.string_len)?;
            writeln!(out, "max-array-values       {}", c.limits.array_values)?;
            writeln!(out, "max-variable-recurse   {}", c.limits.depth)?;
            writeln!(out, "source-list-line-count {}", c.source_list_line_count)?;
            if c.substitute_path.is_empty() {
                writeln!(out, "substitute-path        (none)")?;
            }
            for (from, to) in &c.substitute_path {
                writeln!(out, "substitute-path        {from} → {to}")?;
            }
            Ok(())
        }
        ["-save"] => {
            let path = config_file::save(&get())?;
            writeln!(out, "saved the settings to {}", path.display())?;
            Ok(())
        }
        _ => set(args),
    }
}

/// Applies one setting (`config`'s words after the name, as the config
/// file holds them too).
pub(in crate::repl) fn set(args: &[&str]) -> Result<()> {
    match args {
        ["substitute-path", "-clear"] => update(|c| c.substitute_path.clear()),
        ["substitute-path", "-clear", from] => {
            update(|c| c.substitute_path.retain(|(f, _)| f != from))
        }
        ["substitute-path", from, to] => update(|c| {
            // Delve: setting a rule for FROM again replaces it.
            c.substitute_path.retain(|(f, _)| f != from);
            c.substitute_path.push((from.to_string(), to.to_string()));
        }),
        ["substitute-path", from] => update(|c| c.substitute_path.retain(|(f, _)| f != from)),
        ["max-string-len", v] => {
            let n = limit("max-string-len", v, Limits::MAX.string_len)?;
            update(|c| c.limits.string_len = n)
        }
        ["max-array-values", v] => {
            let n = limit("max-array-values", v, Limits::MAX.array_values)?;
            update(|c| c.limits.array_values = n)
        }
        ["max-variable-recurse", v] => {
            let n = limit("max-variable-recurse", v, Limits::MAX.depth as u64)?;
            update(|c| c.limits.depth = n as usize)
        }
        ["source-list-line-count", v] => {
            let n = number("source-list-line-count", v)?.min(1000);
            update(|c| c.source_list_line_count = n)
        }
        [name, ..] => {
            bail!("config: unknown setting or wrong arguments {name:?} (see 'help config')")
        }
        [] => bail!("usage: config -list | config -save | config SETTING VALUE"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_path_rewrites_whole_leading_directories() {
        update(|c| {
            c.substitute_path = vec![("/build/src".into(), "/home/me/src/".into())];
        });
        assert_eq!(
            substitute("/build/src/app/main.go").as_deref(),
            Some("/home/me/src/app/main.go")
        );
        assert_eq!(substitute("/build/srcx/main.go"), None);
        assert_eq!(substitute("/other/main.go"), None);
        update(|c| c.substitute_path.clear());
    }
}
