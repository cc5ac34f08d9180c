//! `goat debug` on a core written from the `vars` fixture.

use super::{text, Held, CH, ERR, MSGS};
use crate::common;

/// The same commands on a core file written from the fixture (`goat debug`).
#[test]
fn variables_of_a_core_file() {
    let h = Held::start("go1.27-noopt");
    let core = std::env::temp_dir().join(format!("goat-vars-{}.core", std::process::id()));
    common::write_core(h.fx.pid(), &core);
    let exe = common::fixture_path("go1.27-noopt", "vars");
    let script = format!("{}locals\np req.Inner\np counter\n", h.select);
    let out = common::goat_with_stdin(
        &[
            "debug",
            core.to_str().unwrap(),
            "--exe",
            exe.to_str().unwrap(),
        ],
        &script,
    );
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
