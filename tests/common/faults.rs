//! Shared by the fault-injection tests (`kill_points.rs`, `kill_campaign.rs`):
//! a target program (the HTTP server kept under load by a few client
//! threads), and the one check that whatever killed goat or its tracer
//! left the program as it was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{children, read_text, text_segment, untouched, Fixture};

/// The build every fault test runs against (the newest release, PIE).
pub const FLAVOUR: &str = "go1.27-pie";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// Parked goroutines in every state, 7 threads, nothing running.
    States,
    /// Four threads; `main.tick` every 10 ms, `main.hot` 4,000 times a second.
    Ticker,
    /// net/http under load from the test's client threads.
    Server,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::States => "states",
            Program::Ticker => "ticker",
            Program::Server => "server",
        }
    }
}

/// A running fixture, what its code looked like before goat came, and for
/// the server the client threads keeping it busy.
pub struct Target {
    pub program: Program,
    // Declared before `load`: dropped (killed) first, so that the client
    // threads see their connections reset instead of waiting on a timeout.
    fx: Fixture,
    text: Vec<u8>,
    port: Arc<AtomicU16>,
    load: Option<Load>,
    /// How many times a damaged target was replaced by a fresh one.
    pub restarts: usize,
}

impl Target {
    pub fn start(program: Program) -> Target {
        super::build_fixtures();
        let port = Arc::new(AtomicU16::new(0));
        let (fx, text) = launch(program, &port);
        let load = (program == Program::Server).then(|| Load::start(port.clone()));
        Target {
            program,
            fx,
            text,
            port,
            load,
            restarts: 0,
        }
    }

    pub fn pid(&self) -> i32 {
        self.fx.pid()
    }

    /// Replaces the program with a fresh copy (after a check failed: what
    /// follows must not inherit the damage).
    pub fn restart(&mut self) {
        self.kill_copies();
        let (fx, text) = launch(self.program, &self.port);
        // Assigning drops (kills and reaps) the old process.
        self.fx = fx;
        self.text = text;
        self.restarts += 1;
    }

    /// Requests the client threads completed and failed so far.
    pub fn load_counts(&self) -> (u64, u64) {
        self.load.as_ref().map_or((0, 0), |l| {
            (
                l.ok.load(Ordering::Relaxed),
                l.failed.load(Ordering::Relaxed),
            )
        })
    }

    /// The program survived whatever happened to goat: alive, not stopped,
    /// untraced, no userfaultfd write tracking (smaps `uw`), its text
    /// byte for byte as before, no child process at all (a fork-mode copy,
    /// or its zombie), no goat temporary in `out`, and the server answers
    /// a new connection.
    pub fn survived(&mut self, out: &Path) -> Result<(), String> {
        self.survived_with(out, false)
    }

    /// [`Target::survived`], with temporary core files in `out` allowed
    /// when `temporaries_ok` (every goat process died: none could remove
    /// them; the next `goat core` there does).
    pub fn survived_with(&mut self, out: &Path, temporaries_ok: bool) -> Result<(), String> {
        let pid = self.pid();
        self.alive()?;
        untouched(pid)?;
        let text = read_text(&self.fx).map_err(|e| self.alive().err().unwrap_or(e))?;
        if text != self.text {
            let at = text.iter().zip(&self.text).position(|(a, b)| a != b);
            return Err(format!(
                "its text differs from before (first at offset {at:?}: {:#04x?} instead of {:#04x?})",
                at.map(|i| text[i]),
                at.map(|i| self.text[i])
            ));
        }
        // A copy's reaper thread (src/tracer/reaper.rs) reaps it as soon as
        // its dead tracer lets it go: a moment, not a bound.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut kids = children(pid);
        while !kids.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            kids = children(pid);
        }
        if !kids.is_empty() {
            return Err(format!(
                "it has child processes (STAT PID): {kids:?} (a fork-mode copy, or its zombie)"
            ));
        }
        // Write tracking borrows a userfaultfd the target opens and closes
        // in one stop; whatever dies when, none may stay open in it.
        let uffds = userfaultfds(pid);
        if uffds > 0 {
            return Err(format!("{uffds} userfaultfd descriptor(s) left open in it"));
        }
        let left = temporaries(out);
        if !left.is_empty() && !temporaries_ok {
            return Err(format!(
                "temporary core files left in {}: {left:?}",
                out.display()
            ));
        }
        if self.program == Program::Server {
            request(self.port.load(Ordering::Relaxed))
                .map_err(|e| format!("the server does not answer: {e}"))?;
        }
        Ok(())
    }

    /// Err(how it died, with its stderr) if the program has exited.
    fn alive(&mut self) -> Result<(), String> {
        let Some(status) = self.fx.child.try_wait().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        // A fork-mode copy that outlived the target holds its stderr open
        // too: whatever is there is read without waiting for the end.
        let copies = self.copies();
        let mut err = Vec::new();
        if let Some(mut e) = self.fx.child.stderr.take() {
            let _ = nix::fcntl::fcntl(
                &e,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            let _ = e.read_to_end(&mut err);
        }
        let err = String::from_utf8_lossy(&err);
        // A Go crash is followed by every goroutine's stack: its first
        // lines say what killed it.
        let head: Vec<&str> = err.trim().lines().take(4).collect();
        let mut why = format!(
            "the target died ({status}); its stderr begins: {:?}",
            head.join(" | ")
        );
        if !copies.is_empty() {
            why += &format!("; a copy of it outlived it, orphaned (killed now): {copies:?}");
            for pid in copies {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        Err(why)
    }

    /// Kills what a fork-mode core may have left of the target: its
    /// children, and copies of it elsewhere. Killing the target alone
    /// would leave a live copy orphaned, forever.
    fn kill_copies(&self) {
        let kids = children(self.pid())
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<i32>().ok())
            .collect::<Vec<_>>();
        for pid in kids.into_iter().chain(self.copies()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Processes other than the target that hold the write end of its
    /// stderr pipe: copies of it (a fork-mode core's `clone`), wherever
    /// they were reparented.
    fn copies(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        let Some(e) = self.fx.child.stderr.as_ref() else {
            return Vec::new();
        };
        let Ok(pipe) = std::fs::read_link(format!("/proc/self/fd/{}", e.as_raw_fd())) else {
            return Vec::new();
        };
        let (me, target) = (std::process::id() as i32, self.pid());
        let mut found = Vec::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me || pid == target {
                continue;
            }
            let holds = std::fs::read_dir(p.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == pipe));
            if holds {
                found.push(pid);
            }
        }
        found
    }

    /// `survived`, as an assertion.
    pub fn assert_survived(&mut self, out: &Path) {
        if let Err(e) = self.survived(out) {
            panic!("{} (pid {}): {e}", self.program.name(), self.pid());
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.kill_copies();
    }
}

/// Starts the program; checks the 4-thread programs have their threads.
fn launch(program: Program, port: &AtomicU16) -> (Fixture, Vec<u8>) {
    let (fx, line) = Fixture::start_line(FLAVOUR, program.name(), &[]);
    match program {
        Program::Server => {
            let p: u16 = line
                .parse()
                .unwrap_or_else(|_| panic!("the server printed {line:?}, not its port"));
            port.store(p, Ordering::Relaxed);
            request(p).expect("the fresh server answers");
        }
        _ => {
            assert_eq!(line, "ready", "{} did not get ready", program.name());
            // The runtime starts threads as goroutines need them: the
            // ticker has its fourth within a moment of "ready", or not.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let threads = loop {
                let n = std::fs::read_dir(format!("/proc/{}/task", fx.pid()))
                    .expect("task dir")
                    .count();
                if n >= 4 || std::time::Instant::now() > deadline {
                    break n;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert!(
                threads >= 4,
                "{} has {threads} threads; the tests want at least 4",
                program.name()
            );
        }
    }
    let text = text_segment(&fx);
    (fx, text)
}

/// Entries of `dir` named like goat's temporary cores (`.NAME.tmp-goatPID-XXXXXX`).
/// How many of `pid`'s descriptors are userfaultfds.
fn userfaultfds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("userfaultfd"))
        })
        .count()
}

pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(".tmp-goat"))
                .collect()
        })
        .unwrap_or_default()
}

/// One `GET /` on a connection of its own.
pub fn request(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    get(&mut BufReader::new(stream))
}

/// One request on a keep-alive connection; reads the whole response.
fn get(conn: &mut BufReader<TcpStream>) -> Result<(), String> {
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut status = String::new();
    conn.read_line(&mut status)
        .map_err(|e| format!("status line: {e}"))?;
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(format!("status line {status:?}"));
    }
    let mut length = None;
    loop {
        let mut header = String::new();
        conn.read_line(&mut header)
            .map_err(|e| format!("header: {e}"))?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0u8; length.ok_or("no Content-Length")?];
    conn.read_exact(&mut body)
        .map_err(|e| format!("body: {e}"))?;
    if !body.starts_with(b"ok ") {
        return Err(format!("body {:?}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// Client threads sending requests back to back (2 ms apart, on keep-alive
/// connections, so that no port runs out) for as long as the value lives.
/// Each follows the port, which changes when the server is restarted.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    const CLIENTS: usize = 3;

    fn start(port: Arc<AtomicU16>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..Load::CLIENTS)
            .map(|_| {
                let (stop, ok, failed, port) =
                    (stop.clone(), ok.clone(), failed.clone(), port.clone());
                std::thread::spawn(move || client(&stop, &ok, &failed, &port))
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }
}

fn client(stop: &AtomicBool, ok: &AtomicU64, failed: &AtomicU64, port: &AtomicU16) {
    let mut conn: Option<(u16, BufReader<TcpStream>)> = None;
    while !stop.load(Ordering::Relaxed) {
        let p = port.load(Ordering::Relaxed);
        if conn.as_ref().is_none_or(|(cp, _)| *cp != p) {
            let addr = SocketAddr::from(([127, 0, 0, 1], p));
            // A target stopped at a breakpoint answers late; 30 s is
            // far more than any stop these tests cause.
            conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .and_then(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    Ok(s)
                })
                .ok()
                .map(|s| (p, BufReader::new(s)));
        }
        let done = conn.as_mut().map(|(_, c)| get(c));
        match done {
            Some(Ok(())) => {
                ok.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            _ => {
                failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
