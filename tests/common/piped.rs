//! A `goat attach` session driven line by line while it runs: commands
//! written when the test decides, Ctrl-C sent to goat, stdout and stderr
//! gathered as they come.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct PipedSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn gather(from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let mut t = s.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    seen
}

impl PipedSession {
    /// `goat attach PID`, nothing typed yet.
    pub fn attach(pid: i32) -> PipedSession {
        let mut child = super::spawn_attach(pid, &[]);
        let stdin = child.stdin.take();
        let stdout = gather(child.stdout.take().expect("stdout"));
        let stderr = gather(child.stderr.take().expect("stderr"));
        PipedSession {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Types `lines` (each ends with a newline).
    pub fn send(&mut self, lines: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(lines.as_bytes()).expect("write to goat");
        stdin.flush().expect("flush");
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `patience` for goat's stdout to contain `text`.
    pub fn wait_stdout(&self, text: &str, patience: Duration) {
        let end = Instant::now() + patience;
        while !self.stdout().contains(text) {
            assert!(
                Instant::now() < end,
                "goat never printed {text:?}\n--- stdout:\n{}\n--- stderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ctrl-C, as a terminal sends it to goat.
    pub fn interrupt(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT goat");
    }

    /// `kill -9` of goat (its tracer process lives on).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits up to `patience` for goat to exit: its status
    /// and all it wrote.
    pub fn finish(mut self, patience: Duration) -> (ExitStatus, String, String) {
        self.stdin = None;
        let end = Instant::now() + patience;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for goat") {
                break st;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "goat did not exit\n--- stdout:\n{}\n--- stderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The readers end with the pipes.
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stdout(), self.stderr())
    }
}

impl Drop for PipedSession {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Children of `pid` (zombies included) that are still there 300 ms
/// later: a program that starts short-lived children always has some for
/// a moment.
pub fn lasting_children(pid: i32) -> Vec<String> {
    let first = super::children(pid);
    std::thread::sleep(Duration::from_millis(300));
    let pid_of = |l: &String| l.split_whitespace().nth(1).map(str::to_string);
    let earlier: Vec<String> = first.iter().filter_map(pid_of).collect();
    super::children(pid)
        .into_iter()
        .filter(|l| pid_of(l).is_some_and(|p| earlier.contains(&p)))
        .collect()
}
