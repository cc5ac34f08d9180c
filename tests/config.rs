//! `config -save` and the config file every session reads at its start:
//! `$XDG_CONFIG_HOME/goat/config`, else `~/.config/goat/config`. Sessions
//! run with a HOME and XDG_CONFIG_HOME of their own; each must leave the
//! target as it found it.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::{assert_untouched, build_fixtures, goat, text, Fixture};

/// (stdout, stderr) of `goat attach PID` reading `script`, with HOME set
/// to `home` and XDG_CONFIG_HOME to `xdg` (unset when `None`).
fn session(pid: i32, home: &Path, xdg: Option<&Path>, script: &str) -> (String, String) {
    let mut cmd = goat();
    cmd.args(["attach", &pid.to_string()])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(x) = xdg {
        cmd.env("XDG_CONFIG_HOME", x);
    }
    let mut child = cmd.spawn().expect("run goat");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    let out = child.wait_with_output().expect("wait for goat");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    (stdout, stderr)
}

#[test]
fn saved_settings_are_read_by_the_next_session() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let dir = common::scratch_dir("config-save");
    let (home, xdg) = (dir.join("home"), dir.join("xdg"));
    std::fs::create_dir_all(&home).unwrap();
    let file = xdg.join("goat/config");

    let (stdout, stderr) = session(
        pid,
        &home,
        Some(&xdg),
        "config max-string-len 7\n\
         config substitute-path /build /src\n\
         config -save\n",
    );
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert!(
        stdout.contains(&format!("saved the settings to {}", file.display())),
        "{ctx}"
    );
    let saved = std::fs::read_to_string(&file).expect("the config file");
    assert!(saved.contains("max-string-len 7\n"), "{saved}");
    assert!(saved.contains("substitute-path /build /src\n"), "{saved}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{saved}");

    // The next session starts with them.
    let (stdout, stderr) = session(pid, &home, Some(&xdg), "config -list\n");
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert!(stdout.contains("max-string-len         7\n"), "{ctx}");
    assert!(
        stdout.contains("substitute-path        /build → /src\n"),
        "{ctx}"
    );
    let path = file.display().to_string();
    assert!(!stderr.contains(&path), "no warning expected: {ctx}");

    // Without XDG_CONFIG_HOME the file is ~/.config/goat/config: not the
    // one above, so the defaults hold, and -save writes there.
    let (stdout, stderr) = session(pid, &home, None, "config -list\nconfig -save\n");
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert!(stdout.contains("max-string-len         100\n"), "{ctx}");
    assert!(home.join(".config/goat/config").is_file(), "{ctx}");

    // A line that cannot apply is one warning naming it; the rest applies.
    std::fs::write(
        &file,
        "max-string-len lots\n# a comment\nmax-array-values 3\n",
    )
    .unwrap();
    let (stdout, stderr) = session(pid, &home, Some(&xdg), "config -list\n");
    let ctx = format!("{stdout}\n---\n{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("config line"))
        .collect();
    assert_eq!(warnings.len(), 1, "{ctx}");
    assert!(
        warnings[0].starts_with(&format!("goat: {} line 1: ", file.display())),
        "{ctx}"
    );
    assert!(stdout.contains("max-array-values       3\n"), "{ctx}");

    // A symbolic link there is neither followed nor replaced by -save.
    std::fs::remove_file(&file).unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::write(&elsewhere, "max-string-len 9\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let (stdout, stderr) = session(pid, &home, Some(&xdg), "config -save\nconfig -list\n");
    let ctx = format!("{stdout}\n---\n{stderr}");
    let errors = common::error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{ctx}");
    assert!(errors[0].contains("config -save: cannot write"), "{ctx}");
    assert!(
        stdout.contains("max-string-len"),
        "the session went on: {ctx}"
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        "max-string-len 9\n"
    );
    assert!(std::fs::symlink_metadata(&file)
        .unwrap()
        .file_type()
        .is_symlink());
    let _ = std::fs::remove_dir_all(&dir);
}
