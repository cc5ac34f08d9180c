//! Shared by the integration tests: start real Go fixture programs, run goat
//! on them, and read the Go runtime's own SIGQUIT traceback as the oracle.
#![allow(dead_code)]

pub mod debugregs;
pub mod faults;
pub mod kernel_core;
pub mod piped;
mod require;
pub mod runctl;
pub mod traceback;
pub mod vendor;
pub mod watched;

#[allow(unused_imports)] // each test binary uses a few of them
pub use require::{require, require_fixture, require_tool, require_toolchain, skip_var};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Every release the session tests cover, optimized and `-N -l`.
pub const SESSION_FLAVOURS: [&str; 8] = [
    "go1.19-exe",
    "go1.19-noopt",
    "go1.21-exe",
    "go1.21-noopt",
    "go1.24-exe",
    "go1.24-noopt",
    "go1.27-exe",
    "go1.27-noopt",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the fixture `name`'s source with `.toolchains/TOOLCHAIN` into
/// `out`, as scripts/build-fixtures does (extra `flags` before `-o`); `None`
/// (after saying so) only when the toolchain is missing and
/// `GOAT_SKIP_GO_TOOLCHAIN=1`.
pub fn go_build(toolchain: &str, name: &str, flags: &[&str], out: &Path) -> Option<()> {
    let go = root().join(".toolchains").join(toolchain).join("bin/go");
    if !require_toolchain(&go) {
        return None;
    }
    let built = std::process::Command::new(&go)
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(".")
        .current_dir(root().join("tests/fixtures").join(name))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", root().join(".toolchains/gocache"))
        .env_remove("GOROOT")
        .output()
        .expect("run go build");
    assert!(built.status.success(), "go build: {}", text(&built.stderr));
    Some(())
}

/// The lines of a session's stderr that report a command's error
/// (`error: ...`), one per failed command.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// Every built fixture flavour: `go1.19-exe`, `go1.27-pie`, ...
pub fn flavours() -> Vec<String> {
    build_fixtures();
    let mut v: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/bin"))
        .expect("tests/fixtures/bin: run scripts/build-fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures built: run scripts/test");
    v
}

/// Builds the fixtures once per test binary (a no-op when they are current).
pub fn build_fixtures() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let st = Command::new(root().join("scripts/build-fixtures"))
            .status()
            .expect("run scripts/build-fixtures");
        // Without the Go toolchains (offline, say) every fixture test would
        // fail on its own; one message says what to run instead.
        assert!(
            st.success(),
            "scripts/build-fixtures failed: the tests need the Go fixtures; run \
             scripts/setup-go (installs the Go toolchains into .toolchains/), then \
             scripts/build-fixtures"
        );
    });
}

pub fn fixture_path(flavour: &str, name: &str) -> PathBuf {
    root().join("tests/fixtures/bin").join(flavour).join(name)
}

/// A running fixture process, killed when dropped.
pub struct Fixture {
    pub child: Child,
    pub path: PathBuf,
}

impl Fixture {
    /// Starts `name` built as `flavour` and waits for it to print "ready".
    pub fn start(flavour: &str, name: &str, args: &[&str]) -> Fixture {
        let (fx, line) = Fixture::start_line(flavour, name, args);
        assert_eq!(line, "ready", "{} did not get ready", fx.path.display());
        fx
    }

    /// Starts `name` built as `flavour` and returns its first line of
    /// output (trimmed), once written. Its stdout is closed after that line,
    /// so the program must not write there again.
    pub fn start_line(flavour: &str, name: &str, args: &[&str]) -> (Fixture, String) {
        let path = fixture_path(flavour, name);
        assert!(
            path.exists(),
            "{} is not built: run scripts/build-fixtures",
            path.display()
        );
        Fixture::start_path_line(&path, args)
    }

    /// Starts the program at `path` (a fixture copied and altered by the
    /// test) and waits for it to print "ready".
    pub fn start_path(path: &Path, args: &[&str]) -> Fixture {
        let (fx, line) = Fixture::start_path_line(path, args);
        assert_eq!(line, "ready", "{} did not get ready", fx.path.display());
        fx
    }

    fn start_path_line(path: &Path, args: &[&str]) -> (Fixture, String) {
        let path = path.to_path_buf();
        let mut child = Command::new(&path)
            .args(args)
            .env("GOTRACEBACK", "all")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read fixture stdout");
        let line = line.trim().to_string();
        (Fixture { child, path }, line)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGQUITs the process and returns its stderr: the runtime's dump.
    pub fn sigquit_dump(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::SIGQUIT,
        )
        .expect("SIGQUIT");
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        let _ = self.child.wait();
        err
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn goat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goat"))
}

/// Starts `goat ARGS` with stdin, stdout and stderr piped.
fn spawn_piped(args: &[&str]) -> std::process::Child {
    let mut cmd = goat();
    cmd.args(args);
    spawn_piped_cmd(cmd)
}

/// Starts `cmd` (a goat command line) with stdin, stdout and stderr piped.
fn spawn_piped_cmd(mut cmd: Command) -> std::process::Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Starts `goat attach PID [args]` with stdin, stdout and stderr piped.
pub fn spawn_attach(pid: i32, args: &[&str]) -> std::process::Child {
    let pid = pid.to_string();
    spawn_piped(&[&["attach", pid.as_str()], args].concat())
}

/// Runs `goat ARGS` with `script` on a piped stdin.
pub fn goat_with_stdin(args: &[&str], script: &str) -> Output {
    let mut cmd = goat();
    cmd.args(args);
    command_with_stdin(cmd, script)
}

/// Runs `cmd` (a goat command line, its environment set by the caller)
/// with `script` on a piped stdin.
pub fn command_with_stdin(cmd: Command, script: &str) -> Output {
    let mut child = spawn_piped_cmd(cmd);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    child.wait_with_output().expect("wait for goat")
}

/// Runs `goat attach PID [args]` with `script` on a piped stdin.
pub fn attach_with_stdin(pid: i32, args: &[&str], script: &str) -> Output {
    let pid = pid.to_string();
    goat_with_stdin(&[&["attach", pid.as_str()], args].concat(), script)
}

/// `goat core PID -o DEST --force`, which must succeed.
pub fn write_core(pid: i32, dest: &Path) {
    let out = run_goat(&[
        "core",
        &pid.to_string(),
        "-o",
        dest.to_str().expect("a UTF-8 path"),
        "--force",
    ]);
    assert!(out.status.success(), "goat core: {}", text(&out.stderr));
}

/// `goat core PID [--mode MODE] -o DEST`, made to hold `hold_ms` in the
/// middle of the write (`GOAT_TEST_HOLD_STOPPED_MS`) so that a test can
/// kill goat or the target at that moment. Not started yet.
pub fn core_holding(pid: i32, mode: Option<&str>, dest: &Path, hold_ms: u64) -> Command {
    let mut cmd = goat();
    cmd.args(["core", &pid.to_string()]);
    if let Some(m) = mode {
        cmd.args(["--mode", m]);
    }
    cmd.arg("-o")
        .arg(dest)
        .env(hook("GOAT_TEST_HOLD_STOPPED_MS"), hold_ms.to_string());
    cmd
}

/// Starts `cmd` (from [`core_holding`]) and returns once goat says it is
/// holding, with a thread that gathers all it writes on stderr.
pub fn spawn_held(cmd: &mut Command) -> (std::process::Child, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("run goat");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("goat ended before holding: {said}");
        }
        said.push_str(&line);
        if line.contains("test hook: holding") {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        said + &s
    });
    (child, rest)
}

/// The name of test hook `var` (a `GOAT_TEST_*` variable), which only a
/// goat built with the `test-hooks` feature reads: a test that needs one
/// fails at once, saying how to run it, rather than pass without it.
pub fn hook(var: &'static str) -> &'static str {
    if !cfg!(feature = "test-hooks") {
        panic!(
            "this test needs goat's test hooks ({var}): run it with \
             `cargo test --release --features test-hooks` (scripts/test does)"
        );
    }
    var
}

/// Copies the program `src` to `dst`, executable, through `cp` in a child
/// process. A test that writes an executable itself holds a descriptor open
/// for writing, and a `fork` by any other test thread in that window gives
/// the child a copy until it `exec`s: running the file then fails with
/// "Text file busy" (ETXTBSY). A descriptor opened by `cp` is never ours.
pub fn install_executable(src: &Path, dst: &Path) {
    let _ = std::fs::remove_file(dst);
    let ok = Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap_or_else(|e| panic!("run cp: {e}"))
        .success();
    assert!(ok, "cp {} {} failed", src.display(), dst.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fresh empty directory `goat-NAME-PID` under the temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("goat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The pid of the process tracing `pid` (goat's tracer process), waiting
/// up to 5 s for one to attach. TracerPid names the tracing *thread*, which
/// ends (and so looks gone) before its process has finished: the process
/// still removes temporaries after its ptrace thread detached.
pub fn tracer_of(pid: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t: i32 = proc_status(pid, "TracerPid")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let process = (t != 0)
            .then(|| proc_status(t, "Tgid"))
            .flatten()
            .and_then(|g| g.parse().ok());
        if let Some(process) = process {
            return process;
        }
        assert!(Instant::now() < deadline, "no tracer attached to {pid}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 20 s for process `pid` to be gone (or a zombie).
pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while proc_status(pid, "State").is_some_and(|s| !s.starts_with('Z')) {
        assert!(Instant::now() < deadline, "process {pid} is still there");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `ps --ppid PID -o stat=,pid=`: one line per child of `pid`.
pub fn children(pid: i32) -> Vec<String> {
    let out = Command::new("ps")
        .args(["--ppid", &pid.to_string(), "-o", "stat=,pid="])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn run_goat(args: &[&str]) -> Output {
    goat().args(args).output().expect("run goat")
}

/// One field of /proc/PID/status, e.g. "TracerPid" or "State".
pub fn proc_status(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

/// Asserts the target is alive, running (not stopped) and untraced.
pub fn assert_untouched(pid: i32) {
    if let Err(e) = untouched(pid) {
        panic!("{e}");
    }
}

/// Whether the target is alive, running (not stopped), untraced and without
/// a live-mode core's write tracking; waits up to 2 s for that.
pub fn untouched(pid: i32) -> Result<(), String> {
    // A thread can be briefly in 'D' or 'R'; stopped is 'T' or 't'.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let tracer = proc_status(pid, "TracerPid").ok_or(format!("target {pid} is gone"))?;
        let stopped = threads_stopped(pid);
        let watched = write_tracked_mappings(pid);
        if tracer == "0" && !stopped && watched == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "target {pid} left traced ({tracer}), stopped ({stopped}) or with {watched} mappings under a userfaultfd (live-mode core)"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mappings of `pid` registered with a userfaultfd for write protection
/// (smaps flag `uw`): what a live-mode core registers and must release.
fn write_tracked_mappings(pid: i32) -> usize {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    smaps
        .lines()
        .filter(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "uw"))
        .count()
}

fn threads_stopped(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|t| {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let tracer = status
            .lines()
            .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"));
        let stopped = status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains("T (") || l.contains("t (")));
        tracer || stopped
    })
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The fixture's text mapping, read through `/proc/PID/mem`.
pub fn text_segment(fx: &Fixture) -> Vec<u8> {
    read_text(fx).unwrap_or_else(|e| panic!("{e}"))
}

/// `text_segment`, or why it cannot be read (the process is gone).
pub fn read_text(fx: &Fixture) -> Result<Vec<u8>, String> {
    let pid = fx.pid();
    let exe = fx.path.canonicalize().expect("canonical path");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("/proc/{pid}/maps: {e}"))?;
    let line = maps
        .lines()
        .find(|l| l.contains(" r-xp ") && l.ends_with(exe.to_str().expect("utf-8")))
        .ok_or(format!("no text mapping in /proc/{pid}/maps"))?;
    let (lo, hi) = line.split(' ').next().unwrap().split_once('-').unwrap();
    let (lo, hi) = (
        u64::from_str_radix(lo, 16).unwrap(),
        u64::from_str_radix(hi, 16).unwrap(),
    );
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("/proc/{pid}/mem: {e}"))?;
    let mut buf = vec![0u8; (hi - lo) as usize];
    mem.read_exact_at(&mut buf, lo)
        .map_err(|e| format!("reading the text of {pid}: {e}"))?;
    Ok(buf)
}

/// The goroutine ids `goat stacks` prints (live, or from `--core FILE`).
pub fn goroutine_ids(args: &[&str]) -> Vec<u64> {
    let out = run_goat(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ids_after(String::from_utf8_lossy(&out.stdout).lines(), "goroutine ")
}

/// The numbers that follow `prefix` at the start of `lines` (`goroutine 7
/// [...]`, `Goroutine 7 - ...`), sorted.
pub fn ids_after<'a>(lines: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = lines
        .filter_map(|l| l.strip_prefix(prefix)?.split(' ').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// CRC-32 (IEEE), as Go's `hash/crc32.ChecksumIEEE`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = !0u32;
    for &b in bytes {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The stops `--stats` says began during the run just made (Unix seconds,
/// in order, each lasting what it says): what a user lines up with the
/// service's logs, and `scripts/bench` with the target's heartbeat.
pub fn assert_stop_windows(err: &str, count: usize) {
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("goat: stops began at "))
        .unwrap_or_else(|| panic!("no stop times: {err}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let windows: Vec<(f64, f64)> = line
        .trim_end_matches(" (Unix seconds)")
        .split(", ")
        .map(|w| {
            let (at, ms) = w.split_once(" (").expect("BEGAN (MS ms)");
            let ms = ms.trim_end_matches(" ms)");
            (at.parse().expect(at), ms.parse().expect(ms))
        })
        .collect();
    assert_eq!(windows.len(), count, "{line}");
    let mut after = now - 60.0;
    for (began, ms) in windows {
        assert!(began >= after && began <= now && ms < 60_000.0, "{line}");
        after = began + ms / 1000.0;
    }
}
