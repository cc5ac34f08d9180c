//! The config file, `$XDG_CONFIG_HOME/goat/config` (else
//! `~/.config/goat/config`): what `config -save` wrote, read when a session
//! starts. One setting a line in `config`'s own words
//! (`max-string-len 200`, `substitute-path /build /home/me/src`), `#`
//! starting a comment, so a user can write it by hand too.
//!
//! Reading never blocks the session's start, when the target waits stopped:
//! only a regular file of bounded size is read (a FIFO there is refused,
//! opened non-blocking). A line goat cannot apply is one warning on
//! stderr; the other lines still apply.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::outfile::{self, TempCore};
use crate::repl::config::{self, Config};

/// A config file longer than this is not one goat wrote.
const MAX_BYTES: u64 = 1 << 20;

/// `$XDG_CONFIG_HOME/goat/config`, else `~/.config/goat/config`; `None`
/// without either variable.
pub(in crate::repl) fn path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("goat/config"))
}

/// The file's text for `c`: every setting, defaults included, so the file
/// says what a session starts with.
fn render(c: &Config) -> Result<String> {
    let mut s =
        String::from("# goat settings, written by `config -save`: one `config` setting a line\n");
    s += &format!("max-string-len {}\n", c.limits.string_len);
    s += &format!("max-array-values {}\n", c.limits.array_values);
    s += &format!("max-variable-recurse {}\n", c.limits.depth);
    s += &format!("source-list-line-count {}\n", c.source_list_line_count);
    for (from, to) in &c.substitute_path {
        // Words are split at white space when read back.
        if [from, to]
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            bail!("config -save: substitute-path {from:?} {to:?} has white space, which the file cannot hold");
        }
        s += &format!("substitute-path {from} {to}\n");
    }
    Ok(s)
}

/// Writes `c` to the config file (a new 0600 file renamed into place; a
/// symbolic link or anything but a regular file there is refused, as for
/// every file goat writes); returns where.
pub(in crate::repl) fn save(c: &Config) -> Result<PathBuf> {
    let path = path().ok_or_else(|| {
        anyhow!("config -save: neither XDG_CONFIG_HOME nor HOME is set, so there is no config file")
    })?;
    let text = render(c)?;
    if let Some(dir) = path.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("config -save: creating {}", dir.display()))?;
    }
    let fail = || format!("config -save: cannot write {}", path.display());
    outfile::check_dest(&path, true).with_context(fail)?;
    let mut tmp = TempCore::create(&path, true).with_context(fail)?;
    tmp.file.write_all(text.as_bytes()).with_context(fail)?;
    tmp.commit().with_context(fail)?;
    Ok(path)
}

/// Applies the config file, if there is one; returns a one-line warning
/// per line (or file) that could not be applied.
pub(in crate::repl) fn load() -> Vec<String> {
    let Some(path) = path() else {
        return Vec::new();
    };
    match read(&path) {
        Ok(None) => Vec::new(),
        Ok(Some(text)) => apply(&path, &text),
        Err(e) => vec![format!("goat: not reading {}: {e:#}", path.display())],
    }
}

/// The file's text; `None` when there is no file.
fn read(path: &Path) -> Result<Option<String>> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let m = f.metadata()?;
    if let Some(what) = outfile::not_regular(&m.file_type()) {
        bail!("it is {what}, not a regular file");
    }
    if m.len() > MAX_BYTES {
        bail!("it is {} bytes, more than a config file holds", m.len());
    }
    let mut bytes = Vec::new();
    Read::by_ref(&mut f)
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("it is not UTF-8 text"))
        .map(Some)
}

/// Applies each line of `text`; the warnings of those that failed.
fn apply(path: &Path, text: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if let Err(e) = config::set(&words) {
            warnings.push(format!("goat: {} line {}: {e:#}", path.display(), n + 1));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_settings_read_back_the_same() {
        let mut c = config::get();
        c.limits.string_len = 7;
        c.substitute_path = vec![("/build".into(), "/home/me".into())];
        let text = render(&c).unwrap();
        assert!(text.contains("max-string-len 7\n"), "{text}");
        assert!(text.contains("substitute-path /build /home/me\n"), "{text}");
        let spaced = Config {
            substitute_path: vec![("/a b".into(), "/c".into())],
            ..c
        };
        assert!(render(&spaced).is_err());
    }

    #[test]
    fn a_bad_line_warns_with_its_number_and_the_rest_applies() {
        let w = apply(
            Path::new("/x/config"),
            "# comment\n\nmax-string-len many\nsource-list-line-count 5 # trailing\nfrobnicate 1\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("goat: /x/config line 3: "), "{w:?}");
        assert!(w[1].starts_with("goat: /x/config line 5: "), "{w:?}");
        assert!(w.iter().all(|l| !l.contains('\n')));
    }
}
