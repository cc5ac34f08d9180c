//! The Debug Adapter Protocol's framing: a `Content-Length: N` header, a
//! blank line, then N bytes of JSON, both ways. What the client sends is
//! untrusted input: headers and bodies are bounded, and a malformed
//! message is an error for that message, never a panic.

use std::io::{self, BufRead, Write};

use serde_json::{json, Value};

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

/// Both directions of one client, and the numbering of what goat sends.
pub struct Conn {
    /// Messages as a thread of their own reads them: the client is heard
    /// while the program runs (a `pause` must reach a running continue).
    incoming: crossbeam_channel::Receiver<Result<Value, WireError>>,
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
        std::thread::spawn(move || loop {
            let msg = reader.read();
            // Only a malformed body leaves the framing intact to read on.
            let end = !matches!(msg, Ok(_) | Err(WireError::NotJson(_)));
            // A pause is acted on at once, not in turn: the request loop
            // is busy running the program. It is answered in turn.
            if msg.as_ref().is_ok_and(|req| req["command"] == "pause") {
                crate::tracer::interrupt_run();
            }
            // A client gone mid-run (a killed editor) has the run stopped
            // too, so that goat detaches now, not at some later stop.
            if end {
                crate::tracer::interrupt_run();
            }
            if tx.send(msg).is_err() || end {
                return;
            }
        });
        Conn {
            incoming,
            writer,
            seq: 0,
        }
    }

    /// The next message, in the order the client sent them. A malformed
    /// body is [`WireError::NotJson`]: the framing is intact, so the
    /// caller may read on.
    pub fn read(&mut self) -> Result<Value, WireError> {
        self.incoming.recv().unwrap_or(Err(WireError::Closed))
    }

    fn send(&mut self, mut msg: Value) -> io::Result<()> {
        self.seq += 1;
        msg["seq"] = json!(self.seq);
        let body = msg.to_string();
        write!(self.writer, "Content-Length: {}\r\n\r\n{body}", body.len())?;
        self.writer.flush()
    }

    /// A successful response to `req`.
    pub fn respond(&mut self, req: &Value, body: Value) -> io::Result<()> {
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
    pub fn fail(&mut self, req: &Value, message: &str) -> io::Result<()> {
        self.send(json!({
            "type": "response",
            "request_seq": req["seq"],
            "command": req["command"],
            "success": false,
            "message": message,
            "body": {"error": {"id": 1, "format": message, "showUser": true}},
        }))
    }

    pub fn event(&mut self, event: &str, body: Value) -> io::Result<()> {
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
