//! Go binaries as others build and ship them: stripped, without build
//! information, built by a toolchain whose version string is not a release.
//! goat must find the version in the runtime itself, check the layout it
//! takes from its table on the live goroutines, and refuse with a distinct
//! exit code when no layout fits, never print a plausible wrong dump.

mod common;

use common::traceback::assert_same_dump;
use common::vendor::{release_of, vendor_copy};
use common::{assert_untouched, build_fixtures, fixture_path, run_goat, scratch_dir, Fixture};

const RELEASES: [&str; 4] = ["go1.19", "go1.21", "go1.24", "go1.27"];
/// goat's exit code for "no runtime layout fits" (README's table).
const UNKNOWN_LAYOUT: i32 = 15;

fn stripped_states(release: &str) -> std::path::PathBuf {
    fixture_path(&format!("{release}-stripped"), "states")
}

/// Stripped (`-s -w`: no symbols, no DWARF) and without build info: the
/// version comes from `runtime.buildVersion` through `runtime.schedinit`,
/// the layout from goat's table, checked on the goroutines; the dump is the
/// runtime's own, and `goat check` says so from the same loader.
#[test]
fn a_binary_without_build_info_reads_like_the_runtime() {
    build_fixtures();
    let dir = scratch_dir("vendor-nobuildinfo");
    for release in RELEASES {
        let exe = dir.join(format!("states-{release}"));
        vendor_copy(&stripped_states(release), &exe, true, &[]);
        let fx = Fixture::start_path(&exe, &["spin"]);
        let pid = fx.pid().to_string();

        let check = run_goat(&["check", &pid]);
        let said = String::from_utf8_lossy(&check.stdout).into_owned();
        assert!(check.status.success(), "{release}: goat check:\n{said}");
        let version = release_of(release);
        assert!(
            said.contains(&format!(
                "Go {version} (from runtime.buildVersion; no build info)"
            )),
            "{release}: {said}"
        );
        assert!(
            said.contains("goat can attach to pid") && said.contains("and read its goroutines"),
            "{release}: {said}"
        );

        let out = run_goat(&["stacks", &pid]);
        assert!(
            out.status.success(),
            "{release}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_untouched(fx.pid());
        let goat_text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_same_dump(release, &goat_text, &fx.sigquit_dump());
    }
}

/// A vendor's go1.27 build that calls itself `go1.25-3`: goat's go1.25
/// layout does not fit its goroutines (`gopc` moved in 1.26), a neighbour's
/// does; the dump is still the runtime's own.
#[test]
fn a_vendor_version_string_is_read_with_the_layout_that_fits() {
    build_fixtures();
    let dir = scratch_dir("vendor-version");
    let release = release_of("go1.27");
    let vendor = release.replacen("1.27.", "1.25-", 1);
    assert_eq!(vendor.len(), release.len());
    let exe = dir.join("states");
    vendor_copy(
        &stripped_states("go1.27"),
        &exe,
        false,
        &[(&release, &vendor)],
    );
    let fx = Fixture::start_path(&exe, &["spin"]);
    let pid = fx.pid().to_string();
    let check = run_goat(&["check", &pid]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{said}");
    assert!(
        said.contains(&format!("Go {vendor}")) && said.contains("go1.26's from goat's table"),
        "{said}"
    );
    let out = run_goat(&["stacks", &pid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_untouched(fx.pid());
    let goat_text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_same_dump(&vendor, &goat_text, &fx.sigquit_dump());
}

/// A go1.27 runtime that says it is go1.19: neither go1.19's layout nor a
/// neighbour's fits. `stacks`, `attach` and `check` refuse in one line; the
/// target is left untouched.
#[test]
fn no_layout_that_fits_is_an_unknown_runtime_layout() {
    build_fixtures();
    let dir = scratch_dir("vendor-unknown");
    let release = release_of("go1.27");
    let claimed = release.replacen("1.27.", "1.19-", 1);
    let exe = dir.join("states");
    vendor_copy(
        &stripped_states("go1.27"),
        &exe,
        true,
        &[(&release, &claimed)],
    );
    let fx = Fixture::start_path(&exe, &[]);
    let pid = fx.pid().to_string();
    for args in [vec!["stacks", &pid], vec!["attach", &pid]] {
        let out = run_goat(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(UNKNOWN_LAYOUT), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed something");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].contains(&format!("unknown runtime layout for {claimed}"))
                && lines[0].contains("go1.19, go1.21"),
            "{args:?}: {err}"
        );
        assert_untouched(fx.pid());
    }
    let check = run_goat(&["check", &pid]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(10), "{said}");
    assert!(
        said.contains("FAIL goroutines: unknown runtime layout"),
        "{said}"
    );
    assert_untouched(fx.pid());
}
