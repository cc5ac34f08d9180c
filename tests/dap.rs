//! `goat dap` driven by VS Code's own DAP test client
//! (`@vscode/debugadapter-testsupport`, installed by `scripts/test` into
//! tests/dap-client/node_modules): attach to the `ticker` fixture, a
//! breakpoint by source line in a hot loop, the stop, every goroutine as a
//! thread, the stack, scopes, variables, an evaluation, an unknown request
//! answered with an error, and disconnect, after which the program runs on
//! untraced.

mod common;

use std::process::Command;

use common::{assert_untouched, build_fixtures, root, Fixture};

/// The fixture's line carrying `// L:name`.
fn line_of(name: &str) -> u32 {
    let src = std::fs::read_to_string(root().join("tests/fixtures/ticker/main.go"))
        .expect("ticker source");
    let marker = format!("// L:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no {marker} in main.go"))
}

/// Runs tests/dap-client/SCRIPT with goat's path and `args`; what it
/// printed, as JSON.
fn client(script: &str, args: &[String]) -> serde_json::Value {
    let dir = root().join("tests/dap-client");
    assert!(
        dir.join("node_modules/@vscode/debugadapter-testsupport")
            .exists(),
        "the DAP client is not installed: run `npm ci` in {} (scripts/test does)",
        dir.display()
    );
    let out = Command::new("node")
        .arg(dir.join(script))
        .arg(env!("CARGO_BIN_EXE_goat"))
        .args(args)
        .output()
        .expect("node (the DAP client runs on it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {stdout}\n{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// `script` run against the ticker fixture, given its source file and the
/// line marked `tick-a` (for a breakpoint); the fixture, that file and line,
/// and what the script printed.
fn at_tick_a(script: &str) -> (Fixture, std::path::PathBuf, u32, serde_json::Value) {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let file = root().join("tests/fixtures/ticker/main.go");
    let line = line_of("tick-a");
    let seen = client(
        script,
        &[
            fx.pid().to_string(),
            file.display().to_string(),
            line.to_string(),
        ],
    );
    (fx, file, line, seen)
}

#[test]
fn attach_break_stop_threads_stack_variables_and_disconnect() {
    let (fx, file, line, seen) = at_tick_a("attach.js");
    let ctx = seen.to_string();
    assert_eq!(seen["verified"], serde_json::json!([true]), "{ctx}");
    assert_eq!(seen["continuedEvent"], true, "{ctx}");
    assert_eq!(seen["reason"], "breakpoint", "{ctx}");
    assert_eq!(seen["stoppedListed"], true, "{ctx}");
    // main, the ticker, four hot loops, and the runtime's own.
    assert!(seen["threads"].as_u64().unwrap_or(0) >= 6, "{ctx}");
    assert_eq!(seen["top"]["name"], "main.tick", "{ctx}");
    assert_eq!(seen["top"]["path"], file.display().to_string(), "{ctx}");
    assert_eq!(seen["top"]["line"], line, "{ctx}");
    assert_eq!(
        seen["scopes"],
        serde_json::json!(["Arguments", "Locals", "Globals (package main)"]),
        "{ctx}"
    );
    let n = seen["args"][0].as_str().unwrap_or("");
    let n: i64 = n
        .strip_prefix("n=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("argument n: {ctx}"));
    assert_eq!(seen["evaluated"], (n + 1).to_string(), "{ctx}");
    assert!(
        seen["unknown"]
            .as_str()
            .is_some_and(|e| e.contains("does not serve \"noSuchRequest\"")),
        "{ctx}"
    );
    // next, stepOut and continue, each ending in a stop.
    assert_eq!(seen["next"]["reason"], "step", "{ctx}");
    assert_eq!(seen["next"]["threadId"], seen["threadId"], "{ctx}");
    assert_eq!(seen["next"]["name"], "main.tick", "{ctx}");
    assert_eq!(seen["next"]["line"], line_of("tick-b"), "{ctx}");
    assert_eq!(seen["stepOut"]["reason"], "step", "{ctx}");
    assert_eq!(seen["stepOut"]["name"], "main.main.func1", "{ctx}");
    assert_eq!(seen["continued"]["reason"], "breakpoint", "{ctx}");
    assert_eq!(seen["continued"]["line"], line, "{ctx}");
    assert_eq!(seen["disconnected"], true, "{ctx}");
    assert_untouched(fx.pid());
}

/// Thousands of goroutines, every one a thread (Delve caps them at 1,024),
/// then the client dies mid-session, the program stopped at a breakpoint:
/// goat detaches and the program runs on untraced.
/// Goroutines parked in the service fixture of the tests below.
const SERVICE_PARKED: usize = 3000;

/// `script` run against the service fixture with [`SERVICE_PARKED`]
/// goroutines, given its source file and its heartbeat's line (for a
/// breakpoint); the fixture, and what the script printed.
fn on_parked_service(script: &str) -> (Fixture, serde_json::Value) {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "service", &[&SERVICE_PARKED.to_string()]);
    let file = root().join("tests/fixtures/service/main.go");
    let line = heartbeat_line(&file);
    let seen = client(
        script,
        &[
            fx.pid().to_string(),
            file.display().to_string(),
            line.to_string(),
        ],
    );
    (fx, seen)
}

#[test]
fn thousands_of_threads_then_the_client_dies() {
    let (fx, seen) = on_parked_service("vanish.js");
    let ctx = seen.to_string();
    assert_eq!(seen["reason"], "breakpoint", "{ctx}");
    assert!(
        seen["threads"].as_u64().unwrap_or(0) > SERVICE_PARKED as u64,
        "{ctx}"
    );
    assert!(
        seen["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "[sleep] main.heartbeat")
                || n.iter()
                    .any(|n| n.as_str().is_some_and(|n| n.ends_with("main.heartbeat")))),
        "{ctx}"
    );
    goat_ends(&seen, &ctx);
    assert_untouched(fx.pid());
}

/// `threads` while the program runs: thousands of goroutines, not one
/// stopped at a breakpoint, every one listed (twice) from a copy made in
/// a short stop, with no `stopped` event; another request of a running
/// program refused at once; then a pause lists the same goroutines, a
/// later breakpoint is hit, and a disconnect while it runs leaves it
/// untraced.
#[test]
fn threads_while_the_program_runs() {
    let (fx, seen) = on_parked_service("running.js");
    let ctx = seen.to_string();
    let listed = seen["running"].as_array().expect("the running lists");
    assert_eq!(listed.len(), 2, "{ctx}");
    let paused = seen["paused"]["count"].as_u64().unwrap_or(0);
    for l in listed {
        let count = l["count"].as_u64().unwrap_or(0);
        assert!(count > SERVICE_PARKED as u64, "{ctx}");
        assert_eq!(l["ids"], count, "every goroutine once: {ctx}");
        // The service's goroutines neither start nor end once parked.
        assert_eq!(count, paused, "{ctx}");
        let names: Vec<&str> = l["names"]
            .as_array()
            .map(|n| n.iter().filter_map(|n| n.as_str()).collect())
            .unwrap_or_default();
        for parked in ["[chan receive] main.park", "[sync.Mutex.Lock] main.park"] {
            assert!(names.contains(&parked), "{parked}: {ctx}");
        }
        // The parked goroutines' names, which nothing changes (the
        // runtime's own and the heartbeat's move between waits).
        let parked = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|n| n.iter().filter_map(|n| n.as_str()))
                .into_iter()
                .flatten()
                .filter(|n| n.ends_with("main.park"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            parked(&l["names"]),
            parked(&seen["paused"]["names"]),
            "{ctx}"
        );
    }
    assert_eq!(seen["stopsWhileRunning"], serde_json::json!([]), "{ctx}");
    assert!(
        seen["refused"]
            .as_str()
            .is_some_and(|r| r.contains("the program is running")),
        "{ctx}"
    );
    assert_eq!(seen["pause"], "pause", "{ctx}");
    assert_eq!(seen["later"], "breakpoint", "{ctx}");
    assert_untouched(fx.pid());
}

/// The line in the `service` fixture's heartbeat loop, run every
/// millisecond.
fn heartbeat_line(file: &std::path::Path) -> usize {
    let src = std::fs::read_to_string(file).expect("service source");
    src.lines()
        .position(|l| l.trim() == "now := time.Now()")
        .map(|i| i + 1)
        .expect("heartbeat's loop in service/main.go")
}

/// goat (its pid in `seen["goat"]`) saw the end of its input, detached and
/// ended: gone, or a zombie its new parent has not reaped yet.
fn goat_ends(seen: &serde_json::Value, ctx: &str) {
    let goat = seen["goat"].as_i64().expect("goat's pid") as i32;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{goat}/stat")).is_ok_and(|st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    while alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "goat {goat} did not end: {ctx}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A client gone while the program runs with no breakpoint: goat hears
/// the end of its input mid-run, stops the run, detaches and ends; the
/// program runs on untraced (it used to stay traced until a stop).
#[test]
fn a_client_gone_while_the_program_runs_lets_it_go() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let seen = client("vanish.js", &[fx.pid().to_string()]);
    let ctx = seen.to_string();
    assert_eq!(seen["running"], true, "{ctx}");
    goat_ends(&seen, &ctx);
    assert_untouched(fx.pid());
}

/// `pause` stops a program running with no breakpoint: reason `pause`,
/// its goroutines and stacks readable; twice, with a `continue` between;
/// after the disconnect it runs on untraced.
#[test]
fn pause_stops_a_running_program() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let seen = client("pause.js", &[fx.pid().to_string()]);
    let ctx = seen.to_string();
    let pauses = seen["pauses"].as_array().expect("the pauses");
    assert_eq!(pauses.len(), 2, "{ctx}");
    for p in pauses {
        assert_eq!(p["reason"], "pause", "{ctx}");
        assert!(p["threads"].as_u64().unwrap_or(0) >= 2, "{ctx}");
        assert_eq!(p["top"], true, "{ctx}");
    }
    assert_untouched(fx.pid());
}

/// Breakpoints set and cleared while the program runs, as an editor sends
/// them: each is answered while the program runs on (no stop reported for
/// the interrupt that sets it), a line set that way is hit, and what was
/// cleared is gone from goat's own listing.
#[test]
fn breakpoints_change_while_the_program_runs() {
    let (fx, _, line, seen) = at_tick_a("edits.js");
    let ctx = seen.to_string();
    assert_eq!(seen["never"], serde_json::json!([true]), "{ctx}");
    assert_eq!(seen["stopsWhileNever"], 0, "{ctx}");
    assert_eq!(seen["cleared"], 0, "{ctx}");
    assert_eq!(seen["line"], serde_json::json!([true]), "{ctx}");
    assert_eq!(seen["hit"]["reason"], "breakpoint", "{ctx}");
    assert_eq!(
        seen["hit"]["ids"],
        serde_json::json!([seen["lineId"]]),
        "{ctx}"
    );
    assert_eq!(seen["hit"]["name"], "main.tick", "{ctx}");
    assert_eq!(seen["hit"]["line"], line, "{ctx}");
    assert_eq!(seen["paused"], "pause", "{ctx}");
    assert_eq!(
        seen["stops"],
        serde_json::json!(["breakpoint", "pause"]),
        "{ctx}"
    );
    let listed = seen["listed"].as_str().unwrap_or("");
    assert!(listed.contains("unrecovered-panic"), "{ctx}");
    assert!(!listed.contains("main.never"), "{ctx}");
    assert!(!listed.contains(&format!("main.go:{line}")), "{ctx}");
    assert_untouched(fx.pid());
}

/// The Variables pane: a goroutine parked in `main.hold` (the `vars`
/// fixture, built without optimizations so every local is live), paused
/// with no breakpoint, shows its arguments and locals, and one level of
/// children of a struct, a map and a slice; and the Globals scope, the
/// package's variables.
#[test]
fn variables_show_a_struct_a_map_and_a_slice() {
    build_fixtures();
    let fx = Fixture::start("go1.27-noopt", "vars", &[]);
    let seen = client("variables.js", &[fx.pid().to_string()]);
    let ctx = seen.to_string();
    assert_eq!(seen["thread"], "[chan receive] main.hold", "{ctx}");
    assert_eq!(
        seen["scopes"],
        serde_json::json!(["Arguments", "Locals", "Globals (package main)"]),
        "{ctx}"
    );
    // The Globals scope: main's package variables, by their names in it.
    let globals = &seen["globals"];
    assert_eq!(globals["counter"], "42", "{ctx}");
    assert_eq!(globals["gStr"], "\"héllo, world\"", "{ctx}");
    assert_eq!(globals["gYes"], "true", "{ctx}");
    assert!(globals.get("main.counter").is_none(), "{ctx}");
    assert_eq!(
        seen["gSmall"],
        serde_json::json!(["[\"a\"]=1", "[\"b\"]=2", "[\"c\"]=3"]),
        "{ctx}"
    );
    let children = |name: &str| -> Vec<String> {
        seen["vars"][name]["children"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no children: {ctx}"))
            .iter()
            .filter_map(|c| c.as_str().map(String::from))
            .collect()
    };
    assert_eq!(seen["vars"]["name"]["value"], "\"gopher\"", "{ctx}");
    assert_eq!(children("in"), ["Name=\"inner\"", "Count=5"], "{ctx}");
    let mut m = children("m");
    m.sort();
    assert_eq!(m, ["[\"a\"]=1", "[\"b\"]=2", "[\"c\"]=3"], "{ctx}");
    assert_eq!(
        children("msgs"),
        ["[0]=\"zero\"", "[1]=\"one\"", "[2]=\"two\""],
        "{ctx}"
    );
    assert_eq!(children("big").len(), 20, "{ctx}");
    assert_untouched(fx.pid());
}

/// The Debug Console: `evaluate` in the `repl` context runs goat's
/// commands, bare or after `goat `/`dlv `, in the editor's frame (the
/// `vars` fixture's main.hold, paused); expressions still evaluate
/// (`counter`, `flag`: no command names them); a command that runs the
/// program is refused, an unknown word is an expression's error.
#[test]
fn the_debug_console_runs_goat_commands() {
    build_fixtures();
    let fx = Fixture::start("go1.27-noopt", "vars", &[]);
    let seen = client("console.js", &[fx.pid().to_string()]);
    let ctx = seen.to_string();
    let said = |line: &str| seen[line].as_str().unwrap_or("").to_string();
    assert!(
        said("goroutines").contains("chan receive - main.hold (main.go:"),
        "{ctx}"
    );
    assert!(said("goroutines").ends_with("goroutines]"), "{ctx}");
    assert_eq!(said("print in.Name"), "\"inner\"", "{ctx}");
    assert!(said("locals").lines().any(|l| l == "flag = true"), "{ctx}");
    assert!(said("locals").lines().any(|l| l == "ratio = 2.5"), "{ctx}");
    assert!(
        said("dlv args").lines().any(|l| l == "name = \"gopher\""),
        "{ctx}"
    );
    assert!(said("goat stack 3").contains("in runtime.gopark"), "{ctx}");
    assert!(said("goat stack 3").contains("(... "), "{ctx}");
    assert_eq!(said("counter"), "42", "{ctx}");
    assert_eq!(said("flag"), "true", "{ctx}");
    assert!(
        said("continue").starts_with("error: continue is not run from the debug console"),
        "{ctx}"
    );
    assert!(said("nosuchcommand").starts_with("error: "), "{ctx}");
    assert_untouched(fx.pid());
}

/// setVariable, readMemory, disassemble and loadedSources, advertised
/// and served, on the `vars` fixture paused in main.hold: scalars (a
/// local bool and float, a struct's field, a package int and pointer)
/// written and read back, a value of the wrong type refused; memory at
/// the frame's pc (the bytes of the instruction there), an unmapped
/// address all unreadable, a huge count bounded; the instructions around
/// the pc, the call before it the one the console's `disassemble` marks;
/// the binary's source files.
#[test]
fn set_variable_read_memory_disassemble_loaded_sources() {
    build_fixtures();
    let fx = Fixture::start("go1.27-noopt", "vars", &[]);
    let seen = client("code.js", &[fx.pid().to_string()]);
    let ctx = seen.to_string();
    for cap in [
        "supportsSetVariable",
        "supportsReadMemoryRequest",
        "supportsDisassembleRequest",
        "supportsLoadedSourcesRequest",
    ] {
        assert_eq!(seen["caps"][cap], true, "{cap}: {ctx}");
    }
    assert_eq!(seen["flag"]["value"], "false", "{ctx}");
    assert_eq!(seen["ratio"]["value"], "3.5", "{ctx}");
    assert_eq!(seen["count"]["value"], "9", "{ctx}");
    assert_eq!(seen["counter"]["value"], "7", "{ctx}");
    assert_eq!(seen["gNilPtr"]["type"], "*main.Request", "{ctx}");
    assert!(
        seen["ratioBad"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot assign")),
        "{ctx}"
    );
    assert_eq!(
        seen["readBack"],
        serde_json::json!({"flag": "false", "ratio": "3.5", "count": "9", "counter": "7", "ptr": "true"}),
        "{ctx}"
    );
    // Memory at the pc: as many bytes as asked, the instruction's first.
    let pc = seen["pc"].as_str().expect("the frame's pc");
    assert_eq!(seen["memory"]["address"], pc, "{ctx}");
    let bytes = seen["memory"]["bytes"].as_str().unwrap_or("");
    assert_eq!(bytes.len(), 128, "{ctx}");
    assert_eq!(seen["memory"]["unreadable"], 0, "{ctx}");
    assert_eq!(
        seen["unmapped"],
        serde_json::json!({"bytes": 0, "unreadable": 16}),
        "{ctx}"
    );
    let huge = seen["huge"]["bytes"].as_u64().unwrap_or(0)
        + seen["huge"]["unreadable"].as_u64().unwrap_or(0);
    assert_eq!(huge, 1 << 20, "bounded: {ctx}");
    // Five instructions, the third at the pc (a return address), the
    // second the call the console marks.
    let ins = seen["instructions"].as_array().expect("instructions");
    assert_eq!(ins.len(), 5, "{ctx}");
    assert_eq!(ins[2]["address"], pc, "{ctx}");
    let at_pc = ins[2]["instructionBytes"].as_str().unwrap_or("?");
    assert!(bytes.starts_with(at_pc), "{ctx}");
    let call = ins[1]["instruction"].as_str().unwrap_or("?");
    assert!(call.starts_with("call "), "{ctx}");
    let marked = seen["marked"].as_array().expect("the console's mark");
    assert_eq!(marked.len(), 1, "{ctx}");
    let marked = marked[0].as_str().unwrap_or("");
    assert!(marked.ends_with(&format!("\t{call}")), "{ctx}");
    assert!(
        marked.contains(ins[1]["address"].as_str().unwrap_or("?")),
        "{ctx}"
    );
    assert!(
        ins[2]["location"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("tests/fixtures/vars/main.go")),
        "{ctx}"
    );
    let sources: Vec<&str> = seen["sources"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    for file in ["vars/main.go", "vars/globals.go", "runtime/proc.go"] {
        assert!(sources.iter().any(|s| s.ends_with(file)), "{file}: {ctx}");
    }
    assert_untouched(fx.pid());
}

/// An unrecovered panic is a `stopped` event with reason `exception`, on
/// the goroutine that panicked, stopped in the runtime's `fatalpanic`
/// under `main.explode` (as `dlv dap` reports it), and `exceptionInfo`
/// gives the panic's value. Once the client
/// disconnects the program goes on to die of its panic.
#[test]
fn an_unrecovered_panic_is_an_exception() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let mut fx = Fixture::start(flavour, "runctl", &["panic"]);
        let seen = client("panic.js", &[fx.pid().to_string()]);
        let ctx = format!("{flavour}: {seen}");
        assert_eq!(seen["reason"], "exception", "{ctx}");
        let functions: Vec<&str> = seen["functions"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(functions.first(), Some(&"runtime.fatalpanic"), "{ctx}");
        assert!(functions.contains(&"main.explode"), "{ctx}");
        // exceptionInfo: the value main.explode panicked with.
        assert_eq!(seen["exceptionId"], "panic", "{ctx}");
        assert!(
            seen["exceptionDescription"]
                .as_str()
                .is_some_and(|d| d.contains("boom req")),
            "{ctx}"
        );
        let status = fx.child.wait().expect("the program's exit");
        assert_eq!(status.code(), Some(2), "{ctx}: it dies of its panic");
    }
}

/// With the editor's exception filters off (`setExceptionBreakpoints`
/// with none), the panic is no stop: the program dies of it and the
/// session ends (`terminated`).
#[test]
fn exception_filters_off_let_the_panic_through() {
    build_fixtures();
    let mut fx = Fixture::start("go1.27-exe", "runctl", &["panic"]);
    let seen = client("panic.js", &[fx.pid().to_string(), "none".to_string()]);
    assert_eq!(seen["terminated"], true, "{seen}");
    let status = fx.child.wait().expect("the program's exit");
    assert_eq!(status.code(), Some(2), "{seen}: it dies of its panic");
}

/// A core through `launch` mode `core`: stopped where it was written,
/// every goroutine a thread with its stack, and `continue` refused.
#[test]
fn a_core_through_launch_mode_core() {
    build_fixtures();
    let fx = Fixture::start("go1.27-exe", "ticker", &[]);
    let dir = common::scratch_dir("dap-core");
    let core = dir.join("ticker.core");
    common::write_core(fx.pid(), &core);
    let program = fx.path.clone();
    drop(fx);
    let seen = client(
        "core.js",
        &[program.display().to_string(), core.display().to_string()],
    );
    let ctx = seen.to_string();
    assert_eq!(seen["reason"], "entry", "{ctx}");
    assert!(seen["threads"].as_u64().unwrap_or(0) >= 6, "{ctx}");
    assert!(
        seen["functions"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "main.main.func1")),
        "{ctx}"
    );
    assert!(
        seen["continue"]
            .as_str()
            .is_some_and(|c| c.contains("a core file cannot be run")),
        "{ctx}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--listen`: `dlv dap`'s line on stdout, then one client on the socket;
/// a malformed message and a request before `attach` do not end the
/// server; an address that is not loopback is refused.
#[test]
fn listen_serves_one_client_and_refuses_remote_addresses() {
    use std::io::{BufRead, BufReader, Read, Write};

    let out = common::run_goat(&["dap", "--listen=0.0.0.0:0"]);
    let stderr = common::text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is not a loopback address"), "{stderr}");

    let mut child = common::goat()
        .args(["dap", "--listen=127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("goat dap");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the listening line");
    let addr = line
        .trim()
        .strip_prefix("DAP server listening at: ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut send = |body: &str| {
        write!(writer, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("send");
    };
    let mut receive = || -> serde_json::Value {
        let mut len = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("header");
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            if let Some(n) = h.strip_prefix("Content-Length: ") {
                len = n.parse().expect("length");
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("body");
        serde_json::from_slice(&body).expect("JSON")
    };
    send("{not json");
    send(r#"{"seq":1,"type":"request","command":"initialize","arguments":{}}"#);
    let init = receive();
    assert_eq!(init["success"], true, "{init}");
    assert_eq!(init["request_seq"], 1, "{init}");
    send(r#"{"seq":2,"type":"request","command":"threads"}"#);
    let early = receive();
    assert_eq!(early["success"], false, "{early}");
    assert!(
        early["message"]
            .as_str()
            .is_some_and(|m| m.contains("send attach first")),
        "{early}"
    );
    send(r#"{"seq":3,"type":"request","command":"disconnect"}"#);
    assert_eq!(receive()["success"], true);
    let status = child.wait().expect("goat dap's end");
    assert!(status.success(), "{status}");
}
