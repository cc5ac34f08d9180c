//! `goat debug` on a core written from the `vars` fixture.

use std::io::Write;
use std::process::Stdio;

use super::{text, Held, CH, ERR, MSGS};
use crate::common::{self, goat};

/// The same commands on a core file written from the fixture (`goat debug`).
#[test]
fn variables_of_a_core_file() {
    let h = Held::start("go1.27-noopt");
    let core = std::env::temp_dir().join(format!("goat-vars-{}.core", std::process::id()));
    let _ = std::fs::remove_file(&core);
    let pid = h.fx.pid().to_string();
    let out = common::run_goat(&["core", &pid, "-o", core.to_str().unwrap()]);
    assert!(out.status.success(), "goat core: {}", text(&out.stderr));
    let exe = common::fixture_path("go1.27-noopt", "vars");
    let mut child = goat()
        .args([
            "debug",
            core.to_str().unwrap(),
            "--exe",
            exe.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("goat debug");
    let script = format!("{}locals\np req.Inner\np counter\n", h.select);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&core);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for want in [
        format!("err = {ERR}"),
        format!("msgs = {MSGS}"),
        format!("ch = {CH}"),
        r#"main.Inner {Name: "deep", Count: 3}"#.to_string(),
        "\n42".to_string(),
    ] {
        assert!(stdout.contains(&want), "{want} in:\n{stdout}");
    }
}
