//! `list` finds sources a binary names where they are on this machine:
//! a `-trimpath` build records `runtime/proc.go` and `goat.test/vars/main.go`,
//! so the standard library comes from the Go installation of the binary's
//! release (here the checkout's .toolchains), and the main module's files
//! from a `config substitute-path` rule, which the not-found message names.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{attach_with_stdin, root, scratch_dir, text};

/// A running `-trimpath -N -l` build of the vars fixture, killed on drop.
struct Trimmed(std::process::Child);

impl Drop for Trimmed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_trimmed() -> Option<Trimmed> {
    let dir = scratch_dir("sources");
    let exe = dir.join("vars-trimpath");
    common::go_build("go1.27", "vars", &["-trimpath", "-gcflags=all=-N -l"], &exe)?;
    let mut child = Command::new(&exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the trimpath build");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Some(Trimmed(child))
}

#[test]
fn trimpath_builds_find_the_standard_library_and_name_the_fix() {
    let Some(fx) = start_trimmed() else { return };
    let src = root().join("tests/fixtures/vars");
    let script = format!(
        "list runtime.gopark\nlist main.hold\n\
         config substitute-path goat.test/vars {}\nlist main.hold\n",
        src.display()
    );
    let out = attach_with_stdin(fx.0.id() as i32, &[], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    // runtime/proc.go, from the go1.27 installation.
    assert!(stdout.contains("func gopark("), "{stdout}\n---\n{stderr}");
    // goat.test/vars/main.go is nowhere until the rule maps it.
    assert!(
        stderr.contains("source file goat.test/vars/main.go is not on this machine"),
        "{stderr}"
    );
    assert!(
        stderr.contains("'config substitute-path goat.test/vars DIR'"),
        "{stderr}"
    );
    assert!(stdout.contains("func hold(name string"), "{stdout}");
}
