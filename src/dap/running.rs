//! What the client asks while the program runs. The request loop is then
//! inside the engine's run (`Session::run_to_stop`), so the thread that
//! reads the client decides here, as each request arrives:
//!
//! - `pause`, and `disconnect` or the client's end during a run, stop the
//!   run (`tracer::interrupt_run`, the Ctrl-C path) and are answered in
//!   turn once it stopped;
//! - `threads` is held here and the run interrupted: the engine stops the
//!   threads, the server copies every stack, the run goes on without a
//!   stop reported, and the answer is decoded from the copy while the
//!   program runs (`server.rs`, `Hooks::interrupted`);
//! - `setBreakpoints`, `setFunctionBreakpoints` and
//!   `setExceptionBreakpoints` (an editor sends them whenever a breakpoint
//!   is clicked in or out) are held the same way: in the interrupt every
//!   thread is stopped, the breakpoints are set or cleared and answered,
//!   and the run goes on, as `dlv dap` halts, sets and resumes;
//! - anything else is answered at once with an error: nothing of a running
//!   program can be read consistently.

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// What the reading thread does with a request.
pub enum Route {
    /// Into the request loop, in turn.
    Forward,
    /// Kept for the run in progress, which serves it (`threads`).
    Held,
    /// Refused at once with this message.
    Refused(String),
}

/// The run in progress, as the reading thread and the request loop share
/// it.
#[derive(Default)]
pub struct WhileRunning {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A run command is under way (from just before its answer goes out).
    running: bool,
    /// A pause, a disconnect or the client's end asks the run to stop.
    stop: bool,
    /// `threads` requests held for the run in progress.
    threads: Vec<Value>,
    /// Breakpoint requests held for the run in progress, in order.
    edits: Vec<Value>,
}

/// The requests a run held that it did not serve, to be served from the
/// stop it ended in.
pub struct Unserved {
    pub threads: Vec<Value>,
    pub edits: Vec<Value>,
}

/// The requests that change breakpoints, served in a run's interrupt.
pub fn is_breakpoint_edit(command: &str) -> bool {
    matches!(
        command,
        "setBreakpoints" | "setFunctionBreakpoints" | "setExceptionBreakpoints"
    )
}

impl WhileRunning {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain flags.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the reading thread sends `req`.
    pub fn route(&self, req: &Value) -> Route {
        let mut st = self.state();
        match req["command"].as_str().unwrap_or("") {
            "pause" => {
                // Acted on at once, answered in turn (a pause just behind
                // a `continue` reaches the run that follows).
                st.stop = true;
                crate::tracer::interrupt_run();
                Route::Forward
            }
            "disconnect" => {
                if st.running {
                    st.stop = true;
                    crate::tracer::interrupt_run();
                }
                Route::Forward
            }
            "threads" if st.running => {
                st.threads.push(req.clone());
                crate::tracer::interrupt_run();
                Route::Held
            }
            edit if st.running && is_breakpoint_edit(edit) => {
                st.edits.push(req.clone());
                crate::tracer::interrupt_run();
                Route::Held
            }
            other if st.running => Route::Refused(format!(
                "the program is running: {other:?} needs it stopped (pause it first)"
            )),
            _ => Route::Forward,
        }
    }

    /// The client is gone: a run in progress stops, so that goat detaches
    /// now, not at some later stop.
    pub fn gone(&self) {
        self.state().stop = true;
        crate::tracer::interrupt_run();
    }

    /// A run command begins (before its answer goes out, so that what the
    /// client sends on reading it is routed as during the run).
    pub fn begin(&self) {
        self.state().running = true;
    }

    /// The run ended: the requests no interrupt served, to be answered
    /// from the stop. An interrupt sent for them after the run ended is
    /// dropped, or it would stop the next one.
    pub fn end(&self) -> Unserved {
        let mut st = self.state();
        st.running = false;
        crate::tracer::forget_pending_interrupt();
        Unserved {
            threads: std::mem::take(&mut st.threads),
            edits: std::mem::take(&mut st.edits),
        }
    }

    /// The `threads` requests held since the last call.
    pub fn take_threads(&self) -> Vec<Value> {
        std::mem::take(&mut self.state().threads)
    }

    /// The breakpoint requests held since the last call, in order.
    pub fn take_edits(&self) -> Vec<Value> {
        std::mem::take(&mut self.state().edits)
    }

    /// Whether the run in progress is to stop.
    pub fn stop_asked(&self) -> bool {
        self.state().stop
    }

    /// A pause was answered in turn: it stops nothing more.
    pub fn pause_answered(&self) {
        self.state().stop = false;
    }
}
