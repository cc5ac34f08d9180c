//! `goat dap`: the Debug Adapter Protocol front end over the session
//! engine (`session/`), with the contract VS Code's Go extension uses for
//! `dlv dap`: on stdin/stdout, or on one client of
//! `--listen=127.0.0.1:PORT`. Imports nothing of `repl/`.
//!
//! - `wire.rs`: the framing and the shapes of responses and events;
//! - `running.rs`: what a request that comes while the program runs does;
//! - `errors.rs`: an error as the one line a response carries;
//! - `server.rs`: an attached session's requests, as engine calls.
//!
//! Before `attach` only `initialize` and `disconnect` are served; `attach`
//! (mode `local`, `processId`) attaches as `goat attach` does, and the
//! target runs on untouched when the client disconnects or goes away;
//! `launch` with mode `core` (`program`, `coreFilePath`) opens a core as
//! `goat debug` does.

mod breakpoints;
mod code;
mod errors;
mod running;
mod server;
pub mod wire;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};

use serde_json::{json, Value};

use crate::inspect::{Inspector, OpenOptions, Warning};
use crate::session::{Session, TextCommands};
use errors::error_text;
use server::{End, Server};
use wire::{Conn, WireError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DapError {
    #[error(
        "{0} is not a loopback address: this server can ptrace processes, so anyone who \
         reaches it can; give --allow-remote to listen there anyway"
    )]
    Remote(SocketAddr),
    #[error("listening at {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Listens at `addr`, says where on stdout as `dlv dap` does, and serves
/// one client.
pub fn listen(
    addr: SocketAddr,
    allow_remote: bool,
    commands: &dyn TextCommands,
) -> Result<(), DapError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(DapError::Remote(addr));
    }
    let listener = TcpListener::bind(addr).map_err(|source| DapError::Listen { addr, source })?;
    let at = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "DAP server listening at: {at}")?;
    stdout.flush()?;
    let (stream, _) = listener.accept()?;
    let reader = BufReader::new(stream.try_clone()?);
    serve(Conn::new(Box::new(reader), Box::new(stream)), commands);
    Ok(())
}

/// Serves DAP on stdin and stdout.
pub fn stdio(commands: &dyn TextCommands) {
    let reader = BufReader::new(std::io::stdin());
    serve(
        Conn::new(Box::new(reader), Box::new(std::io::stdout())),
        commands,
    );
}

/// Serves one client until it disconnects or goes away; `commands` are
/// what the debug console runs (the REPL's, handed over by `main.rs`).
fn serve(mut conn: Conn, commands: &dyn TextCommands) {
    loop {
        let req = match conn.read() {
            Ok(req) => req,
            Err(WireError::NotJson(_)) => continue,
            Err(_) => return,
        };
        let sent = match req["command"].as_str().unwrap_or("") {
            "initialize" => conn.respond(&req, json!({"supportsConfigurationDoneRequest": true})),
            "disconnect" => {
                let _ = conn.respond(&req, json!({}));
                return;
            }
            "attach" => {
                attach(&mut conn, &req, commands);
                return;
            }
            "launch" => {
                launch_core(&mut conn, &req, commands);
                return;
            }
            other => conn.fail(
                &req,
                &format!("{other:?} needs an attached process: send attach first"),
            ),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// `attach`: opens the process, answers, and serves the session until it
/// ends; the target is then detached from (and killed only if the client
/// asked with `terminateDebuggee`).
fn attach(conn: &mut Conn, req: &Value, commands: &dyn TextCommands) {
    let args = &req["arguments"];
    let mode = args["mode"].as_str().unwrap_or("local");
    if mode != "local" {
        let _ = conn.fail(
            req,
            &format!("attach mode {mode:?}: goat attaches in mode \"local\""),
        );
        return;
    }
    let Some(pid) = args["processId"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
    else {
        let _ = conn.fail(req, "attach: no processId");
        return;
    };
    let debuggee = serve_attached(conn, req, pid, commands);
    match debuggee {
        Ok(Some(End::Disconnect { terminate: true })) => {
            // Detached by now: the process runs untraced, and is ended
            // as the client asked.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        Ok(_) => {}
        Err(e) => {
            let _ = conn.fail(req, &error_text(&e));
        }
    }
}

/// `launch` with mode `core` (`program`, `coreFilePath`): a post-mortem
/// session over a core file, as `goat debug` opens one. Nothing runs.
fn launch_core(conn: &mut Conn, req: &Value, commands: &dyn TextCommands) {
    let args = &req["arguments"];
    let mode = args["mode"].as_str().unwrap_or("");
    if mode != "core" {
        let _ = conn.fail(
            req,
            &format!("launch mode {mode:?}: goat launches in mode \"core\" only (attach to a running program)"),
        );
        return;
    }
    let Some(core) = args["coreFilePath"].as_str() else {
        let _ = conn.fail(req, "launch: no coreFilePath");
        return;
    };
    let program = args["program"].as_str().map(std::path::Path::new);
    let mut warnings = Vec::new();
    let opened = Inspector::open_core_with(
        std::path::Path::new(core),
        program,
        &OpenOptions::default(),
        &mut |w: Warning| warnings.push(w.to_string()),
    )
    .and_then(|inspector| {
        let debuggee = inspector.debug(&mut |w: Warning| warnings.push(w.to_string()))?;
        debuggee.run(|s| {
            start_session(conn, req, s, std::mem::take(&mut warnings));
            Server::new(conn, commands).serve(s);
            0
        })
    });
    if let Err(e) = opened {
        let _ = conn.fail(req, &error_text(&e));
    }
}

/// Answers the `attach` or `launch` that opened `s`, and says what went
/// wrong on the way without ending it.
fn start_session(conn: &mut Conn, req: &Value, s: &mut Session, mut warnings: Vec<String>) {
    warnings.extend(s.warnings.drain(..).map(|w| w.to_string()));
    let _ = conn.respond(req, json!({}));
    for w in warnings {
        let body = json!({"category": "console", "output": format!("goat: {w}\n")});
        let _ = conn.event("output", body);
    }
    let _ = conn.event("initialized", json!({}));
}

/// Attaches to `pid`, answers `req`, then serves the session: how it ended.
fn serve_attached(
    conn: &mut Conn,
    req: &Value,
    pid: i32,
    commands: &dyn TextCommands,
) -> Result<Option<End>, crate::inspect::InspectError> {
    let mut warnings = Vec::new();
    let inspector = Inspector::open_pid_with(pid, &OpenOptions::default(), &mut |w: Warning| {
        warnings.push(w.to_string())
    })?;
    let debuggee = inspector.debug(&mut |w: Warning| warnings.push(w.to_string()))?;
    let mut end = None;
    debuggee.run(|s| {
        start_session(conn, req, s, std::mem::take(&mut warnings));
        end = Some(Server::new(conn, commands).serve(s));
        0
    })?;
    Ok(end)
}
