//! Where a source file the binary's line table names is on this machine:
//! `config substitute-path` rules, the path as recorded, the target's own
//! filesystem (`/proc/PID/root`, for a process in another mount
//! namespace), the matching Go release's GOROOT for the standard library
//! (also `-trimpath`'s `runtime/proc.go`), and the module cache for
//! `-trimpath`'s `module@version/file.go`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::repl::config;
use crate::repl::goroots::{self, GoRoot};

/// What a lookup needs of the session.
pub(in crate::repl) struct Context<'a> {
    /// The binary's Go release (`go1.27.3`), empty when unknown.
    pub go_version: &'a str,
    /// The live target's pid (none for a core).
    pub pid: Option<i32>,
}

/// Paths tried, first to last, at most this many (a path with many `/src/`
/// parts would otherwise multiply with the installations).
const MAX_CANDIDATES: usize = 64;

/// The path `file` is read from, or a message saying where goat looked and
/// which `config substitute-path` would fix it.
pub(in crate::repl) fn find(file: &str, cx: &Context) -> Result<PathBuf, String> {
    // Stage by stage, so the Go installations are looked for (which runs
    // `go env GOROOT` once) only when the cheap places have failed.
    let mut tried: Vec<PathBuf> = Vec::new();
    for stage in [Stage::AsNamed, Stage::GoRoot, Stage::ModCache] {
        for p in candidates(stage, file, cx) {
            if tried.len() >= MAX_CANDIDATES || tried.contains(&p) {
                continue;
            }
            // The first that exists at all: one that is not a regular
            // file is refused by the reader, which says so.
            if p.exists() {
                return Ok(p);
            }
            tried.push(p);
        }
    }
    Err(not_found(file, cx, &tried))
}

#[derive(Clone, Copy)]
enum Stage {
    /// substitute-path, the path as recorded, the target's root.
    AsNamed,
    /// The standard library in the binary's Go release.
    GoRoot,
    /// `-trimpath`'s `module@version/...` in the module cache.
    ModCache,
}

fn candidates(stage: Stage, file: &str, cx: &Context) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    match stage {
        Stage::AsNamed => {
            if let Some(s) = config::substitute(file) {
                out.push(PathBuf::from(s));
            }
            out.push(PathBuf::from(file));
            if let (Some(pid), true) = (cx.pid, file.starts_with('/')) {
                out.push(PathBuf::from(format!("/proc/{pid}/root{file}")));
            }
        }
        Stage::GoRoot => {
            let rels = stdlib_rel(file);
            if !rels.is_empty() {
                for root in matching_roots(cx.go_version) {
                    out.extend(rels.iter().map(|rel| root.dir.join("src").join(rel)));
                }
            }
        }
        Stage::ModCache => {
            if let Some((module, rest)) = module_rel(file) {
                for cache in mod_caches() {
                    out.push(cache.join(escape_module(module)).join(rest));
                }
            }
        }
    }
    out
}

/// The paths under a GOROOT's `src/` that `file` may be: after `$GOROOT/src/`
/// or any `/src/` of an absolute path, or a `-trimpath` relative path as is.
fn stdlib_rel(file: &str) -> Vec<&str> {
    if let Some(rel) = file.strip_prefix("$GOROOT/src/") {
        return vec![rel];
    }
    if !file.starts_with('/') {
        // A module path (`m@v/...`) is not the standard library's.
        return if file.contains('@') || file.is_empty() {
            Vec::new()
        } else {
            vec![file]
        };
    }
    file.match_indices("/src/")
        .map(|(i, _)| &file[i + 5..])
        .filter(|rel| !rel.is_empty())
        .take(8)
        .collect()
}

/// `(module@version, rest)` of a `-trimpath` module file, or of a path
/// into some module cache (`.../pkg/mod/m@v/f.go`).
fn module_rel(file: &str) -> Option<(&str, &str)> {
    let file = file
        .rfind("/pkg/mod/")
        .map_or(file, |i| &file[i + "/pkg/mod/".len()..]);
    if file.starts_with('/') {
        return None;
    }
    let at = file.find('@')?;
    let end = file[at..].find('/')? + at;
    Some((&file[..end], &file[end + 1..]))
}

/// The module cache's case escaping: `!` before each upper-case letter,
/// lowered (`github.com/Foo` → `github.com/!foo`).
fn escape_module(m: &str) -> String {
    let mut s = String::with_capacity(m.len() + 4);
    for c in m.chars() {
        if c.is_ascii_uppercase() {
            s.push('!');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// `$GOMODCACHE`, each `$GOPATH`'s `pkg/mod`, `~/go/pkg/mod`.
fn mod_caches() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(m) = std::env::var_os("GOMODCACHE").filter(|m| !m.is_empty()) {
        v.push(PathBuf::from(m));
    }
    if let Some(gp) = std::env::var_os("GOPATH") {
        v.extend(std::env::split_paths(&gp).map(|p| p.join("pkg/mod")));
    }
    if let Some(h) = std::env::var_os("HOME") {
        v.push(Path::new(&h).join("go/pkg/mod"));
    }
    v.dedup();
    v
}

/// The Go installations of the binary's release: those of exactly its
/// version first, then those of its go1.N series (patch releases rarely
/// move lines); never another series, whose lines would be wrong.
fn matching_roots(version: &str) -> Vec<&'static GoRoot> {
    static ALL: OnceLock<Vec<GoRoot>> = OnceLock::new();
    let all = ALL.get_or_init(goroots::discover);
    let series = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let want = version.split_whitespace().next().unwrap_or("");
    if want.is_empty() {
        return Vec::new();
    }
    let exact = all.iter().filter(|r| r.version == want);
    let near = all
        .iter()
        .filter(|r| r.version != want && series(&r.version) == series(want));
    exact.chain(near).collect()
}

fn not_found(file: &str, cx: &Context, tried: &[PathBuf]) -> String {
    // One line: a session's errors are one line each on stderr.
    let looked: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let mut msg = format!(
        "source file {file} is not on this machine (looked at {})",
        looked.join(", ")
    );
    let stdlib = !stdlib_rel(file).is_empty() && module_rel(file).is_none();
    if stdlib && !cx.go_version.is_empty() && matching_roots(cx.go_version).is_empty() {
        msg.push_str(&format!(
            "; no {} installation found (GOROOT, `go env GOROOT`, /usr/lib/go-1.N, \
             /usr/local/go, ~/sdk, the module cache's toolchains, .toolchains, $GOAT_GOROOTS)",
            cx.go_version
        ));
    }
    let dir = Path::new(file)
        .parent()
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    msg.push_str(&format!(
        "; 'config substitute-path {dir} DIR' reads it from DIR/{} instead",
        Path::new(file)
            .file_name()
            .map_or_else(|| file.into(), |n| n.to_string_lossy())
    ));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_library_and_module_paths() {
        assert_eq!(stdlib_rel("runtime/proc.go"), vec!["runtime/proc.go"]);
        assert_eq!(stdlib_rel("$GOROOT/src/os/file.go"), vec!["os/file.go"]);
        assert_eq!(
            stdlib_rel("/usr/local/go/src/runtime/proc.go"),
            vec!["runtime/proc.go"]
        );
        assert!(stdlib_rel("golang.org/x/net@v0.1.0/http2/frame.go").is_empty());
        assert_eq!(
            module_rel("github.com/Foo/bar@v1.2.3/x/y.go"),
            Some(("github.com/Foo/bar@v1.2.3", "x/y.go"))
        );
        assert_eq!(
            module_rel("/root/go/pkg/mod/a.b/c@v1.0.0/d.go"),
            Some(("a.b/c@v1.0.0", "d.go"))
        );
        assert_eq!(module_rel("/src/app/main.go"), None);
        assert_eq!(module_rel("m@v1"), None);
        assert_eq!(
            escape_module("github.com/Foo/Bar@v1"),
            "github.com/!foo/!bar@v1"
        );
    }

    #[test]
    fn a_missing_file_says_where_it_looked() {
        let cx = Context {
            go_version: "",
            pid: None,
        };
        let e = find("/nonexistent/build/app/main.go", &cx).unwrap_err();
        assert!(
            e.contains("(looked at /nonexistent/build/app/main.go"),
            "{e}"
        );
        assert!(
            e.contains("'config substitute-path /nonexistent/build/app DIR'"),
            "{e}"
        );
    }
}
