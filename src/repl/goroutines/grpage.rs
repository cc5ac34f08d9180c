//! How much of a long `goroutines` list is printed: Delve prints every
//! line (100k of them for a big service, through its pager); goat prints
//! one screen, or a fixed count when the output is not a terminal, then
//! how many more there are and how to see them (`-n N`, `-all`).

use std::io::IsTerminal;

/// Lines (goroutines or groups) listed when the output is not a terminal.
pub(in crate::repl) const NOT_A_TERMINAL: usize = 100;
/// The fewest lines listed on a terminal, however small.
const MIN_SCREEN: usize = 10;
/// Rows kept free on a terminal: the count lines and the next prompt.
const RESERVED_ROWS: usize = 3;

/// How many lines a listing prints when not told: what fits the terminal
/// stdout is, else [`NOT_A_TERMINAL`].
pub(in crate::repl) fn screen() -> usize {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return NOT_A_TERMINAL;
    }
    terminal_rows().map_or(NOT_A_TERMINAL, |rows| {
        rows.saturating_sub(RESERVED_ROWS).max(MIN_SCREEN)
    })
}

/// The rows of the terminal on stdout, when it says.
fn terminal_rows() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the one winsize it is given.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) };
    (r == 0 && size.ws_row > 0).then_some(usize::from(size.ws_row))
}

/// The line after a cut listing: `(... 99900 more goroutines: goroutines
/// -n N lists N, -all every one)`.
pub(in crate::repl) fn more_line(more: usize, what: &str) -> String {
    format!("(... {more} more {what}: goroutines -n N lists N, -all every one)")
}
