//! Tests against real processes: the Go fixture and `sleep`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{AttachError, LiveProcess};
use crate::process::preflight::{self, ExeInfo};
use crate::process::{Memory, MemoryExt, ReadFault, Target};

/// Kills and reaps the child on drop.
struct Kid(Child);

impl Kid {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/go1.27-exe/states")
}

/// Starts the Go fixture and waits for its "ready".
fn go_fixture() -> Kid {
    let mut child = Command::new(fixture_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Go fixture");
    let out = child.stdout.take().unwrap();
    let kid = Kid(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    kid
}

fn sleeper() -> Kid {
    Kid(Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("start sleep"))
}

fn status(pid: i32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The process (not thread) tracing `pid`, if any.
fn tracer_tgid(pid: i32) -> Option<i32> {
    let tid: i32 = status(pid, "TracerPid").parse().ok()?;
    (tid != 0).then(|| status(tid, "Tgid").parse().ok())?
}

fn task_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Asserts the target is no longer traced nor stopped.
fn assert_released(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tracer = status(pid, "TracerPid");
        let state = status(pid, "State");
        let stopped_threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| {
                let tid = e.ok()?.file_name().into_string().ok()?;
                let st = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
                let traced = st
                    .lines()
                    .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0");
                let stopped = st
                    .lines()
                    .any(|l| l.starts_with("State:") && (l.contains("t (") || l.contains("T (")));
                (traced || stopped).then_some(tid)
            })
            .count();
        if tracer == "0"
            && !state.starts_with('t')
            && !state.starts_with('T')
            && stopped_threads == 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} still held: TracerPid {tracer}, State {state}, {stopped_threads} threads"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An inspector for tests: a Go binary is an ELF with a `.gopclntab` section.
fn inspect(path: &Path) -> Result<ExeInfo, String> {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let has = |n: &str| file.section_by_name(n).is_some();
    let go_version = file.section_by_name(".go.buildinfo").and_then(|s| {
        let d = s.data().ok()?;
        let i = d.windows(4).position(|w| w == b"go1.")?;
        let v: Vec<u8> = d[i..]
            .iter()
            .take_while(|b| b.is_ascii_graphic())
            .copied()
            .collect();
        Some(String::from_utf8_lossy(&v).into_owned())
    });
    Ok(ExeInfo {
        go_version,
        version_note: None,
        goroutines: None,
        has_dwarf: has(".debug_info"),
        has_pclntab: has(".gopclntab"),
    })
}

#[test]
fn stop_resume_cycles_return_every_thread() {
    let kid = go_fixture();
    let pid = kid.pid();
    let proc = LiveProcess::attach(pid).unwrap();
    assert_eq!(proc.pid(), pid);
    for _ in 0..20 {
        let stopped = proc.stop().unwrap();
        let tasks = task_count(pid);
        assert_eq!(
            stopped.threads().len(),
            tasks,
            "one Thread per /proc/PID/task entry"
        );
        assert!(tasks >= 2, "the fixture is multi-threaded");
        assert_eq!(stopped.pid(), Some(pid));
        let maps = stopped.mappings();
        let exec = |a: u64| {
            maps.iter()
                .any(|m| m.executable && m.start <= a && a < m.end)
        };
        let mapped = |a: u64| maps.iter().any(|m| m.writable && m.start <= a && a < m.end);
        for t in stopped.threads() {
            assert!(
                exec(t.regs.rip),
                "rip {:#x} of {} in executable mapping",
                t.regs.rip,
                t.tid
            );
            assert!(
                mapped(t.regs.rsp),
                "rsp {:#x} of {} in writable mapping",
                t.regs.rsp,
                t.tid
            );
            assert_ne!(t.regs.fs_base, 0, "Go sets a TLS base on every M");
        }
        // Every thread is in a tracing stop while the guard lives.
        for t in stopped.threads() {
            let st = std::fs::read_to_string(format!("/proc/{pid}/task/{}/status", t.tid)).unwrap();
            assert!(st.contains("State:\tt (tracing stop)"), "{}: {st}", t.tid);
        }
        assert!(stopped.stopped_for() < Duration::from_secs(1));
        stopped.resume().unwrap();
    }
    // Dropping a guard without resume() resumes as well.
    drop(proc.stop().unwrap());
    drop(proc);
    assert_released(pid);
}

#[test]
fn reads_elf_header_and_batches_with_bad_addresses() {
    let kid = go_fixture();
    let pid = kid.pid();
    let proc = LiveProcess::attach(pid).unwrap();
    let stopped = proc.stop().unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe = exe.to_string_lossy();
    let first = stopped
        .mappings()
        .iter()
        .find(|m| m.path.as_deref() == Some(&*exe) && m.offset == 0)
        .expect("exe mapped at offset 0")
        .clone();
    let mut magic = [0u8; 4];
    stopped.read(first.start, &mut magic).unwrap();
    assert_eq!(&magic, b"\x7fELF");
    assert_eq!(
        stopped.read_u32(first.start).unwrap(),
        u32::from_le_bytes(*b"\x7fELF")
    );
    assert!(stopped.read_u64(0x10).is_err());

    // 3000 requests (three process_vm_readv calls' worth) with faults mixed in.
    let bad = |i: usize| match i % 7 {
        3 => Some(0x10u64),
        5 => Some(u64::MAX - 2),  // wraps
        6 => Some(first.end - 2), // runs off the mapping's end? only if the next page is unmapped
        _ => None,
    };
    let mut bufs = vec![[0u8; 4]; 3000];
    let mut reqs: Vec<(u64, &mut [u8])> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| (bad(i).unwrap_or(first.start), &mut b[..]))
        .collect();
    let res = stopped.read_batch(&mut reqs);
    assert_eq!(res.len(), 3000);
    let next_mapped = stopped
        .mappings()
        .iter()
        .any(|m| m.start == first.end && m.readable);
    for (i, r) in res.iter().enumerate() {
        match bad(i) {
            None => {
                assert!(r.is_ok(), "request {i}: {r:?}");
                assert_eq!(&bufs[i], b"\x7fELF", "request {i}");
            }
            Some(addr) if i % 7 == 6 && next_mapped => {
                assert!(r.is_ok() || *r == Err(ReadFault { addr, len: 4 }))
            }
            Some(addr) => assert_eq!(*r, Err(ReadFault { addr, len: 4 }), "request {i}"),
        }
    }
    // ProcessMemory works without a stop too.
    assert_eq!(
        proc.memory().read_u32(first.start).unwrap(),
        u32::from_le_bytes(*b"\x7fELF")
    );
    drop(stopped);
    drop(proc);
    assert_released(pid);
}

#[test]
fn attach_to_sleep_then_drop_releases_it() {
    let kid = sleeper();
    let pid = kid.pid();
    let proc = LiveProcess::attach(pid).unwrap();
    assert_eq!(tracer_tgid(pid), Some(std::process::id() as i32));
    let s = proc.stop().unwrap();
    assert_eq!(s.threads().len(), 1);
    drop(s);
    drop(proc);
    assert_released(pid);
}

#[test]
fn refuses_nonexistent_self_and_zombie() {
    assert!(matches!(
        LiveProcess::attach(0x3fff_fff0),
        Err(AttachError::NoSuchProcess { .. })
    ));
    assert!(matches!(
        LiveProcess::attach(-5),
        Err(AttachError::NoSuchProcess { .. })
    ));
    assert!(matches!(
        LiveProcess::attach(std::process::id() as i32),
        Err(AttachError::SelfAttach)
    ));
    let parent = std::os::unix::process::parent_id() as i32;
    assert!(matches!(
        LiveProcess::attach(parent),
        Err(AttachError::SelfAttach)
    ));

    let kid = Kid(Command::new("true").spawn().unwrap());
    let pid = kid.pid();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !status(pid, "State").starts_with('Z') {
        assert!(Instant::now() < deadline, "child never became a zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    match LiveProcess::attach(pid) {
        Err(AttachError::Zombie { pid: p }) => assert_eq!(p, pid),
        other => panic!("expected Zombie, got {other:?}"),
    }
}

#[test]
fn second_attach_names_the_first_tracer() {
    let kid = sleeper();
    let pid = kid.pid();
    let first = LiveProcess::attach(pid).unwrap();
    match LiveProcess::attach(pid) {
        Err(AttachError::AlreadyTraced {
            pid: p,
            tracer_pid,
            tracer_name,
        }) => {
            assert_eq!(p, pid);
            assert_eq!(
                tracer_pid,
                std::process::id() as i32,
                "the tracing process, not its thread"
            );
            assert!(!tracer_name.is_empty() && tracer_name != "?");
        }
        other => panic!("expected AlreadyTraced, got {other:?}"),
    }
    drop(first);
    assert_released(pid);
}

/// Not a test on its own: the helper process of the tests below, which
/// attaches to and stops `GOAT_TEST_HELPER_PID` (with goat's signal guard
/// when `GOAT_TEST_HELPER_SIGNALS` is set), says so, and hangs.
#[test]
#[ignore]
fn helper_attach_stop_and_hang() {
    let Ok(pid) = std::env::var("GOAT_TEST_HELPER_PID") else {
        return;
    };
    if std::env::var_os("GOAT_TEST_HELPER_SIGNALS").is_some() {
        super::install_detach_on_signals().unwrap();
    }
    let proc = LiveProcess::attach(pid.parse().unwrap()).unwrap();
    let stopped = proc.stop().unwrap();
    println!("stopped {}", stopped.threads().len());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `helper_attach_stop_and_hang` on `pid` in a child process and
/// returns once it holds the target stopped.
fn start_stopping_helper(pid: i32, with_signal_guard: bool) -> Kid {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "tracer::live_tests::helper_attach_stop_and_hang",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("GOAT_TEST_HELPER_PID", pid.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if with_signal_guard {
        cmd.env("GOAT_TEST_HELPER_SIGNALS", "1");
    }
    let mut helper = cmd.spawn().unwrap();
    let out = helper.stdout.take().unwrap();
    let helper = Kid(helper);
    let stopped = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("stopped "));
    assert!(stopped, "helper never stopped the target");
    helper
}

#[test]
fn kill_9_of_goat_leaves_target_running() {
    let target = go_fixture();
    let pid = target.pid();
    let helper = start_stopping_helper(pid, false);
    // The target really is held by the helper now.
    assert_eq!(tracer_tgid(pid), Some(helper.pid()));
    assert!(
        status(pid, "State").starts_with('t'),
        "state {}",
        status(pid, "State")
    );
    drop(helper); // SIGKILL + reap
    assert_released(pid);
    // And it still runs: it can be attached and stopped again, all threads answer.
    let proc = LiveProcess::attach(pid).unwrap();
    assert_eq!(proc.stop().unwrap().threads().len(), task_count(pid));
}

#[test]
fn sigterm_mid_stop_detaches_and_exits_143() {
    let target = go_fixture();
    let pid = target.pid();
    let mut helper = start_stopping_helper(pid, true);
    assert!(status(pid, "State").starts_with('t'));
    // libtest's main thread does not block SIGTERM (goat's main would, by
    // calling install_detach_on_signals first), so aim at the signal thread.
    let hp = helper.pid();
    // std names a thread from inside it, a moment after it starts: look
    // until the name is there, not once.
    let find = || {
        std::fs::read_dir(format!("/proc/{hp}/task"))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
            .find(|t: &i32| {
                std::fs::read_to_string(format!("/proc/{hp}/task/{t}/comm"))
                    .is_ok_and(|c| c.trim() == "goat-signals")
            })
    };
    let sig_tid: i32 =
        crate::poll::poll_until(Duration::from_secs(10), Duration::from_millis(5), find)
            .expect("signal thread");
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, hp, sig_tid, libc::SIGTERM) };
    assert_eq!(r, 0);
    let code = helper.0.wait().unwrap().code();
    assert_eq!(code, Some(128 + libc::SIGTERM));
    assert_released(pid);
}

#[test]
fn preflight_on_go_fixture_sleep_and_missing_pid() {
    let kid = go_fixture();
    let r = preflight::check(kid.pid(), &inspect);
    assert!(r.ok(), "{r}");
    let text = r.to_string();
    assert!(text.contains("ok   go binary: Go go1."), "{text}");
    assert!(text.contains("ptrace_scope"), "{text}");

    let sl = sleeper();
    let r = preflight::check(sl.pid(), &inspect);
    assert!(!r.ok());
    let text = r.to_string();
    assert!(
        text.contains("FAIL go binary: not a Go binary (no .gopclntab)"),
        "{text}"
    );
    assert!(text.contains("fix: goat only reads Go programs"), "{text}");

    // Already traced: the tracer line fails and names us.
    let proc = LiveProcess::attach(sl.pid()).unwrap();
    let r = preflight::check(sl.pid(), &inspect);
    let tracer = r.checks.iter().find(|c| c.title == "tracer").unwrap();
    assert!(
        !tracer.ok && tracer.detail.contains(&std::process::id().to_string()),
        "{r}"
    );
    drop(proc);

    let r = preflight::check(0x3fff_fff0, &inspect);
    assert!(!r.ok());
    assert_eq!(r.checks.len(), 1);
    assert!(
        r.to_string()
            .starts_with("FAIL process: no process with pid"),
        "{r}"
    );

    let r = preflight::check(std::process::id() as i32, &inspect);
    assert!(!r.ok() && r.to_string().contains("goat itself"), "{r}");
}

/// Prints pause and throughput numbers (not asserted: timing belongs to benches).
#[test]
#[ignore]
fn measure_pause_and_read_batch() {
    let kid = go_fixture();
    let proc = LiveProcess::attach(kid.pid()).unwrap();
    let mut pauses = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let s = proc.stop().unwrap();
        let n = s.threads().len();
        s.resume().unwrap();
        pauses.push((t.elapsed(), n));
    }
    pauses.sort();
    println!(
        "stop+resume for {} threads: min {:?} median {:?} max {:?}",
        pauses[0].1, pauses[0].0, pauses[25].0, pauses[49].0
    );

    // 100k 400-byte reads + 100k 2 KiB reads from a 40 MB buffer of this process.
    let me = crate::process::ProcessMemory::new(std::process::id() as i32);
    let src = vec![7u8; 100_000 * 400 + 4096];
    let base = src.as_ptr() as u64;
    let mut gs = vec![0u8; 100_000 * 400];
    let t = Instant::now();
    let mut reqs: Vec<(u64, &mut [u8])> = gs
        .chunks_mut(400)
        .enumerate()
        .map(|(i, c)| (base + i as u64 * 400, c))
        .collect();
    let res = me.read_batch(&mut reqs);
    println!(
        "100k x 400 B read_batch: {:?} ({} ok)",
        t.elapsed(),
        res.iter().filter(|r| r.is_ok()).count()
    );
    let t = Instant::now();
    let mut reqs: Vec<(u64, &mut [u8])> = gs
        .chunks_mut(400)
        .enumerate()
        .map(|(i, c)| (base + i as u64 * 400, c))
        .collect();
    let res = me.read_batch(&mut reqs);
    println!(
        "again, into touched buffers: {:?} ({} ok)",
        t.elapsed(),
        res.iter().filter(|r| r.is_ok()).count()
    );
    // Realistic stacks: 1 KiB used at the top of each 8 KiB stack (no coalescing),
    // read into destination buffers the caller already touched.
    let stack_src = vec![3u8; 100_000 * 8192];
    let sbase = stack_src.as_ptr() as u64;
    let mut stacks = vec![1u8; 100_000 * 1024];
    let t = Instant::now();
    let mut reqs: Vec<(u64, &mut [u8])> = stacks
        .chunks_mut(1024)
        .enumerate()
        .map(|(i, c)| (sbase + i as u64 * 8192 + 7168, c))
        .collect();
    let res = me.read_batch(&mut reqs);
    println!(
        "100k x 1 KiB scattered stack read_batch: {:?} ({} ok)",
        t.elapsed(),
        res.iter().filter(|r| r.is_ok()).count()
    );
}
