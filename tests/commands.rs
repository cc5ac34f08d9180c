//! Delve's command forms over `goat attach` on live fixtures: prefixed
//! commands (`frame N CMD`, `up N CMD`, `goroutine N frame M CMD`), the
//! `goroutines` flags, `stack -full`, `next N` and `continue LOCATION`.
//! Every session must leave the program as it found it.

mod common;

use std::collections::BTreeMap;

use common::traceback::{self, Block};
use common::{assert_untouched, attach_with_stdin, build_fixtures, run_goat, text, Fixture};

/// The goroutine blocks of `goat stacks PID`.
fn stacks(pid: i32) -> BTreeMap<u64, Block> {
    let out = run_goat(&["stacks", &pid.to_string()]);
    assert!(out.status.success(), "goat stacks: {}", text(&out.stderr));
    traceback::parse(&text(&out.stdout))
}

/// The goroutine with `func` on its stack, and that frame's number.
fn parked_in(blocks: &BTreeMap<u64, Block>, func: &str) -> (u64, usize) {
    blocks
        .values()
        .find_map(|b| Some((b.id, b.frames.iter().position(|f| f.0 == func)?)))
        .unwrap_or_else(|| panic!("no goroutine in {func}"))
}

/// (stdout, stderr) of a piped session running `script`, which must end well.
fn session(pid: i32, script: &str) -> (String, String) {
    let out = attach_with_stdin(pid, &[], script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n---\n{stderr}");
    (stdout, stderr)
}

/// Goroutine ids of `goroutines` lines (`  Goroutine 12 - ...`, `*` marks
/// the current one; a group's lines start with a tab).
fn listed(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| {
            l.trim_start_matches('\t')
                .get(2..)?
                .strip_prefix("Goroutine ")
        })
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn prefixed_commands_run_elsewhere_and_keep_the_selection() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let before = stacks(pid);
    let (send, depth) = parked_in(&before, "main.chanSend");
    let (recv, _) = parked_in(&before, "main.chanReceive");
    let script = format!(
        "gr {recv}\n\
         goroutine {send} frame {depth} p ch\n\
         frame\n\
         gr {send}\n\
         frame {depth} list\n\
         frame {depth} p ch\n\
         up {depth} args\n\
         frame\n\
         frame 999 list\n\
         frame x list\n\
         up 99999999999999999999999 locals\n\
         goroutine 999999 bt\n\
         gr\n"
    );
    let (stdout, stderr) = session(pid, &script);
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    // p ch three times over (goroutine prefix, frame prefix, up's locals).
    assert_eq!(
        stdout.matches("chan int {len: 0, cap: 0").count(),
        3,
        "{ctx}"
    );
    // Neither prefixed form moved the selection: frame 0 both times.
    assert_eq!(stdout.matches("Frame 0: ").count(), 2, "{ctx}");
    assert!(
        stdout.contains("started.Done(); ch <- 1"),
        "frame N list shows chanSend's source: {ctx}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("* Goroutine {send} "))
                || l.starts_with(&format!("Goroutine {send} "))),
        "gr after the prefixed commands is still {send}: {ctx}"
    );
    for want in [
        "there is no frame 999",
        "\"x\" is not a frame number",
        "is not a number of frames",
        "no goroutine 999999",
    ] {
        assert!(stderr.contains(want), "{want}: {ctx}");
    }
}

#[test]
fn goroutines_flags_mean_what_they_mean_in_delve() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let before = stacks(pid);
    let (send, _) = parked_in(&before, "main.chanSend");
    let runtime_only: Vec<u64> = before
        .values()
        .filter(|b| b.frames.iter().all(|f| f.0.starts_with("runtime.")))
        .map(|b| b.id)
        .collect();
    assert!(!runtime_only.is_empty(), "a GC or finalizer goroutine");
    let script = [
        "grs -r",
        "grs -g -with userloc main.chanSend",
        "grs -s -with user",
        "grs -without user",
        "grs -status \"chan send\" -t 2",
        "grs -group user",
        "grs -with running",
        "grs -with userloc main.chanSend -exec bt 1",
        "grs -with userloc main.chanSend -exec grs -exec bt",
        "grs -bogus",
        "grs -with nowhere x",
        "grs -group label",
        "grs -u -r",
    ]
    .join("\n");
    let (stdout, stderr) = session(pid, &format!("{script}\n"));
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    // Each listing ends with its count, singular for one.
    let counted = stdout.replace(" goroutine]\n", " goroutines]\n");
    let parts: Vec<&str> = counted.split(" goroutines]\n").collect();
    // -r: the innermost frame, which for a parked goroutine is the runtime's.
    assert!(parts[0].contains("Runtime: runtime.gopark"), "{ctx}");
    // -g with a filter: just the sender, shown where main.main started it.
    assert_eq!(listed(parts[1]), [send], "{ctx}");
    assert!(parts[1].contains("Go: main.main"), "{ctx}");
    // -s -with user: start functions, none of them the runtime's (but
    // runtime.main, the main goroutine's); -without user: the others.
    let user = listed(parts[2]);
    assert!(user.contains(&send) && user.contains(&1), "{ctx}");
    assert!(parts[2].contains("Start: runtime.main"), "{ctx}");
    let system = listed(parts[3]);
    for id in &runtime_only {
        assert!(system.contains(id) && !user.contains(id), "{id}: {ctx}");
    }
    // -status (goat's) and -t DEPTH.
    assert_eq!(listed(parts[4]), [send], "{ctx}");
    assert!(parts[4].contains("(... "), "a depth-2 stack: {ctx}");
    // -group user: two groups with their totals.
    assert!(
        parts[5].contains("user=true\n") && parts[5].contains("user=false\n"),
        "{ctx}"
    );
    assert!(
        parts[5].contains(&format!("\tTotal: {}\n", user.len())),
        "{ctx}"
    );
    // -exec: the command ran on the sender.
    assert!(
        stdout.contains(&format!("Goroutine {send}:\n0  0x")),
        "{ctx}"
    );
    for want in [
        "unknown argument \"-bogus\"",
        "not \"nowhere\"",
        "-group label needs a KEY",
        "only one of -u -r -g -s",
    ] {
        assert!(stderr.contains(want), "{want}: {ctx}");
    }
    assert_eq!(stderr.matches("error: ").count(), 4, "{ctx}");
    // A nested -exec is refused per goroutine, in the output.
    assert!(
        stdout.contains("error: goroutines -exec cannot run inside another"),
        "{ctx}"
    );
}

#[test]
fn stack_full_prints_each_frames_variables() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let (send, depth) = parked_in(&stacks(pid), "main.chanSend");
    let (stdout, stderr) = session(
        pid,
        &format!(
            "gr {send}\nstack -full\nbt {} -full\nbt -full -x\n",
            depth + 1
        ),
    );
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    let ch = "    ch = chan int {len: 0, cap: 0";
    assert_eq!(stdout.matches(ch).count(), 2, "{ctx}");
    assert!(stdout.contains(&format!("{depth}  0x")), "{ctx}");
    assert!(stderr.contains("usage: stack [DEPTH] [-full]"), "{ctx}");
}

#[test]
fn next_n_and_continue_to_a_location() {
    build_fixtures();
    let fx = Fixture::start("go1.27-noopt", "ticker", &[]);
    let pid = fx.pid();
    let src = std::fs::read_to_string(common::root().join("tests/fixtures/ticker/main.go"))
        .expect("ticker source");
    let line_of = |marker: &str| {
        src.lines()
            .position(|l| l.trim_end().ends_with(&format!("// L:{marker}")))
            .map(|i| i as u32 + 1)
            .expect("marker")
    };
    let (stdout, stderr) = session(
        pid,
        "continue main.tick\nnext 2\nnext 0\nstep many\nc main.helper\nbreakpoints\nc main.nosuch\nquit\n",
    );
    let ctx = format!("{stdout}\n---\n{stderr}");
    let lines: Vec<u32> = stdout
        .lines()
        .filter(|l| l.starts_with("> [goroutine "))
        .filter_map(|l| {
            l.split_whitespace()
                .nth(4)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    // Stopped in tick, then two lines on (each stop shown), then in helper.
    assert_eq!(lines.len(), 4, "{ctx}");
    assert_eq!(lines[2], line_of("tick-b"), "{ctx}");
    assert!(
        stdout.contains("> [goroutine ") && stdout.contains("main.helper() "),
        "{ctx}"
    );
    // The breakpoints of `continue LOCATION` were for that run only.
    // (`breakpoints` lists only the two goat sets at attach, -1 and -2.)
    let listed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Breakpoint ") && l.contains(" at 0x"))
        .filter(|l| !l.contains(" set at ") && !l.contains(" cleared at "))
        .collect();
    assert_eq!(listed.len(), 2, "{ctx}");
    assert!(
        listed
            .iter()
            .all(|l| l.contains(" -1 at ") || l.contains(" -2 at ")),
        "{ctx}"
    );
    for want in [
        "next: \"0\" is not a count",
        "step: \"many\" is not a count",
        "no function, file or line \"main.nosuch\"",
    ] {
        assert!(stderr.contains(want), "{want}: {ctx}");
    }
    drop(fx);
}

#[test]
fn inspection_commands_scripts_transcripts_and_config() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let dir = common::scratch_dir("commands-inspect");
    let main_go = common::root().join("tests/fixtures/states/main.go");
    let src = std::fs::read_to_string(&main_go).expect("states source");
    let go_line = src
        .lines()
        .position(|l| l.contains("go chanSend(make(chan int))"))
        .expect("the go statement") as u32
        + 1;
    // A copy of the source under another directory, for substitute-path.
    let moved = dir.join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::write(
        moved.join("main.go"),
        src.replace("ch <- 1", "ch <- 1 // MOVED"),
    )
    .unwrap();
    // Where the binary says its source is (the fixture may have been
    // built in another checkout).
    let blocks = stacks(pid);
    let (send, depth) = parked_in(&blocks, "main.chanSend");
    let built = blocks[&send].frames[depth].1.clone();
    let built_main = built.clone();
    let build_dir = built.rsplit_once('/').expect("a directory").0.to_string();
    let script = dir.join("script.goat");
    std::fs::write(
        &script,
        "# a comment\n\nfuncs ^main\\.chanSend$\nbogus\nsources states/main\n",
    )
    .unwrap();
    let transcript = dir.join("transcript.txt");
    let core = dir.join("dump.core");
    let (stdout, stderr) = session(
        pid,
        &format!(
            "funcs ^main\\.chan\n\
             types ^main\\.server$\n\
             vars ^main\\.mu$\n\
             libraries\n\
             list main.main:{go_line}\n\
             config substitute-path {build_dir} {moved}\n\
             config -list\n\
             config source-list-line-count 1\n\
             list main.chanSend\n\
             config substitute-path -clear\n\
             source {script}\n\
             transcript -t {transcript}\n\
             funcs ^main\\.lockRead$\n\
             transcript -off\n\
             funcs ^main\\.condWait$\n\
             dump {core}\n\
             edit\n\
             funcs (\n\
             config bogus 1\n\
             dump\n\
             list main.nosuch:3\n\
             help funcs\n",
            script = script.display(),
            transcript = transcript.display(),
            core = core.display(),
            moved = moved.display(),
        ),
    );
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert_untouched(pid);
    assert!(
        stdout.contains("main.chanReceive\nmain.chanSend\n"),
        "funcs: {ctx}"
    );
    assert!(stdout.contains("\nmain.server\n"), "types: {ctx}");
    assert!(stdout.contains("main.mu = sync.Mutex {"), "vars: {ctx}");
    assert!(stdout.contains("libc.so"), "libraries: {ctx}");
    assert!(
        stdout.contains(&format!("{go_line}:\t\tgo chanSend(make(chan int))")),
        "list FUNC:LINE: {ctx}"
    );
    assert!(
        stdout.contains(&format!("Showing {built_main}:{go_line}")),
        "{ctx}"
    );
    // substitute-path: the moved copy was read, one line either side.
    assert!(stdout.contains("ch <- 1 // MOVED"), "{ctx}");
    assert!(stdout.contains("substitute-path        "), "{ctx}");
    // The script: comments skipped, a bad line reported, the rest run.
    assert!(stdout.contains("main.chanSend\n"), "{ctx}");
    assert!(stdout.contains("error: bogus: unknown command"), "{ctx}");
    assert!(
        stdout.contains("/tests/fixtures/states/main.go\n"),
        "sources: {ctx}"
    );
    // The transcript has what ran while it was on, and only that.
    let tr = std::fs::read_to_string(&transcript).expect("transcript");
    assert!(tr.contains("main.lockRead\n"), "{tr}");
    assert!(!tr.contains("condWait"), "{tr}");
    assert!(stdout.contains("main.condWait\n"), "{ctx}");
    assert!(
        common::exists(&core),
        "dump wrote {}: {ctx}",
        core.display()
    );
    for want in [
        "edit: ",
        "bad regular expression \"(\": unclosed group",
        "unknown setting or wrong arguments \"bogus\"",
        "usage: dump [-f] FILE",
        "list: no function or source file \"main.nosuch\"",
    ] {
        assert!(stderr.contains(want), "{want}: {ctx}");
    }
    assert!(stdout.contains("Usage: funcs [REGEX]"), "{ctx}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn on_a_core_the_new_commands_work_or_say_why_not() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let dir = common::scratch_dir("commands-core");
    let core = dir.join("states.core");
    common::write_core(fx.pid(), &core);
    let (send, depth) = parked_in(&stacks(fx.pid()), "main.chanSend");
    drop(fx);
    let script = format!(
        "goroutine {send} frame {depth} p ch\n\
         grs -with userloc main.chanSend\n\
         gr {send}\n\
         bt -full\n\
         funcs ^main\\.chanSend$\n\
         vars ^main\\.mu$\n\
         libraries\n\
         next 2\n\
         continue main.main\n\
         dump {}\n\
         quit\n",
        dir.join("again.core").display()
    );
    let out = common::goat_with_stdin(&["debug", core.to_str().unwrap()], &script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("{stdout}\n---\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    assert!(stdout.contains("chan int {len: 0, cap: 0"), "{ctx}");
    assert_eq!(listed(&stdout), [send], "{ctx}");
    assert!(stdout.contains("    ch = chan int {"), "{ctx}");
    assert!(stdout.contains("main.chanSend\n"), "{ctx}");
    assert!(stdout.contains("main.mu = sync.Mutex {"), "{ctx}");
    assert!(stdout.contains("libc.so"), "{ctx}");
    // Execution needs a live process: one line each, the session goes on.
    assert_eq!(
        stderr.matches("error: a core file cannot be run").count(),
        2,
        "{ctx}"
    );
    assert!(
        stderr.contains("error: this session is a core file"),
        "{ctx}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `source -` reads the rest of a piped session's input as its script.
/// goat held stdin's lock (which is not reentrant) while a command ran, so
/// `source -` waited on it forever with the target stopped; the session
/// must now end by itself, bounded here so a regression fails, not hangs.
#[test]
fn source_dash_reads_the_rest_of_piped_input() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let mut child = common::spawn_attach(fx.pid(), &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"p 1+1\nsource -\np 2+2\np 3+3\n").unwrap();
    drop(stdin);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the session did not end: source - hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let values: Vec<&str> = stdout
        .lines()
        .filter(|l| ["2", "4", "6"].contains(l))
        .collect();
    assert_eq!(
        values,
        ["2", "4", "6"],
        "{stdout}\n---\n{}",
        text(&out.stderr)
    );
    assert_untouched(fx.pid());
}

/// `list` takes Delve's relative, address and regex locations: `+N` and
/// `-N` from the selected frame's line, `*ADDR` (that address's line) and
/// `/REGEX/` (the one function matching; several is an error naming them).
#[test]
fn list_takes_relative_address_and_regex_locations() {
    build_fixtures();
    let fx = Fixture::start("go1.27-pie", "states", &[]);
    let pid = fx.pid();
    let blocks = stacks(pid);
    let (recv, depth) = parked_in(&blocks, "main.chanReceive");
    let frame = format!("gr {recv}\nframe {depth}\n");
    let (out, _) = session(pid, &frame);
    // `Frame N: main.chanReceive at FILE:LINE (PC: 0x...)`
    let at = out
        .lines()
        .find(|l| l.starts_with("Frame "))
        .unwrap_or_else(|| panic!("no frame line in {out}"));
    let (file_line, pc) = at
        .split_once(" at ")
        .and_then(|(_, r)| r.split_once(" (PC: "))
        .unwrap_or_else(|| panic!("{at}"));
    let pc = pc.trim_end_matches(')');
    let (file, line) = file_line.rsplit_once(':').unwrap();
    let line: u32 = line.parse().unwrap();
    let (stdout, stderr) = session(
        pid,
        &format!(
            "{frame}list +2\nlist -3\nlist *{pc}\nlist /chanRecei/\nlist /^main\\./\nlist -99999\n"
        ),
    );
    let shown: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Showing "))
        .collect();
    assert_eq!(shown.len(), 4, "{stdout}\n---\n{stderr}");
    assert_eq!(shown[0], format!("{file}:{}", line + 2));
    assert_eq!(shown[1], format!("{file}:{}", line - 3));
    assert!(shown[2].starts_with(&format!("{file}:")), "{}", shown[2]);
    assert!(shown[3].starts_with(&format!("{file}:")), "{}", shown[3]);
    assert!(
        stderr.contains("matches") && stderr.contains("make it match one"),
        "{stderr}"
    );
    assert!(stderr.contains("before the start"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        2,
        "{stderr}"
    );
    assert_untouched(pid);
}
