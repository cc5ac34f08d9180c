//! `call`: functions of a live program called through the Go runtime's
//! debugger-call protocol, on every supported release, optimized and
//! `-N -l`. The callee fixture calls each function itself first and logs
//! what it returned; the values a call prints are compared with those. The
//! program checks its own work (main.handle's result) and exits loudly if
//! a call ever disturbed the goroutine it was made on.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    assert_untouched, attach_with_stdin, build_fixtures, goat, goat_with_stdin, text, text_segment,
    Fixture,
};

const RELEASES: [&str; 4] = ["go1.19", "go1.21", "go1.24", "go1.27"];

/// Every release, optimized and built with `-N -l`.
fn flavours() -> Vec<String> {
    RELEASES
        .iter()
        .flat_map(|r| [format!("{r}-exe"), format!("{r}-noopt")])
        .collect()
}

/// A running callee fixture and the log it writes.
struct Callee {
    fx: Fixture,
    log: PathBuf,
    dir: PathBuf,
}

impl Callee {
    fn start(flavour: &str, tag: &str) -> Callee {
        let dir = common::scratch_dir(&format!("call-{tag}-{flavour}"));
        let log = dir.join("log");
        let fx = Fixture::start(flavour, "callee", &[log.to_str().unwrap()]);
        Callee { fx, log, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first value logged after `key ` (the rest of that line).
    fn logged(&self, key: &str) -> String {
        let log = self.log();
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in the log:\n{log}"))
            .to_string()
    }

    /// A `goat attach` session (stdout read into the returned buffer) that
    /// has stopped at `main.handle` and is calling `main.nap(ms)`: returned
    /// once the nap has begun, so the call is under way.
    fn session_mid_nap(&self, ms: u32) -> (std::process::Child, std::process::ChildStdin) {
        let started = self.count(&format!("napping {ms}"));
        let mut g = goat()
            .args(["attach", &self.fx.pid().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start goat");
        let seen = reader(g.stdout.take().unwrap());
        let mut stdin = g.stdin.take().unwrap();
        stdin
            .write_all(b"break main.handle\ncontinue\n")
            .expect("write");
        wait_for("the breakpoint", Duration::from_secs(10), || {
            seen.lock().unwrap().contains("> [goroutine")
        });
        stdin
            .write_all(format!("call main.nap({ms})\n").as_bytes())
            .expect("write");
        wait_for("the call to start", Duration::from_secs(10), || {
            self.count(&format!("napping {ms}")) == started + 1
        });
        (g, stdin)
    }

    fn count(&self, line: &str) -> usize {
        self.log().lines().filter(|l| *l == line).count()
    }

    /// The last request the worker finished.
    fn last_handled(&self) -> u64 {
        self.log()
            .lines()
            .filter_map(|l| l.strip_prefix("handled ")?.parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// The program runs on as it should: the worker finishes new requests,
    /// one after the other, and never saw a wrong result.
    fn assert_runs_normally(&self, ctx: &str) {
        let before = self.last_handled();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.last_handled() < before + 3 {
            assert!(
                Instant::now() < deadline,
                "the worker stopped working: {ctx}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        assert!(!log.contains("corrupt"), "{ctx}\n{log}");
        let handled: Vec<u64> = log
            .lines()
            .filter_map(|l| l.strip_prefix("handled ")?.parse().ok())
            .collect();
        assert!(
            handled.windows(2).all(|w| w[1] == w[0] + 1),
            "requests handled out of turn: {ctx}\n{log}"
        );
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `\t~rN: VALUE` lines of a session's output, in order.
fn returned(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix('\t'))
        .filter(|l| l.starts_with('~'))
        .map(str::to_string)
        .collect()
}

/// Calls with string, slice, struct and interface arguments, several
/// results, a string literal and a boxed constant, the seed's
/// `os.WriteFile` export, a panic, the runtime's refusal inside the
/// runtime, and bad input; after each session the program is as it was.
#[test]
fn calls_return_what_the_program_computes() {
    build_fixtures();
    for flavour in flavours() {
        let c = Callee::start(&flavour, "values");
        let pid = c.fx.pid();
        let before = text_segment(&c.fx);
        let raw = c.dir.join("x.raw");
        let script = format!(
            "break main.handle\n\
             continue\n\
             regs\n\
             call main.greet(\"x\", 1)\n\
             regs\n\
             call main.summarize(main.greeting, main.payload, main.pair, main.boxed)\n\
             call main.triple(5, \"ab\")\n\
             call main.describe(42)\n\
             call main.greet(\"gopher\", 2)\n\
             print in.ID\n\
             call os.WriteFile(\"{raw}\", in.Name, 0644)\n\
             call main.boom(\"bad\")\n\
             call main.greeting(1)\n\
             call main.nap()\n\
             call main.handle(1)\n\
             call main.describe(main.nosuch)\n\
             call main.nap(1\n\
             clearall\n\
             break runtime.convT64\n\
             continue\n\
             call main.nap(1)\n\
             clearall\n\
             quit\n",
            raw = raw.display()
        );
        let out = attach_with_stdin(pid, &[], &script);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        assert!(out.status.success(), "{ctx}");
        let got = returned(&stdout);
        // summarize: what the program printed with %q, %d and %v.
        let s = c.logged("summarize");
        let (head, float) = s.rsplit_once(' ').expect("summarize line");
        let (quoted, int) = head.rsplit_once(' ').expect("summarize line");
        let t = c.logged("triple");
        let t: Vec<&str> = t.split(' ').collect();
        let want = [
            "~r0: \"hi x;\"".to_string(),
            format!("~r0: {quoted}"),
            format!("~r1: {int}"),
            format!("~r2: {float}"),
            // A struct in registers, an array on the stack, a float32.
            format!("~r0: main.Pair {{A: {}, B: {}}}", t[0], t[1]),
            format!("~r1: [2]int [{},{}]", t[2], t[3]),
            format!("~r2: {}", t[4]),
            format!("~r0: {}", c.logged("describe")),
            format!("~r0: {}", c.logged("greet")),
            "~r0: error nil".to_string(),
            "~panic: interface {}(string) \"boom: bad\"".to_string(),
        ];
        assert_eq!(got, want, "{ctx}");
        // The export holds the request's bytes, as the program logged them.
        let id: u64 = stdout
            .lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no in.ID printed: {ctx}"));
        let bytes = std::fs::read(&raw).unwrap_or_else(|e| panic!("{}: {e}: {ctx}", raw.display()));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(c.logged(&format!("name {id}")), hex, "{ctx}");
        assert!(stdout.contains("The call panicked:"), "{ctx}");
        // The goroutine's registers after a call are those before it (the
        // thread's own TLS base aside: on Go 1.19 it may be another thread).
        let regs: Vec<&str> = stdout
            .lines()
            .map(str::trim)
            .filter(|l| {
                let name = l.split(' ').next().unwrap_or("");
                l.contains(" = 0x") && !matches!(name, "Fs_base" | "Gs_base" | "Fs" | "Cs" | "Ss")
            })
            .collect();
        assert_eq!(regs.len(), 2 * 19, "{ctx}");
        assert_eq!(regs[..19], regs[19..], "registers after a call: {ctx}");
        // Bad input: one error line each; then the runtime's refusal.
        let errors = common::error_lines(&stderr);
        assert_eq!(errors.len(), 6, "{ctx}");
        assert!(
            errors[0].contains("main.greeting is not a function"),
            "{ctx}"
        );
        assert!(
            errors[1].contains("main.nap takes 1 argument, not 0"),
            "{ctx}"
        );
        assert!(
            errors[2].contains("cannot use untyped int as *main.Request"),
            "{ctx}"
        );
        assert!(
            errors[5]
                .contains("the runtime refused to call main.nap: call from within the Go runtime"),
            "{ctx}"
        );
        assert_untouched(pid);
        assert!(
            text_segment(&c.fx) == before,
            "an int3 left in the text: {ctx}"
        );
        c.assert_runs_normally(&ctx);
    }
}

/// A pointer into a goroutine's stack is refused, as Delve refuses it
/// (the function could keep it); `-unsafe` passes it. Built with `-N -l`,
/// where the worker's `seq` has an address (optimized, it is in a register).
#[test]
fn unsafe_passes_a_pointer_into_a_stack() {
    build_fixtures();
    for r in RELEASES {
        let flavour = format!("{r}-noopt");
        let c = Callee::start(&flavour, "unsafe");
        let pid = c.fx.pid();
        let script = "break main.handle\ncontinue\nframe 1 print seq\nframe 1\n\
                      call main.peek(&seq)\ncall -unsafe main.peek(&seq)\nclearall\nquit\n";
        let out = attach_with_stdin(pid, &[], script);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let ctx = format!("{flavour}:\n{stdout}\n---\n{stderr}");
        let seq: u64 = stdout
            .lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no seq printed: {ctx}"));
        let errors = common::error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{ctx}");
        assert!(
            errors[0].contains("points into a goroutine's stack"),
            "{ctx}"
        );
        assert_eq!(returned(&stdout), [format!("~r0: {seq}")], "{ctx}");
        assert_untouched(pid);
        c.assert_runs_normally(&ctx);
    }
}

/// A core cannot run anything: one line says so.
#[test]
fn a_core_refuses_calls() {
    build_fixtures();
    let c = Callee::start("go1.24-exe", "core");
    let pid = c.fx.pid();
    let core = c.dir.join("core");
    common::write_core(pid, &core);
    assert_untouched(pid);
    let out = goat_with_stdin(
        &["debug", core.to_str().unwrap()],
        "call main.nap(1)\nprint main.pair.A\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{stdout}\n---\n{stderr}");
    let errors = common::error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{ctx}");
    assert!(errors[0].contains("this session is a core file"), "{ctx}");
    assert_eq!(
        stdout.lines().last(),
        Some("7"),
        "the session goes on: {ctx}"
    );
    assert_eq!(c.count("napping 1"), 1, "nothing was called: {ctx}");
}

/// Reads a goat's stdout on a thread; the lines seen so far.
fn reader(stdout: std::process::ChildStdout) -> std::sync::Arc<std::sync::Mutex<String>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut t = s.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    seen
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `kill -9` of goat while the called function sleeps, 20 times over the
/// releases: the tracer lets the call finish and puts the goroutine back,
/// so the program runs on untraced, with no int3 in its text, and the
/// worker the call was made on goes on with its requests.
#[test]
fn kill_during_a_call_leaves_the_program_running() {
    build_fixtures();
    let all = flavours();
    let mut trial = 0;
    for (i, flavour) in all.iter().enumerate() {
        let trials = if i < 4 { 3 } else { 2 };
        let c = Callee::start(flavour, "kill");
        let pid = c.fx.pid();
        let before = text_segment(&c.fx);
        for _ in 0..trials {
            trial += 1;
            let ctx = format!("trial {trial} ({flavour})");
            let napped = c.count("napped 800");
            // Mid-call: the function has begun its sleep, which lasts far
            // longer than the pause below even on a loaded machine.
            let (mut g, _stdin) = c.session_mid_nap(800);
            std::thread::sleep(Duration::from_millis((trial as u64 * 37) % 150));
            assert_eq!(
                c.count("napped 800"),
                napped,
                "{ctx}: the kill came too late"
            );
            let _ = g.kill();
            let _ = g.wait();
            // The tracer finishes the call, then detaches.
            wait_for("the call to end", Duration::from_secs(10), || {
                c.count("napped 800") == napped + 1
            });
            assert_untouched(pid);
            assert!(
                text_segment(&c.fx) == before,
                "an int3 left in the text: {ctx}"
            );
            c.assert_runs_normally(&ctx);
        }
    }
    assert_eq!(trial, 20);
}

/// SIGTERM to goat during a call longer than the tracer's usual patience
/// with a detach (3 s): the tracer waits for the call to end instead, so
/// the program survives it.
#[test]
fn sigterm_during_a_long_call_waits_for_it() {
    build_fixtures();
    let c = Callee::start("go1.24-exe", "sigterm");
    let pid = c.fx.pid();
    let before = text_segment(&c.fx);
    let (mut g, _stdin) = c.session_mid_nap(4000);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .expect("SIGTERM");
    let _ = g.wait();
    wait_for("the call to end", Duration::from_secs(15), || {
        c.count("napped 4000") == 1
    });
    assert_untouched(pid);
    assert!(text_segment(&c.fx) == before, "an int3 left in the text");
    c.assert_runs_normally("after SIGTERM");
}
