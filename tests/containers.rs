//! Containers, both ways round. A target in its own pid and mount
//! namespace (as `unshare --pid --mount --fork` or a container runtime
//! makes it), its binary only in its own filesystem and deleted, read from
//! the host; goat itself in an empty root that shares only the target's pid
//! namespace (the `kubectl debug --target` case); and `goat check` naming
//! the missing CAP_SYS_PTRACE with the fix.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::traceback::{self, assert_same_dump};
use common::{assert_untouched, build_fixtures, fixture_path, run_goat, scratch_dir, text};

/// Where the containerised target's binary lives: a tmpfs mounted in its
/// own mount namespace only, so the host never sees the file.
const APP_DIR: &str = "/run/goat-test-container";

/// The `states` fixture as PID 1 of a new pid namespace, in a mount
/// namespace of its own, its binary copied to a tmpfs only that namespace
/// sees and deleted once it runs.
struct Contained {
    unshare: Child,
    /// The target's pid as the host sees it.
    pid: i32,
    stderr: Option<std::process::ChildStderr>,
}

impl Contained {
    fn start(flavour: &str) -> Contained {
        Contained::start_program(flavour, "states", "spin")
    }

    /// Fixture `name` of `flavour` with `args` (words for a shell).
    fn start_program(flavour: &str, name: &str, args: &str) -> Contained {
        let exe = fixture_path(flavour, name);
        assert!(
            exe.exists(),
            "{}: run scripts/build-fixtures",
            exe.display()
        );
        std::fs::create_dir_all(APP_DIR).unwrap();
        let script = format!(
            "mount -t tmpfs tmpfs {APP_DIR} && cp {exe} {APP_DIR}/app && exec {APP_DIR}/app {args}",
            exe = exe.display()
        );
        let mut unshare = Command::new("unshare")
            .args([
                "--pid",
                "--mount",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script])
            .env("GOTRACEBACK", "all")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run unshare (apt-get install util-linux)");
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the contained fixture did not start");
        let pid = child_of(unshare.id() as i32);
        // Deleted where it lives: in the target's own mount namespace.
        let rm = Command::new("nsenter")
            .args([
                "--target",
                &pid.to_string(),
                "--mount",
                "rm",
                &format!("{APP_DIR}/app"),
            ])
            .status()
            .unwrap();
        assert!(rm.success());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.to_string_lossy().ends_with(" (deleted)"), "{exe:?}");
        assert!(
            !Path::new(&format!("{APP_DIR}/app")).exists(),
            "the host sees the binary"
        );
        let stderr = unshare.stderr.take();
        Contained {
            unshare,
            pid,
            stderr,
        }
    }

    /// SIGQUITs the target and returns the runtime's dump.
    fn sigquit_dump(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::SIGQUIT,
        )
        .unwrap();
        let mut err = String::new();
        self.stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::SIGKILL,
        );
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The one child of `parent`, waited for (unshare forks it).
fn child_of(parent: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "unshare started no child");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tids(pid: i32) -> Vec<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn require_namespaces() -> bool {
    common::require_tool("unshare", "apt-get install -y util-linux")
        && common::require_tool("nsenter", "apt-get install -y util-linux")
}

/// Read from the host: the dump is the runtime's own; the running
/// goroutine is on a thread the host can name (the runtime records the
/// namespace's thread ids, `m.procid`); a core of it reads back the same.
#[test]
fn a_contained_target_with_its_binary_deleted_reads_from_the_host() {
    build_fixtures();
    if !require_namespaces() {
        return;
    }
    for flavour in ["go1.19-exe", "go1.27-pie"] {
        let target = Contained::start(flavour);
        let pid = target.pid.to_string();

        let check = run_goat(&["check", &pid]);
        let said = text(&check.stdout);
        assert!(check.status.success(), "{flavour}: {said}");
        assert!(
            said.contains("pid namespace: different from goat's"),
            "{said}"
        );
        assert!(said.contains("goat can read its goroutines"), "{said}");

        let json = run_goat(&["stacks", "--json", &pid]);
        assert!(json.status.success(), "{flavour}: {}", text(&json.stderr));
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let spin = v["goroutines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| {
                g["status"] == "running"
                    && g["frames"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f["function"] == "main.spin"))
            })
            .unwrap_or_else(|| panic!("{flavour}: no running goroutine in main.spin"));
        let thread = spin["thread"]
            .as_i64()
            .expect("the spinning goroutine's thread");
        assert!(
            tids(target.pid).contains(&thread),
            "{flavour}: thread {thread} is not one of the host's {:?}",
            tids(target.pid)
        );

        let dir = scratch_dir(&format!("contained-{flavour}"));
        let core = dir.join("core");
        let wrote = run_goat(&["core", "-o", core.to_str().unwrap(), &pid]);
        assert!(wrote.status.success(), "{flavour}: {}", text(&wrote.stderr));
        // The binary is gone from every filesystem: the user passes the
        // build they have (goat checks it against the core).
        let exe = fixture_path(flavour, "states");
        let from_core = run_goat(&[
            "stacks",
            "--core",
            core.to_str().unwrap(),
            "--exe",
            exe.to_str().unwrap(),
        ]);
        assert!(
            from_core.status.success(),
            "{flavour}: {}",
            text(&from_core.stderr)
        );
        let blocks = traceback::parse(&text(&from_core.stdout));
        assert!(
            blocks
                .values()
                .any(|b| b.status() == "running" && b.frames.iter().any(|f| f.0 == "main.spin")),
            "{flavour}: the core lost the running goroutine:\n{}",
            text(&from_core.stdout)
        );

        let live = run_goat(&["stacks", &pid]);
        assert!(live.status.success(), "{flavour}: {}", text(&live.stderr));
        assert_untouched(target.pid);
        assert_same_dump(flavour, &text(&live.stdout), &target.sigquit_dump());
    }
}

/// A container's pid 1 (issue 33): a fork-mode core, and live-mode cores
/// of a heap written all the while (whose final stop may take a fork
/// copy), write their file and leave no zombie in it. The copy's reaper
/// thread (src/tracer/reaper.rs) waits for it without naming a pid: the
/// target knows its children by its own namespace's pids, not the host's.
#[test]
fn cores_of_a_containers_pid_1_leave_no_child() {
    if !require_namespaces() {
        return;
    }
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let c = Contained::start(flavour);
        core_leaves_no_child(&c, flavour, "fork");
        drop(c);
        let c = Contained::start_program(flavour, "bigheap", "300 300");
        for _ in 0..3 {
            core_leaves_no_child(&c, flavour, "live");
        }
    }
}

fn core_leaves_no_child(c: &Contained, flavour: &str, mode: &str) {
    let dir = scratch_dir(&format!("pid1-{flavour}-{mode}"));
    let core = dir.join("core");
    let pid = c.pid.to_string();
    let core_arg = core.to_str().unwrap();
    let out = run_goat(&[
        "core", &pid, "--mode", mode, "-o", core_arg, "--force", "--stats",
    ]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{flavour} {mode}: {said}");
    assert!(core.exists(), "{flavour} {mode}: no core: {said}");
    assert!(!said.contains("unavailable"), "{flavour} {mode}: {said}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !common::children(c.pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        common::children(c.pid),
        Vec::<String>::new(),
        "{flavour} {mode}: {said}"
    );
    assert_untouched(c.pid);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An empty root (the static goat and /proc) in the target's pid namespace
/// only: goat finds the executable through /proc/1/exe, sources through
/// /proc/1/root, and writes the core where it was asked, in its own root.
#[test]
fn goat_in_an_empty_root_sharing_the_targets_pid_namespace() {
    build_fixtures();
    if !require_namespaces() {
        return;
    }
    let goat = common::root().join("target/dist/goat");
    if !common::require("static goat", goat.is_file(), "run scripts/dist") {
        return;
    }
    let target = Contained::start("go1.24-exe");
    let root = scratch_dir("debug-container");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    common::install_executable(&goat, &root.join("goat"));
    let script = "goroutine 1\nbt\nframe 0 list\ncore /core.1\nquit\n";
    let out = in_pid_namespace_of(target.pid, &root, &["attach", "1"], script);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("main.main"), "{said}");
    // The runtime's source, read through the target's root: goat's own
    // root has no /work.
    assert!(
        said.contains("=>") && said.contains("mcall(park_m)"),
        "{said}"
    );
    let core = root.join("core.1");
    assert!(
        core.is_file(),
        "no core where it was asked:\n{said}\n{}",
        text(&out.stderr)
    );
    assert_untouched(target.pid);
    let from_core = in_pid_namespace_of(
        target.pid,
        &root,
        &["stacks", "--core", "/core.1", "--exe", "/proc/1/exe"],
        "",
    );
    assert!(from_core.status.success(), "{}", text(&from_core.stderr));
    assert!(text(&from_core.stdout).contains("main.spin"));
}

/// Runs `/goat ARGS` chrooted in `root`, in the pid namespace of `pid` and
/// a mount namespace of its own with that namespace's /proc mounted.
fn in_pid_namespace_of(pid: i32, root: &Path, args: &[&str], stdin: &str) -> Output {
    let script = format!(
        "mount -t proc proc {r}/proc && exec chroot {r} /goat \"$@\"",
        r = root.display()
    );
    let mut child = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--pid", "--"])
        .args([
            "unshare",
            "--mount",
            "--fork",
            "--propagation",
            "private",
            "--",
        ])
        .args(["sh", "-c", &script, "sh"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsenter");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Root without CAP_SYS_PTRACE (a container's default set) cannot trace a
/// root process that holds more capabilities: check says why and how to
/// fix it, for a container and for a host, and attach refuses the same way.
#[test]
fn a_missing_cap_sys_ptrace_is_explained_with_the_fix() {
    build_fixtures();
    if !common::require_tool("setpriv", "apt-get install -y util-linux") {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        panic!("this test drops CAP_SYS_PTRACE from root: run the suite as root (scripts/test does in CI)");
    }
    let fx = common::Fixture::start("go1.24-exe", "states", &[]);
    let pid = fx.pid().to_string();
    let dropped = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", "--"])
            .arg(env!("CARGO_BIN_EXE_goat"))
            .args(args)
            .output()
            .unwrap()
    };
    let check = dropped(&["check", &pid]);
    let said = text(&check.stdout);
    assert_eq!(check.status.code(), Some(10), "{said}");
    assert!(
        said.contains("FAIL user:") && said.contains("lacks CAP_SYS_PTRACE"),
        "{said}"
    );
    for fix in [
        "--cap-add=SYS_PTRACE",
        "securityContext.capabilities.add",
        "setcap cap_sys_ptrace+ep",
    ] {
        assert!(said.contains(fix), "no {fix} in:\n{said}");
    }
    let stacks = dropped(&["stacks", &pid]);
    assert_eq!(stacks.status.code(), Some(4), "{}", text(&stacks.stderr));
    assert!(text(&stacks.stderr).contains("--cap-add=SYS_PTRACE"));
    assert_untouched(fx.pid());
}
