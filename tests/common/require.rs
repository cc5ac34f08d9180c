//! The one rule for what a test needs but does not build itself (a fixture
//! binary, a Go toolchain, gdb, tmux, root...): when it is missing the test
//! fails, naming the command that provides it, so that a green run means
//! every test saw its input. Only an explicit `GOAT_SKIP_<WHAT>=1` lets a
//! test go on without it, and then it says that it skipped.
//!
//! Shared by the integration tests (`tests/common/mod.rs`) and the unit
//! tests (`src/lib.rs` includes this file under `cfg(test)`).

use std::path::Path;

/// The variable that lets tests skip without `what`: `GOAT_SKIP_GDB` for
/// "gdb", `GOAT_SKIP_KERNEL_CORE` for "kernel core".
pub fn skip_var(what: &str) -> String {
    let key: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("GOAT_SKIP_{key}")
}

/// `true` when `present`; else panics with `provide` (what to run to get
/// `what`), unless `GOAT_SKIP_<WHAT>=1`: then prints the skip and returns
/// `false`, and the caller returns.
#[must_use]
pub fn require(what: &str, present: bool, provide: &str) -> bool {
    if present {
        return true;
    }
    let var = skip_var(what);
    if std::env::var(&var).as_deref() == Ok("1") {
        eprintln!("SKIPPED ({var}=1): {what} is missing; {provide}");
        return false;
    }
    panic!("missing {what}: {provide} (or set {var}=1 to skip the tests that need it)");
}

/// A program on PATH (`install`: the command that installs it).
#[must_use]
pub fn require_tool(tool: &str, install: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    require(tool, found, &format!("install it ({install})"))
}

/// A built Go fixture (tests/fixtures/bin/...); `GOAT_SKIP_FIXTURES=1`
/// skips the tests whose fixture is missing.
#[must_use]
pub fn require_fixture(path: &Path) -> bool {
    require(
        "fixtures",
        path.is_file(),
        &format!(
            "{} is not built: run scripts/build-fixtures (scripts/setup-go installs the Go toolchains it needs)",
            path.display()
        ),
    )
}

/// A Go toolchain of .toolchains/ (the tests' oracle for `go tool nm`...).
#[must_use]
pub fn require_toolchain(go: &Path) -> bool {
    require(
        "go toolchain",
        go.is_file(),
        &format!("{} is missing: run scripts/setup-go", go.display()),
    )
}
