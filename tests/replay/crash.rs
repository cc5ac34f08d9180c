//! Michael Stapelberg's "debugging Go core dumps with delve": a server run
//! with `GOTRACEBACK=crash` panics in its request handler and the kernel
//! writes a core. The user opens it (`goat debug --exe EXE CORE`, for
//! `dlv core`), reads the stack of the crashed goroutine (`bt`), selects
//! the handler's frame, prints the request and its Name, and writes Name's
//! bytes to a file (`dump-bytes`, for the post's Starlark
//! `writebytestofile`), then looks at them with `x` (goat's and Delve's
//! spelling).
//!
//! The core is the kernel's own: the test raises its soft RLIMIT_CORE to
//! the hard limit (no privilege needed) and reads, never sets,
//! kernel.core_pattern, which must write a plain file in the working
//! directory (a pipe to systemd-coredump leaves nothing here: the test
//! then fails saying so, unless GOAT_SKIP_KERNEL_CORE=1).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::golit::{byte_list, hex, hexdump, int_after, strings};
use super::{
    exe, frame_of, frames, last_lines, lines_of, marked_line, printed, record, Printed, FLAVOURS,
};
use crate::common::{self, kernel_core, scratch_dir};

/// Runs `replay crashsrv` with GOTRACEBACK=crash in `dir` until it dies:
/// what it printed, and the core the kernel wrote (or why there is none).
fn crash(exe: &Path, dir: &Path) -> (Printed, Result<PathBuf, String>) {
    let mut child = kernel_core::crashable(exe, &["crashsrv"], dir)
        .spawn()
        .expect("start the crashing server");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    let status = child.wait().expect("wait for the server");
    let mut values = Printed::new();
    for l in out.lines().filter(|l| *l != "crashing") {
        assert!(record(&mut values, l), "{l:?} in:\n{out}");
    }
    assert!(
        out.ends_with("crashing\n"),
        "the handler did not run:\n{out}\n{err}"
    );
    assert!(err.contains("panic: oh no!"), "{err}");
    let core = kernel_core::core_written(dir, status).map_err(|why| {
        format!("{why}; let it write plain files: sysctl kernel.core_pattern=core and a nonzero core limit")
    });
    (values, core)
}

/// `goat debug --exe EXE CORE` running `commands`: its stdout lines.
fn debug_session(exe: &Path, core: &Path, commands: &[String]) -> Vec<String> {
    let args = [
        "debug",
        "--exe",
        exe.to_str().expect("a UTF-8 path"),
        core.to_str().expect("a UTF-8 path"),
    ];
    let out: Output = common::goat_with_stdin(&args, &super::script(commands));
    lines_of(&out, commands)
}

fn replay(flavour: &str) {
    let Some(exe) = exe(flavour) else {
        return;
    };
    let dir = scratch_dir(&format!("replay-crash-{flavour}"));
    let (values, core) = crash(&exe, &dir);
    let core = match core {
        Ok(c) => c,
        Err(why) => {
            let _ = common::require("kernel core", false, &why);
            return;
        }
    };
    let gid = printed(&values, "handler.goid");
    // The session starts on the goroutine that crashed, as dlv core does.
    let first = debug_session(&exe, &core, &["goroutine".to_string(), "bt".to_string()]);
    assert!(
        first
            .first()
            .is_some_and(|l| l.starts_with(&format!("Goroutine {gid} "))),
        "{flavour}: the session does not start on the crashed goroutine {gid}:\n{}",
        first.join("\n")
    );
    let k = frame_of(&frames(&first), "main.(*server).SayHello");

    let dump = dir.join("name.raw");
    let name_len = printed(&values, "in.Name.len");
    let session: Vec<String> = [
        "bt".to_string(),
        format!("frame {k}"),
        "p in".into(),
        "p in.Name".into(),
        format!("dump-bytes in.Name {}", dump.display()),
        format!("x in.Name {name_len}"),
        // Delve's own spelling of the same.
        format!("x -count {name_len} -size 1 -fmt hex in.Name"),
    ]
    .into();
    let out = debug_session(&exe, &core, &session);
    let ctx = || format!("{flavour}:\n{}", out.join("\n"));

    // bt: the crash from the signal down to the handler and its caller.
    let bt = frames(&out);
    assert_eq!(bt[0].1, "runtime.raise", "{}", ctx());
    for f in ["runtime.dieFromSignal", "runtime.fatalpanic"] {
        assert!(bt[..k].iter().any(|b| b.1 == f), "no {f}, {}", ctx());
    }
    let panic_line = marked_line("crashsrv.go", "panic");
    assert!(
        bt[k].2.ends_with(&format!("/crashsrv.go:{panic_line}")),
        "{:?}, {}",
        bt[k],
        ctx()
    );
    assert_eq!(
        bt.get(k + 1).map(|f| f.1.as_str()),
        Some("main.handle"),
        "{}",
        ctx()
    );
    // frame K: the handler, at its panic.
    assert!(
        out.iter().any(
            |l| l.starts_with(&format!("Frame {k}: main.(*server).SayHello at "))
                && l.contains(&format!("/crashsrv.go:{panic_line} "))
        ),
        "{}",
        ctx()
    );

    let name = hex(printed(&values, "in.Name"));
    assert_eq!(name.len().to_string(), name_len);
    let at = out
        .iter()
        .position(|l| l.starts_with("*main.Request {"))
        .unwrap_or_else(|| panic!("no p in, {}", ctx()));
    // p in: every field as the program printed it with %#v.
    let p_in = &out[at];
    let want_in = printed(&values, "in");
    let texts = |s: &str| strings(&s[..s.find("Name:").expect("a Name field")]);
    assert_eq!(texts(p_in), texts(want_in), "Method, Path: {}", ctx());
    assert_eq!(
        texts(p_in),
        vec![
            strings(printed(&values, "in.Method")).remove(0),
            strings(printed(&values, "in.Path")).remove(0)
        ]
    );
    assert_eq!(byte_list(p_in, "Name:"), name, "{}", ctx());
    assert_eq!(byte_list(want_in, "Name:"), name, "{want_in}");
    assert_eq!(
        int_after(p_in, "Flags:"),
        int_after(want_in, "Flags:"),
        "{}",
        ctx()
    );
    // p in.Name: the bytes, whole.
    let p_name = &out[at + 1];
    assert!(
        p_name.starts_with(&format!("[]uint8 len: {name_len}, ")),
        "{}",
        ctx()
    );
    assert_eq!(byte_list(p_name, "cap:"), name, "{}", ctx());
    // dump-bytes: the file holds exactly the request's bytes.
    assert_eq!(
        out[at + 2],
        format!("wrote {name_len} bytes to {}", dump.display()),
        "{}",
        ctx()
    );
    assert_eq!(std::fs::read(&dump).expect("the dumped bytes"), name);
    // x, twice: the same bytes in memory.
    let rows = name.len().div_ceil(16);
    let dumps = last_lines(&out, 2 * rows);
    assert_eq!(hexdump(&dumps[..rows]), name, "{}", ctx());
    assert_eq!(dumps[..rows], dumps[rows..], "{}", ctx());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_crashed_in_its_handler() {
    for f in FLAVOURS {
        replay(f);
    }
}
