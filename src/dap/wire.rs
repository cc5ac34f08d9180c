//! The Debug Adapter Protocol's framing: a `Content-Length: N` header, a
//! blank line, then N bytes of JSON, both ways. What the client sends is
//! untrusted input: headers and bodies are bounded, and a malformed
//! message is an error for that message, never a panic.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::running::{Route, WhileRunning};

/// Largest body accepted: far above any request an editor sends.
const MAX_BODY: usize = 16 << 20;
/// Longest header line accepted.
const MAX_HEADER_LINE: usize = 1024;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the client closed the connection")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("bad header {0:?}")]
    BadHeader(String),
    #[error("a message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
}

/// Both directions of one client.
pub struct Conn {
    /// Messages as a thread of their own reads them: the client is heard
    /// while the program runs (`running.rs` decides what that thread does
    /// with each).
    incoming: crossbeam_channel::Receiver<Result<Value, WireError>>,
    out: Replies,
    running: Arc<WhileRunning>,
}

/// The sending half, shared: the request loop, the reading thread (which
/// refuses requests while the program runs) and a thread answering
/// `threads` from a copy all send through it, one whole message at a time.
#[derive(Clone)]
pub struct Replies {
    out: Arc<Mutex<Out>>,
}

/// The writer, and the numbering of what goat sends.
struct Out {
    writer: Box<dyn Write + Send>,
    seq: i64,
}

/// Messages read ahead of the request loop, at most: a client that floods
/// waits on its socket instead of goat's memory.
const READ_AHEAD: usize = 64;

impl Conn {
    pub fn new(reader: Box<dyn BufRead + Send>, writer: Box<dyn Write + Send>) -> Conn {
        let (tx, incoming) = crossbeam_channel::bounded(READ_AHEAD);
        let mut reader = Reader { reader };
        let out = Replies {
            out: Arc::new(Mutex::new(Out { writer, seq: 0 })),
        };
        let running = Arc::new(WhileRunning::default());
        let (replies, routes) = (out.clone(), running.clone());
        std::thread::spawn(move || loop {
            let msg = reader.read();
            // Only a malformed body leaves the framing intact to read on.
            let end = !matches!(msg, Ok(_) | Err(WireError::NotJson(_)));
            if end {
                routes.gone();
            }
            if let Ok(req) = &msg {
                match routes.route(req) {
                    Route::Forward => {}
                    Route::Held => continue,
                    Route::Refused(why) => {
                        if replies.fail(req, &why).is_err() {
                            routes.gone();
                        }
                        continue;
                    }
                }
            }
            if tx.send(msg).is_err() || end {
                return;
            }
        });
        Conn {
            incoming,
            out,
            running,
        }
    }

    /// The next message, in the order the client sent them. A malformed
    /// body is [`WireError::NotJson`]: the framing is intact, so the
    /// caller may read on.
    pub fn read(&mut self) -> Result<Value, WireError> {
        self.incoming.recv().unwrap_or(Err(WireError::Closed))
    }

    /// What the client asks while the program runs.
    pub(crate) fn running(&self) -> &Arc<WhileRunning> {
        &self.running
    }

    /// A handle to send with from another thread.
    pub(crate) fn replies(&self) -> Replies {
        self.out.clone()
    }

    /// A successful response to `req`.
    pub fn respond(&mut self, req: &Value, body: Value) -> io::Result<()> {
        self.out.respond(req, body)
    }

    /// A failed response to `req` (see [`Replies::fail`]).
    pub fn fail(&mut self, req: &Value, message: &str) -> io::Result<()> {
        self.out.fail(req, message)
    }

    pub fn event(&mut self, event: &str, body: Value) -> io::Result<()> {
        self.out.event(event, body)
    }
}

impl Replies {
    fn send(&self, mut msg: Value) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.seq += 1;
        msg["seq"] = json!(out.seq);
        let body = msg.to_string();
        write!(out.writer, "Content-Length: {}\r\n\r\n{body}", body.len())?;
        out.writer.flush()
    }

    /// A successful response to `req`.
    pub fn respond(&self, req: &Value, body: Value) -> io::Result<()> {
        self.send(json!({
            "type": "response",
            "request_seq": req["seq"],
            "command": req["command"],
            "success": true,
            "body": body,
        }))
    }

    /// A failed response to `req`, in the shape Delve gives: the text in
    /// `message` and in `body.error.format`.
    pub fn fail(&self, req: &Value, message: &str) -> io::Result<()> {
        self.send(json!({
            "type": "response",
            "request_seq": req["seq"],
            "command": req["command"],
            "success": false,
            "message": message,
            "body": {"error": {"id": 1, "format": message, "showUser": true}},
        }))
    }

    pub fn event(&self, event: &str, body: Value) -> io::Result<()> {
        self.send(json!({"type": "event", "event": event, "body": body}))
    }
}

/// The reading end, on its own thread.
struct Reader {
    reader: Box<dyn BufRead + Send>,
}

impl Reader {
    fn read(&mut self) -> Result<Value, WireError> {
        let mut len = None;
        loop {
            let mut line = Vec::new();
            let n = io::Read::take(&mut *self.reader, MAX_HEADER_LINE as u64)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Err(WireError::Closed);
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                if len.is_some() {
                    break;
                }
                continue;
            }
            if !line.ends_with(b"\n") {
                return Err(WireError::BadHeader(text.to_string()));
            }
            if let Some((name, value)) = text.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    let n = value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| WireError::BadHeader(text.to_string()))?;
                    len = Some(n);
                }
            }
        }
        let len = len.unwrap_or(0);
        if len > MAX_BODY {
            return Err(WireError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        serde_json::from_slice(&body).map_err(WireError::NotJson)
    }
}
