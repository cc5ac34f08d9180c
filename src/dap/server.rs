//! Requests of an attached client, translated into calls on the session
//! engine (`session/`), following Delve's DAP server where it sets a
//! convention: goroutines are threads, a frame id and a variables
//! reference are handles into tables kept for the current stop.

use std::path::Path;

use serde_json::{json, Value as Json};

use super::breakpoints::EditorBreakpoints;
use super::code;
use super::errors::text;
use super::running::{is_breakpoint_edit, WhileRunning};
use super::wire::{Conn, Replies};
use crate::goruntime::Goroutine;
use crate::session::{
    AfterInterrupt, RunEvent, RunHooks, Session, SessionError, StacksCopy, StacksDecoder, StepKind,
    Stop, TextCommands,
};
use crate::tracer::TempBreakpoint;
use crate::values::Value;

/// Most frames one `stackTrace` answers with (an editor pages for more).
const MAX_LEVELS: usize = 1000;
/// Most variables one `variables` answers with, without `count`.
const DEFAULT_PAGE: u64 = 256;

/// What a variables reference names.
enum Handle {
    /// The arguments (`params`) or locals of frame `frame` of `goroutine`.
    Scope {
        goroutine: u64,
        frame: usize,
        params: bool,
    },
    /// The package variables of that frame's package.
    Globals { goroutine: u64, frame: usize },
    /// The children of a value of that frame, and the expression that
    /// names the value there (how `setVariable` writes a child).
    Children {
        goroutine: u64,
        frame: usize,
        value: Value,
        path: String,
    },
}

/// How the request loop ended.
pub enum End {
    /// `disconnect`: detach; `terminate` asks that the target be killed.
    Disconnect { terminate: bool },
    /// The client went away (or the target did): detach.
    Gone,
}

/// The server of one attached session.
pub struct Server<'c> {
    conn: &'c mut Conn,
    /// What the debug console runs besides expressions (`evaluate` in
    /// the `repl` context): the terminal's commands.
    commands: &'c dyn TextCommands,
    /// Frame ids: (goroutine, frame index), for the current stop.
    frames: Vec<(u64, usize)>,
    /// Variables references (1-based), for the current stop.
    handles: Vec<Handle>,
    /// The breakpoints the editor set.
    breakpoints: EditorBreakpoints,
    /// The current stop's exception, when it is one: the goroutine, and
    /// whether it panicked (else the runtime threw).
    exception: Option<(u64, Exception)>,
}

/// What stopped the program, for `exceptionInfo`.
#[derive(Clone, Copy)]
enum Exception {
    /// An unrecovered panic: its value is `runtime.curg._panic.arg`.
    Panic,
    /// A fatal error: the text is the `s` of `runtime.fatal`/`throw`.
    Throw,
}

impl<'c> Server<'c> {
    pub fn new(conn: &'c mut Conn, commands: &'c dyn TextCommands) -> Server<'c> {
        Server {
            conn,
            commands,
            frames: Vec::new(),
            handles: Vec::new(),
            breakpoints: EditorBreakpoints::default(),
            exception: None,
        }
    }

    /// Serves requests until `disconnect` or the client's end.
    pub fn serve(&mut self, s: &mut Session) -> End {
        loop {
            let req = match self.conn.read() {
                Ok(req) => req,
                Err(super::wire::WireError::NotJson(e)) => {
                    let msg = format!("a message that is not JSON: {e}");
                    let _ = self.conn.event("output", output("stderr", &msg));
                    continue;
                }
                Err(_) => return End::Gone,
            };
            let command = req["command"].as_str().unwrap_or("").to_string();
            if command == "disconnect" {
                let terminate = req["arguments"]["terminateDebuggee"].as_bool() == Some(true);
                let _ = self.conn.respond(&req, json!({}));
                return End::Disconnect { terminate };
            }
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(s, &command, &req)
            }));
            let sent = match handled {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => self.conn.fail(&req, &e),
                Err(_) => self.conn.fail(
                    &req,
                    &format!("internal error in {command:?} (a bug in goat; please report it)"),
                ),
            };
            if sent.is_err() || s.is_done() {
                return End::Gone;
            }
        }
    }

    fn handle(&mut self, s: &mut Session, command: &str, req: &Json) -> Result<(), String> {
        let args = &req["arguments"];
        let io = |e: std::io::Error| e.to_string();
        match command {
            "initialize" => self.conn.respond(req, capabilities()).map_err(io),
            "configurationDone" => {
                if let Err(e) = s.may_run() {
                    self.conn.respond(req, json!({})).map_err(io)?;
                    // A core does not run (it is stopped where it was
                    // written), nor does a process stopped by job control.
                    if s.core_path().is_none() {
                        let out = output("console", &text(e));
                        self.conn.event("output", out).map_err(io)?;
                    }
                    let mut body = json!({"reason": "entry", "allThreadsStopped": true});
                    if let Some(g) = s.current_goroutine() {
                        body["threadId"] = json!(g);
                    }
                    return self.conn.event("stopped", body).map_err(io);
                }
                // Unlike `continue`, nothing the client asked implies a
                // run: the protocol has it told with a `continued` event.
                let mut continued = json!({"allThreadsContinued": true});
                if let Some(g) = s.current_goroutine() {
                    continued["threadId"] = json!(g);
                }
                self.run(s, req, json!({}), Vec::new(), Some(continued))
            }
            edit if is_breakpoint_edit(edit) => {
                let body = self.breakpoints.edit(s, edit, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "threads" => {
                let body = threads(s)?;
                self.conn.respond(req, body).map_err(io)
            }
            "stackTrace" => {
                let body = self.stack_trace(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "scopes" => {
                let (g, frame) = self.frame(args["frameId"].as_i64())?;
                let mut scope = |name: &str, params| {
                    let r = self.handle_for(Handle::Scope {
                        goroutine: g,
                        frame,
                        params,
                    });
                    json!({"name": name, "variablesReference": r, "expensive": false})
                };
                let (args, locals) = (scope("Arguments", true), scope("Locals", false));
                // As dlv dap: the package variables of the frame's package,
                // expensive (a program may have thousands).
                let package = s
                    .scope_at(g, frame)
                    .map(|sc| crate::values::package_of(&sc.function_name()).to_string())
                    .map_err(text)?;
                let r = self.handle_for(Handle::Globals {
                    goroutine: g,
                    frame,
                });
                let globals = json!({
                    "name": format!("Globals (package {package})"),
                    "presentationHint": "globals",
                    "variablesReference": r,
                    "expensive": true,
                });
                let body = json!({"scopes": [args, locals, globals]});
                self.conn.respond(req, body).map_err(io)
            }
            "variables" => {
                let body = self.variables(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "evaluate" => {
                let body = self.evaluate(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "continue" => {
                // Refused before the answer: a core, a job-stopped process.
                s.may_run().map_err(text)?;
                let body = json!({"allThreadsContinued": true});
                self.run(s, req, body, Vec::new(), None)
            }
            "next" | "stepIn" | "stepOut" => {
                let kind = match command {
                    "next" => StepKind::Over,
                    "stepIn" => StepKind::Into,
                    _ => StepKind::Out,
                };
                s.may_run().map_err(text)?;
                if let Some(id) = args["threadId"].as_u64() {
                    s.select(id).map_err(text)?;
                }
                let temps = s.step_plan(kind).map_err(text)?;
                self.run(s, req, json!({}), temps, None)
            }
            // The reading thread interrupted the run it came during, or
            // the one that followed it (`wire.rs`); by now the `stopped`
            // event is out. In turn here, nothing runs: what it latched
            // for a later run is dropped, as a pause of a program already
            // stopped changes nothing.
            "pause" => {
                crate::tracer::forget_pending_interrupt();
                self.conn.running().pause_answered();
                self.conn.respond(req, json!({})).map_err(io)
            }
            "setVariable" => {
                let body = self.set_variable(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "readMemory" => {
                let body = code::read_memory(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "disassemble" => {
                let body = code::disassemble(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "loadedSources" => {
                let sources: Vec<Json> = s
                    .source_files()
                    .into_iter()
                    .map(|path| json!({"name": crate::session::base_name(&path), "path": path}))
                    .collect();
                self.conn
                    .respond(req, json!({ "sources": sources }))
                    .map_err(io)
            }
            "exceptionInfo" => {
                let body = self.exception_info(s, args)?;
                self.conn.respond(req, body).map_err(io)
            }
            "" => Err("a request without a command".into()),
            other => Err(format!("goat does not serve {other:?} requests")),
        }
    }

    /// Answers `req` with `body` and runs the target (under `temps`, a
    /// step's) until a stop, then tells the client. From just before the
    /// answer, what the client sends is routed as during a run
    /// (`running.rs`).
    fn run(
        &mut self,
        s: &mut Session,
        req: &Json,
        body: Json,
        temps: Vec<TempBreakpoint>,
        continued: Option<Json>,
    ) -> Result<(), String> {
        let running = self.conn.running().clone();
        running.begin();
        let told = self.conn.respond(req, body).and_then(|()| match continued {
            Some(c) => self.conn.event("continued", c),
            None => Ok(()),
        });
        if let Err(e) = told {
            running.end();
            return Err(e.to_string());
        }
        self.resume(s, temps)
    }

    /// The run is over: from here requests are served in turn, before the
    /// client hears of the stop; `threads` asked as the run ended is
    /// answered from the stop.
    fn end_run(&mut self, s: &mut Session) {
        let unserved = self.conn.running().end();
        for req in &unserved.edits {
            edit_and_answer(&mut self.breakpoints, s, self.conn, req);
        }
        for asked in unserved.threads {
            let answer =
                threads(s).and_then(|t| self.conn.respond(&asked, t).map_err(|e| e.to_string()));
            if let Err(e) = answer {
                let _ = self.conn.fail(&asked, &e);
            }
        }
    }

    /// Runs the target until a stop, then tells the client.
    fn resume(&mut self, s: &mut Session, temps: Vec<TempBreakpoint>) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        self.frames.clear();
        self.handles.clear();
        self.exception = None;
        let running = self.conn.running().clone();
        let replies = self.conn.replies();
        let decoder = s.stacks_decoder();
        let conn = &mut *self.conn;
        // The threads that answer `threads` from a copy are waited for
        // before the stop is told.
        let stop = std::thread::scope(|scope| {
            let mut hooks = Hooks {
                conn,
                breakpoints: &mut self.breakpoints,
                running: &running,
                replies: &replies,
                decoder,
                scope,
            };
            s.run_to_stop(temps, &[], &mut hooks)
        });
        self.end_run(s);
        let (reason, bp) = match stop {
            Ok(Stop::Breakpoint { bp, .. }) => {
                let b = &s.bps.list[bp];
                let exception = match b.name.as_deref() {
                    Some(crate::session::breakpoints::UNRECOVERED_PANIC) => Some(Exception::Panic),
                    Some(crate::session::breakpoints::FATAL_THROW) => Some(Exception::Throw),
                    _ => None,
                };
                let id = b.id;
                self.exception = exception.zip(s.current_goroutine()).map(|(e, g)| (g, e));
                let reason = match exception {
                    Some(_) => "exception",
                    None => "breakpoint",
                };
                (reason, Some(id))
            }
            Ok(Stop::Position | Stop::Silent { .. }) => ("step", None),
            Ok(Stop::Interrupted) => ("pause", None),
            Ok(Stop::Watchpoint(_)) => ("data breakpoint", None),
            Ok(Stop::OverCap { .. }) => ("pause", None),
            Ok(Stop::Exec { path }) => {
                let msg = format!("the program exec'd {}: the session ends", path.display());
                self.conn
                    .event("output", output("console", &msg))
                    .map_err(io)?;
                self.conn.event("terminated", json!({})).map_err(io)?;
                return Ok(());
            }
            Err(e) => {
                let msg = text(e);
                if s.is_done() {
                    self.conn
                        .event("output", output("stderr", &msg))
                        .map_err(io)?;
                    self.conn
                        .event("exited", json!({"exitCode": 0}))
                        .map_err(io)?;
                    self.conn.event("terminated", json!({})).map_err(io)?;
                    return Ok(());
                }
                return Err(msg);
            }
        };
        let mut body = json!({
            "reason": reason,
            "allThreadsStopped": true,
        });
        if let Some(g) = s.current_goroutine() {
            body["threadId"] = json!(g);
        }
        if let Some(id) = bp {
            body["hitBreakpointIds"] = json!([id]);
        }
        self.conn.event("stopped", body).map_err(io)
    }

    fn stack_trace(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let id = args["threadId"].as_u64().ok_or("stackTrace: no threadId")?;
        let g = s
            .goroutine(id)
            .ok_or_else(|| format!("no goroutine {id}"))?;
        let start = args["startFrame"].as_u64().unwrap_or(0) as usize;
        let levels = match args["levels"].as_u64().unwrap_or(0) as usize {
            0 => MAX_LEVELS,
            n => n.min(MAX_LEVELS),
        };
        let total = g.frames.len();
        let mut frames = Vec::new();
        for (i, f) in g.frames.iter().enumerate().skip(start).take(levels) {
            let fid = self.frames.len() + 1;
            self.frames.push((id, i));
            let name = Path::new(&*f.file)
                .file_name()
                .map_or(f.file.to_string(), |n| n.to_string_lossy().into_owned());
            frames.push(json!({
                "id": fid,
                "name": &*f.function,
                "source": {"name": name, "path": &*f.file},
                "line": f.line,
                "column": 0,
                "instructionPointerReference": format!("{:#x}", f.pc),
            }));
        }
        Ok(json!({"stackFrames": frames, "totalFrames": total}))
    }

    /// The goroutine and frame index of a frame id.
    fn frame(&self, id: Option<i64>) -> Result<(u64, usize), String> {
        id.and_then(|id| usize::try_from(id).ok())
            .and_then(|id| id.checked_sub(1))
            .and_then(|i| self.frames.get(i).copied())
            .ok_or_else(|| format!("unknown frame id {id:?}"))
    }

    fn handle_for(&mut self, h: Handle) -> usize {
        self.handles.push(h);
        self.handles.len()
    }

    fn variables(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let r = args["variablesReference"].as_u64().unwrap_or(0) as usize;
        let start = args["start"].as_u64().unwrap_or(0);
        let count = match args["count"].as_u64().unwrap_or(0) {
            0 => DEFAULT_PAGE,
            n => n,
        };
        let h = r
            .checked_sub(1)
            .and_then(|i| self.handles.get(i))
            .ok_or_else(|| format!("unknown variables reference {r}"))?;
        let (goroutine, frame, vars) = match h {
            Handle::Scope {
                goroutine,
                frame,
                params,
            } => {
                let scope = s.scope_at(*goroutine, *frame).map_err(text)?;
                let vars = scope.variables(*params).map_err(|e| e.to_string())?;
                let vars = vars
                    .into_iter()
                    .skip(start as usize)
                    .take(count as usize)
                    .collect::<Vec<_>>();
                (*goroutine, *frame, vars)
            }
            Handle::Globals { goroutine, frame } => {
                let scope = s.scope_at(*goroutine, *frame).map_err(text)?;
                let vars = scope
                    .package_variables()
                    .into_iter()
                    .skip(start as usize)
                    .take(count as usize)
                    .collect::<Vec<_>>();
                (*goroutine, *frame, vars)
            }
            Handle::Children {
                goroutine,
                frame,
                value,
                ..
            } => {
                let scope = s.scope_at(*goroutine, *frame).map_err(text)?;
                let c = scope
                    .children(value, start, count)
                    .map_err(|e| e.to_string())?;
                (*goroutine, *frame, c.items)
            }
        };
        let mut out = Vec::new();
        for (name, v) in vars {
            let path = self.expression_of(s, r, &name)?;
            let (shown, ty, children) = {
                let scope = s.scope_at(goroutine, frame).map_err(text)?;
                (
                    scope.format(&v),
                    scope.type_name(v.ty),
                    scope.child_count(&v),
                )
            };
            let reference = match children {
                0 => 0,
                _ => self.handle_for(Handle::Children {
                    goroutine,
                    frame,
                    value: v,
                    path,
                }),
            };
            let mut var = json!({
                "name": name,
                "value": shown,
                "type": ty,
                "variablesReference": reference,
            });
            if children > 1 {
                var["indexedVariables"] = json!(children);
            }
            out.push(var);
        }
        Ok(json!({ "variables": out }))
    }

    /// The expression that names variable `name` of variables reference
    /// `r` in its frame: `name` for an argument or local, `pkg.name` for a
    /// package variable, the parent's expression then `.name` or
    /// `[key]` for a child.
    fn expression_of(&self, s: &Session, r: usize, name: &str) -> Result<String, String> {
        let h = r
            .checked_sub(1)
            .and_then(|i| self.handles.get(i))
            .ok_or_else(|| format!("unknown variables reference {r}"))?;
        Ok(match h {
            Handle::Scope { .. } => name.to_string(),
            Handle::Globals { goroutine, frame } => {
                let scope = s.scope_at(*goroutine, *frame).map_err(text)?;
                format!(
                    "{}.{name}",
                    crate::values::package_of(&scope.function_name())
                )
            }
            Handle::Children { path, .. } if name.starts_with('[') => format!("{path}{name}"),
            Handle::Children { path, .. } => format!("{path}.{name}"),
        })
    }

    /// The goroutine and frame a variables reference reads in.
    fn frame_of(&self, r: usize) -> Result<(u64, usize), String> {
        match r.checked_sub(1).and_then(|i| self.handles.get(i)) {
            Some(
                Handle::Scope {
                    goroutine, frame, ..
                }
                | Handle::Globals { goroutine, frame }
                | Handle::Children {
                    goroutine, frame, ..
                },
            ) => Ok((*goroutine, *frame)),
            None => Err(format!("unknown variables reference {r}")),
        }
    }

    /// `setVariable`: a scalar (number, bool, pointer) written as the
    /// REPL's `set` writes it (through the console's commands), then
    /// read back.
    fn set_variable(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let r = args["variablesReference"].as_u64().unwrap_or(0) as usize;
        let name = args["name"].as_str().ok_or("setVariable: no name")?;
        let value = args["value"].as_str().ok_or("setVariable: no value")?;
        if value.contains('\n') {
            return Err("setVariable: a value is one line".into());
        }
        let (g, frame) = self.frame_of(r)?;
        let path = self.expression_of(s, r, name)?;
        s.select_frame(g, frame).map_err(text)?;
        self.commands
            .run(s, &format!("set {path} = {value}"), &mut std::io::sink())?;
        let scope = s.scope_at(g, frame).map_err(text)?;
        let v = scope.eval_text(&path).map_err(|e| e.to_string())?;
        let shown = scope.show(&v, None).map_err(|e| e.to_string())?;
        Ok(json!({"value": shown, "type": scope.val_type(&v), "variablesReference": 0}))
    }

    /// `exceptionInfo`, as `dlv dap` answers it: the panic's value or the
    /// fatal error's text, read in the frame the runtime stopped in.
    fn exception_info(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let Some((g, kind)) = self.exception else {
            return Err("the program did not stop on a panic or a fatal error".into());
        };
        if args["threadId"].as_u64().is_some_and(|t| t != g) {
            return Err(format!("goroutine {g} raised the exception, not this one"));
        }
        let (id, expr) = match kind {
            Exception::Panic => ("panic", "runtime.curg._panic.arg"),
            Exception::Throw => ("fatal error", "s"),
        };
        let scope = s.scope_at(g, 0).map_err(text)?;
        let (message, ty) = match scope.eval_text(expr) {
            Ok(v) => (
                scope.show(&v, None).map_err(|e| e.to_string())?,
                scope.val_type(&v),
            ),
            Err(e) => (format!("unreadable: {e}"), String::new()),
        };
        Ok(json!({
            "exceptionId": id,
            "description": message,
            "breakMode": "always",
            "details": {"message": message, "typeName": ty},
        }))
    }

    fn evaluate(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let expr = args["expression"]
            .as_str()
            .ok_or("evaluate: no expression")?;
        let (g, frame) = match args["frameId"].as_i64() {
            Some(id) => self.frame(Some(id))?,
            None => (s.current_goroutine().ok_or("no goroutine selected")?, 0),
        };
        if args["context"] == "repl" {
            if let Some(line) = self.console_command(s, g, frame, expr) {
                return self.command(s, g, frame, line);
            }
        }
        let scope = s.scope_at(g, frame).map_err(text)?;
        let v = scope.eval_text(expr).map_err(|e| e.to_string())?;
        let shown = scope.show(&v, None).map_err(|e| e.to_string())?;
        let ty = scope.val_type(&v);
        let value = match v {
            crate::values::eval::Val::Typed(v) if scope.child_count(&v) > 0 => Some(v),
            _ => None,
        };
        drop(scope);
        let reference = match value {
            Some(value) => self.handle_for(Handle::Children {
                goroutine: g,
                frame,
                value,
                path: format!("({expr})"),
            }),
            None => 0,
        };
        Ok(json!({"result": shown, "type": ty, "variablesReference": reference}))
    }
}

impl Server<'_> {
    /// The command line the debug console's `text` is, if it is one: after
    /// `goat ` or `dlv ` (Delve's console prefix), or a command's name
    /// that does not evaluate as an expression (`goroutines`, `print x`;
    /// `n` is a variable).
    fn console_command<'t>(
        &self,
        s: &Session,
        g: u64,
        frame: usize,
        text: &'t str,
    ) -> Option<&'t str> {
        let text = text.trim();
        for prefix in ["goat ", "dlv "] {
            if let Some(line) = text.strip_prefix(prefix) {
                return Some(line);
            }
        }
        let first = text.split_whitespace().next()?;
        if !self.commands.is_command(first) {
            return None;
        }
        let evaluates = s
            .scope_at(g, frame)
            .is_ok_and(|scope| scope.eval_text(text).is_ok());
        (!evaluates).then_some(text)
    }

    /// Runs a console command in frame `frame` of goroutine `g`; its
    /// output is the result.
    fn command(
        &mut self,
        s: &mut Session,
        g: u64,
        frame: usize,
        line: &str,
    ) -> Result<Json, String> {
        s.select_frame(g, frame).map_err(text)?;
        let mut out = Vec::new();
        self.commands.run(s, line, &mut out)?;
        let shown = String::from_utf8_lossy(&out);
        Ok(json!({
            "result": shown.trim_end(),
            "variablesReference": 0,
        }))
    }
}

/// `threads`: every goroutine, named `[wait reason] top user function`,
/// as `goroutines -group` reads. No cap: an editor lists thousands.
fn threads(s: &mut Session) -> Result<Json, String> {
    s.decode_all().map_err(text)?;
    let ids: Vec<u64> = s.headers().iter().map(|g| g.id).collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(g) = s.goroutine(id) else { continue };
        out.push(thread(g));
    }
    Ok(json!({ "threads": out }))
}

/// A goroutine as a DAP thread.
fn thread(g: &Goroutine) -> Json {
    let state = g.wait_reason.as_deref().unwrap_or(&g.status);
    let func = g.user_frame().map_or("?", |f| &*f.function);
    json!({"id": g.id, "name": format!("[{state}] {func}")})
}

/// Serves a breakpoint request (`running.rs`'s `is_breakpoint_edit`),
/// answering it with its result or its error.
fn edit_and_answer(bps: &mut EditorBreakpoints, s: &mut Session, conn: &mut Conn, req: &Json) {
    let command = req["command"].as_str().unwrap_or("");
    let _ = match bps.edit(s, command, &req["arguments"]) {
        Ok(body) => conn.respond(req, body),
        Err(e) => conn.fail(req, &e),
    };
}

/// Answers the `threads` requests held during a run from a copy of every
/// stack made in its interrupt, decoded while the program runs on.
fn answer_threads(
    decoder: StacksDecoder<'_>,
    copy: Result<StacksCopy, SessionError>,
    asked: &[Json],
    replies: &Replies,
) {
    let body = copy.and_then(|c| decoder.decode(&c)).map(|gs| {
        let list: Vec<Json> = gs.iter().map(thread).collect();
        json!({ "threads": list })
    });
    for req in asked {
        let _ = match &body {
            Ok(b) => replies.respond(req, b.clone()),
            Err(e) => replies.fail(
                req,
                &format!("reading the goroutines while the program runs: {e}"),
            ),
        };
    }
}

/// What goat can do, as `initialize` answers.
fn capabilities() -> Json {
    json!({
        "supportsConfigurationDoneRequest": true,
        "supportsExceptionInfoRequest": true,
        "supportsConditionalBreakpoints": true,
        "supportsHitConditionalBreakpoints": true,
        "supportsFunctionBreakpoints": true,
        "supportsEvaluateForHovers": true,
        "supportsDelayedStackTraceLoading": true,
        "supportTerminateDebuggee": true,
        "supportsSetVariable": true,
        "supportsReadMemoryRequest": true,
        "supportsDisassembleRequest": true,
        "supportsLoadedSourcesRequest": true,
        "exceptionBreakpointFilters": [
            {"filter": "unrecovered-panic", "label": "Unrecovered panics", "default": true},
            {"filter": "runtime-fatal-throw", "label": "Fatal throws", "default": true},
        ],
    })
}

fn output(category: &str, text: &str) -> Json {
    json!({"category": category, "output": format!("{text}\n")})
}

/// A DAP server's part in a run: no watchpoints; what the REPL prints as
/// the run goes on becomes `output` events; `threads` asked meanwhile is
/// answered from a copy made in an interrupt, decoded on a thread of
/// `scope` while the run goes on.
struct Hooks<'a, 'scope, 'env> {
    conn: &'a mut Conn,
    breakpoints: &'a mut EditorBreakpoints,
    running: &'a WhileRunning,
    replies: &'scope Replies,
    decoder: StacksDecoder<'env>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
}

impl RunHooks for Hooks<'_, '_, '_> {
    type Error = SessionError;

    fn interrupted(&mut self, s: &mut Session) -> Result<AfterInterrupt, SessionError> {
        // Every thread is stopped: breakpoints go in and out as between
        // two runs, and the run goes on under them.
        for req in self.running.take_edits() {
            edit_and_answer(self.breakpoints, s, self.conn, &req);
        }
        let asked = self.running.take_threads();
        if !asked.is_empty() {
            // Copied in this stop, decoded and answered once it runs on.
            let copy = s.copy_stacks();
            let (decoder, replies) = (self.decoder, self.replies);
            self.scope
                .spawn(move || answer_threads(decoder, copy, &asked, replies));
        }
        // Only a pause, a disconnect or the client's end stops the run:
        // an interrupt for `threads` answered by an earlier one is none.
        Ok(match self.running.stop_asked() {
            true => AfterInterrupt::Stop,
            false => AfterInterrupt::GoOn,
        })
    }

    fn after_stop(&mut self, _s: &mut Session) -> Result<Vec<u32>, SessionError> {
        Ok(Vec::new())
    }

    fn scope_temps(&mut self, _s: &mut Session) -> Result<Vec<TempBreakpoint>, SessionError> {
        Ok(Vec::new())
    }

    fn at_resize_sentinel(&self, _s: &Session, _tid: i32) -> bool {
        false
    }

    fn event(&mut self, s: &mut Session, event: RunEvent) -> Result<(), SessionError> {
        let msg = match event {
            RunEvent::CondFailed { bp, error } => {
                format!(
                    "error evaluating breakpoint {}'s condition: {}",
                    s.bps.list[bp].id,
                    text(error)
                )
            }
            RunEvent::Traced { bp, goroutine } => format!(
                "tracepoint {} hit by goroutine {}",
                s.bps.list[bp].id,
                goroutine.unwrap_or_default()
            ),
            RunEvent::Returned { goroutine } => {
                format!("goroutine {} returned", goroutine.unwrap_or_default())
            }
            RunEvent::HitDuringStep { bp, goroutine } => format!(
                "breakpoint {} hit by goroutine {} during a step, continuing",
                s.bps.list[bp].id,
                goroutine.unwrap_or_default()
            ),
        };
        // The client gone is no reason to stop the run here: the request
        // loop sees it next.
        let _ = self.conn.event("output", output("console", &msg));
        Ok(())
    }
}
