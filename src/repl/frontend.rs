//! The terminal front end: reedline with a `(goat gN) ` prompt, persistent
//! history and Tab completion of command names, goroutine and thread ids,
//! function and file names.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use reedline::{
    default_emacs_keybindings, ColumnarMenu, Completer, CompletionResult, Emacs, FileBackedHistory,
    KeyCode, KeyModifiers, MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, Span, Suggestion,
};

use super::state::Session;
use super::table::{self, Arg, COMMANDS};

const HISTORY_ENTRIES: usize = 1000;

/// `(goat) ` or `(goat g12) `.
pub(super) fn prompt_text(s: &Session) -> String {
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

/// `$XDG_STATE_HOME/goat/history`, else `~/.local/state/goat/history`, with
/// its directories created; `None` when there is no writable place.
fn history_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    let dir = base.join("goat");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("history");
    // Writable (create it now, so a read-only place is found out here).
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    Some(path)
}

/// Reads commands from the terminal until `quit` or Ctrl-D. An empty line
/// repeats the previous command (as in Delve and gdb).
pub(super) fn interactive(s: &mut Session, run: &mut dyn FnMut(&mut Session, &str) -> bool) {
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
    match history_path().map(|p| FileBackedHistory::with_file(HISTORY_ENTRIES, p)) {
        Some(Ok(h)) => editor = editor.with_history(Box::new(h)),
        Some(Err(e)) => eprintln!("goat: running without history: {e}"),
        None => {}
    }
    let mut last = String::new();
    while !s.is_done() {
        let prompt = GoatPrompt(prompt_text(s));
        match editor.read_line(&prompt) {
            Ok(Signal::Success(line)) => {
                let line = if line.trim().is_empty() {
                    last.clone()
                } else {
                    line
                };
                run(s, &line);
                last = line;
                if let Ok(mut i) = ids.lock() {
                    *i = s.ids();
                }
            }
            Ok(Signal::CtrlC) => {}
            Ok(Signal::CtrlD) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("goat: terminal error: {e}");
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
        assert_eq!(complete("help ste"), ["step", "stepout"]);
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
