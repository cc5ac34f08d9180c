//! The terminal front end: reedline with a `(goat gN) ` prompt, persistent
//! history and Tab completion of command names, goroutine and thread ids,
//! function and file names; plain lines on a terminal that does not answer
//! reedline's queries (`term.rs`).

use std::borrow::Cow;
use std::io::{self, IsTerminal};
use std::sync::{Arc, Mutex};

use reedline::{
    default_emacs_keybindings, ColumnarMenu, Completer, CompletionResult, EditCommand, Emacs,
    FileBackedHistory, History as _, HistoryItem, KeyCode, KeyModifiers, MenuBuilder, Prompt,
    PromptEditMode, PromptHistorySearch, Reedline, ReedlineEvent, ReedlineMenu, Signal, Span,
    Suggestion,
};

use crate::repl::history::{self, History};
use crate::repl::table::{self, Arg, COMMANDS};
use crate::repl::term;
use crate::session::Session;

/// `(goat) ` or `(goat g12) `.
pub(in crate::repl) fn prompt_text(s: &Session) -> String {
    match s.current_goroutine() {
        Some(id) => format!("(goat g{id})"),
        None => "(goat)".to_string(),
    }
}

struct GoatPrompt(String);

impl Prompt for GoatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed(" ")
    }
    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }
    fn render_prompt_history_search_indicator(&self, h: PromptHistorySearch) -> Cow<'_, str> {
        Cow::Owned(format!("(search: {}) ", h.term))
    }
}

/// Goroutine and thread ids of the current stop, refreshed after each command.
type Ids = Arc<Mutex<(Vec<u64>, Vec<i32>)>>;

struct GoatCompleter {
    ids: Ids,
    /// Function names and `FILE:`s of the executable (see `Session::location_names`).
    locations: Arc<Vec<String>>,
}

impl Completer for GoatCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let span = Span { start, end: pos };
        let first = before[..start].split_whitespace().next();
        let candidates: Vec<String> = match first.map(|w| table::find(w).map(|c| c.arg)) {
            // The command word itself.
            None => COMMANDS
                .iter()
                .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
                .map(str::to_string)
                .collect(),
            Some(Some(Arg::Command)) => COMMANDS.iter().map(|c| c.name.to_string()).collect(),
            Some(Some(Arg::Goroutine)) if before[..start].split_whitespace().count() == 1 => {
                let ids = self.ids.lock().map(|i| i.0.clone()).unwrap_or_default();
                ids.iter().map(u64::to_string).collect()
            }
            Some(Some(Arg::Thread)) => {
                let ids = self.ids.lock().map(|i| i.1.clone()).unwrap_or_default();
                ids.iter().map(i32::to_string).collect()
            }
            Some(Some(Arg::Location)) => self
                .locations
                .iter()
                .filter(|l| l.starts_with(word))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut matches: Vec<String> = candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .collect();
        matches.sort();
        matches.dedup();
        let suggestions: Vec<Suggestion> = matches
            .into_iter()
            .map(|value| Suggestion {
                // `FILE:` goes on with a line number.
                append_whitespace: !value.ends_with(':'),
                value,
                span,
                ..Suggestion::default()
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

/// Reads commands from the terminal until `quit` or Ctrl-D: with reedline
/// when the terminal answers its queries, else as plain lines (`term.rs`).
pub(in crate::repl) fn interactive(
    s: &mut Session,
    run: &mut dyn FnMut(&mut Session, &str) -> bool,
) {
    let (mut history, entries) = match History::open() {
        Ok(Some((h, entries))) => (Some(h), entries),
        Ok(None) => (None, Vec::new()),
        Err(note) => {
            crate::eprintln_quiet!("{note}");
            (None, Vec::new())
        }
    };
    // With stdout not a terminal, the query would go into the output
    // instead of to the terminal, and never be answered.
    if !io::stdout().is_terminal() {
        return term::plain(s, run, &mut history, Vec::new());
    }
    let probe = term::probe(term::PROBE_TIMEOUT);
    if !probe.answered {
        crate::eprintln_quiet!(
            "goat: the terminal did not answer a cursor-position query within {} ms; \
             reading plain lines (no completion or history keys)",
            term::PROBE_TIMEOUT.as_millis()
        );
        return term::plain(s, run, &mut history, probe.typed);
    }
    edit(s, run, &mut history, entries, probe.typed);
}

/// Runs `line` (an empty line repeats the previous command, as in Delve
/// and gdb), after adding it to the history.
pub(in crate::repl) fn submit(
    s: &mut Session,
    run: &mut dyn FnMut(&mut Session, &str) -> bool,
    history: &mut Option<History>,
    last: &mut String,
    line: String,
) {
    let line = if line.trim().is_empty() {
        last.clone()
    } else {
        History::add(history, &line);
        line
    };
    run(s, &line);
    *last = line;
}

/// The reedline session. `typed`: input typed before it started, whose
/// whole lines are run and the rest left on the first prompt's line.
fn edit(
    s: &mut Session,
    run: &mut dyn FnMut(&mut Session, &str) -> bool,
    history: &mut Option<History>,
    entries: Vec<String>,
    typed: Vec<u8>,
) {
    let ids: Ids = Arc::new(Mutex::new(s.ids()));
    let mut keys = default_emacs_keybindings();
    keys.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion_menu".to_string()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let menu = ColumnarMenu::default().with_name("completion_menu");
    let mut editor = Reedline::create()
        .with_completer(Box::new(GoatCompleter {
            ids: ids.clone(),
            locations: Arc::new(s.location_names()),
        }))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        // Like a shell: a lone match is taken, a shared prefix filled in.
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_edit_mode(Box::new(Emacs::new(keys)));
    // In memory only: the file is written by `History` (see history.rs).
    if let Ok(mut h) = FileBackedHistory::new(history::ENTRIES) {
        for e in entries {
            let _ = h.save(HistoryItem::from_command_line(e));
        }
        editor = editor.with_history(Box::new(h));
    }
    let mut last = String::new();
    let typed = String::from_utf8_lossy(&typed).into_owned();
    let whole = typed.rfind('\n').map_or(0, |i| i + 1);
    let (lines, rest) = typed.split_at(whole);
    for line in lines.lines() {
        if s.is_done() {
            return;
        }
        crate::print_quiet!("{} {line}\n", prompt_text(s));
        submit(s, run, history, &mut last, line.to_string());
    }
    if !rest.is_empty() {
        editor.run_edit_commands(&[EditCommand::InsertString(rest.to_string())]);
    }
    while !s.is_done() {
        let prompt = GoatPrompt(prompt_text(s));
        match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => {
                submit(s, run, history, &mut last, line);
                if let Ok(mut i) = ids.lock() {
                    *i = s.ids();
                }
            }
            // As on a terminal in plain-line mode, where the same key is a
            // SIGINT that goat answers with this note (tracer/signals.rs):
            // someone pressing Ctrl-C at the prompt may be trying to leave.
            Ok(Signal::CtrlC) => crate::eprintln_quiet!(
                "goat: Ctrl-C interrupts a running continue; to leave, type quit or press Ctrl-D"
            ),
            Ok(Signal::CtrlD) => break,
            Ok(_) => {}
            Err(e) => {
                crate::eprintln_quiet!("goat: terminal error: {e}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        let ids: Ids = Arc::new(Mutex::new((vec![1, 3, 30, 31, 4], vec![100, 101, 200])));
        let locations = ["main.main", "main.tick", "main.go:", "math.Abs"];
        let locations = Arc::new(locations.map(String::from).to_vec());
        let mut c = GoatCompleter { ids, locations };
        c.complete(line, line.len())
            .suggestions()
            .iter()
            .map(|s| s.value.clone())
            .collect()
    }

    #[test]
    fn completes_command_names_and_aliases() {
        assert_eq!(complete("gorou"), ["goroutine", "goroutines"]);
        assert_eq!(complete("  bt"), ["bt"]);
        assert_eq!(complete("help sta"), ["stack"]);
        assert_eq!(
            complete("help ste"),
            ["step", "step-instruction", "stepout"]
        );
        assert!(complete("zz").is_empty());
    }

    #[test]
    fn completes_functions_and_files_after_a_location_command() {
        assert_eq!(
            complete("list main."),
            ["main.go:", "main.main", "main.tick"]
        );
        assert_eq!(complete("ls math"), ["math.Abs"]);
    }

    #[test]
    fn completes_goroutine_and_thread_ids_after_their_commands() {
        assert_eq!(complete("gr 3"), ["3", "30", "31"]);
        assert_eq!(complete("goroutine "), ["1", "3", "30", "31", "4"]);
        assert_eq!(complete("thread 1"), ["100", "101"]);
        // `goroutine ID COMMAND`: the word after the id is not an id.
        assert!(complete("gr 3 3").is_empty());
        assert!(complete("bt 3").is_empty());
    }
}
