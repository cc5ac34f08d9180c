//! Terminals that do not answer. reedline asks the terminal where its
//! cursor is (`ESC[6n`) before each prompt and after output, and crossterm
//! waits up to 2 s for every answer: on a terminal that never answers
//! (`script` fed by a pipe, some serial consoles and CI runners) a command
//! took from 4 s to a minute to be acted on, with the target stopped all
//! along. goat asks once itself, with a short timeout, and without an
//! answer reads plain lines (with the terminal's own line editing).

use std::io::{self, BufRead, BufReader, Cursor, IsTerminal, Read, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::repl::frontend::{prompt_text, submit};
use crate::repl::history::History;
use crate::session::Session;

/// How long the terminal has to answer: a local one takes well under a
/// millisecond, one over ssh a round trip.
pub(in crate::repl) const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// What asking the terminal found.
pub(in crate::repl) struct Probe {
    pub answered: bool,
    /// Input typed ahead that the probe read on the way (not the answer):
    /// the session's first input.
    pub typed: Vec<u8>,
}

/// Asks the terminal on stdout where the cursor is and waits up to
/// `timeout` for the answer on stdin, which is put in non-canonical mode
/// without echo meanwhile (so the answer is neither held for a newline
/// nor shown), then restored.
pub(in crate::repl) fn probe(timeout: Duration) -> Probe {
    let mut typed = Vec::new();
    let _ = io::stdout().flush();
    let Some(_raw) = RawInput::enter() else {
        return Probe {
            answered: false,
            typed,
        };
    };
    let query = b"\x1b[6n";
    // SAFETY: writing a buffer of that length to stdout.
    let wrote = unsafe { libc::write(1, query.as_ptr().cast(), query.len()) };
    let deadline = Instant::now() + timeout;
    while wrote == query.len() as isize {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if ready <= 0 {
            break;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reading into a buffer of that length; poll said stdin has
        // input (or hung up, and then read returns at once).
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        typed.extend_from_slice(&buf[..n as usize]);
        if let Some(r) = find_report(&typed) {
            typed.drain(r);
            return Probe {
                answered: true,
                typed,
            };
        }
    }
    Probe {
        answered: false,
        typed,
    }
}

/// stdin in non-canonical mode without echo (signals still on: Ctrl-C
/// works as everywhere else in goat); restored when dropped.
struct RawInput(libc::termios);

impl RawInput {
    fn enter() -> Option<RawInput> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid termios to fill.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // TCSANOW, not TCSAFLUSH: input typed ahead is kept.
        // SAFETY: a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawInput(saved))
    }
}

impl Drop for RawInput {
    fn drop(&mut self) {
        // SAFETY: the termios read in `enter`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}

/// Where a cursor-position report `ESC [ ROW ; COL R` is in `bytes`.
fn find_report(bytes: &[u8]) -> Option<Range<usize>> {
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == 0x1b) {
        let start = from + i;
        if let Some(len) = report_len(&bytes[start..]) {
            return Some(start..start + len);
        }
        from = start + 1;
    }
    None
}

/// The length of the report `b` starts with, if it starts with one.
fn report_len(b: &[u8]) -> Option<usize> {
    let rest = b.strip_prefix(b"\x1b[")?;
    let row = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = rest[row..].strip_prefix(b";")?;
    let col = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    rest[col..].strip_prefix(b"R")?;
    (row > 0 && col > 0).then_some(2 + row + 1 + col + 1)
}

/// `line` without cursor-position reports: an answer that came after the
/// probe gave up lands in the first line typed.
fn strip_reports(mut line: Vec<u8>) -> Vec<u8> {
    while let Some(r) = find_report(&line) {
        line.drain(r);
    }
    line
}

/// Reads commands as plain lines until `quit`, end of input (Ctrl-D) or a
/// read error, printing the prompt first (to stderr when stdout is not a
/// terminal, so that it reaches the user and not the output file).
pub(in crate::repl) fn plain(
    s: &mut Session,
    run: &mut dyn FnMut(&mut Session, &str) -> bool,
    history: &mut Option<History>,
    typed: Vec<u8>,
) {
    let to_stdout = io::stdout().is_terminal();
    let show = |text: &str| {
        if to_stdout {
            crate::print_quiet!("{text}");
        } else {
            crate::eprint_quiet!("{text}");
        }
    };
    let mut input = BufReader::new(Cursor::new(typed).chain(io::stdin()));
    let mut last = String::new();
    while !s.is_done() {
        show(&format!("{} ", prompt_text(s)));
        let mut buf = Vec::new();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => {
                // End the prompt's line, as a shell does on Ctrl-D.
                show("\n");
                break;
            }
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&strip_reports(buf)).into_owned();
        let line = text.trim_end_matches(['\n', '\r']).to_string();
        submit(s, run, history, &mut last, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cursor_reports_among_typed_input() {
        assert_eq!(find_report(b"\x1b[24;80R"), Some(0..8));
        assert_eq!(find_report(b"gr 1\n\x1b[3;1Rbt"), Some(5..11));
        assert_eq!(find_report(b"\x1b[A\x1b[1;1R"), Some(3..9));
        for no in [
            &b"quit\n"[..],
            b"\x1b[24;R",
            b"\x1b[;1R",
            b"\x1b[2;3",
            b"\x1b",
        ] {
            assert_eq!(find_report(no), None, "{no:?}");
        }
        assert_eq!(strip_reports(b"\x1b[5;1Rgrs\x1b[5;9R\n".to_vec()), b"grs\n");
    }
}
