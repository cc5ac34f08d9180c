//! Text commands one front end lends another: the terminal's command set
//! (`repl/`), run from an editor's debug console (DAP's `evaluate` in the
//! `repl` context), as `dlv dap` runs Delve's. The engine only names the
//! seam: `main.rs` hands the REPL's commands to the DAP server, so that
//! neither front end imports the other.

use std::io::Write;

use super::Session;

/// A command set run on a session by a front end that does not own it.
pub trait TextCommands {
    /// Whether `word` names one of the commands (not an alias: a console
    /// tries an expression first, and `n` is a variable more often than
    /// `next`).
    fn is_command(&self, word: &str) -> bool;
    /// Runs one command line; what it prints goes to `out`. A command
    /// that runs the program, ends the session or needs a terminal is
    /// refused: the borrowing front end owns those.
    fn run(&self, s: &mut Session, line: &str, out: &mut dyn Write) -> Result<(), String>;
}
