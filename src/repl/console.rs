//! The REPL's commands lent to an editor's debug console (`goat dap`'s
//! `evaluate` in the `repl` context, through `session::TextCommands`):
//! every command of the table but those that run the program, end the
//! session or need a terminal, which the editor owns.

use std::io::Write;

use super::table;
use crate::session::{Session, TextCommands};

/// Commands a console may not run, and why.
const REFUSED: &[(&str, &str)] = &[
    ("continue", "use the editor's Continue"),
    ("next", "use the editor's Step Over"),
    ("step", "use the editor's Step Into"),
    ("stepout", "use the editor's Step Out"),
    ("step-instruction", "the editor steps by lines"),
    ("call", "a call runs the program"),
    ("watch", "the editor's run does not follow watchpoints"),
    ("detach", "use the editor's Disconnect"),
    ("quit", "use the editor's Disconnect"),
    ("source", "scripts run at the terminal"),
    ("transcript", "the console keeps its own"),
    ("edit", "the source is open in the editor"),
];

/// The REPL's command set, as a debug console runs it.
pub struct Console;

impl TextCommands for Console {
    fn is_command(&self, word: &str) -> bool {
        table::COMMANDS.iter().any(|c| c.name == word)
    }

    fn run(&self, s: &mut Session, line: &str, out: &mut dyn Write) -> Result<(), String> {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some(cmd) = table::find(first) {
            if let Some((_, why)) = REFUSED.iter().find(|(name, _)| *name == cmd.name) {
                return Err(format!(
                    "{} is not run from the debug console: {why}",
                    cmd.name
                ));
            }
        }
        table::execute(s, line, out).map_err(|e| format!("{e:#}"))
    }
}
