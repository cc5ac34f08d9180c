//! The progress bar of long core work (writing a core, unpacking one).

use std::io::IsTerminal;

/// A bar on stderr for `total` bytes of `what` ("writing core"), when the
/// work is at least `min` bytes and stderr is a terminal (a pipe or a log
/// gets no bar).
pub(crate) fn bar(what: &str, total: u64, min: u64) -> Option<indicatif::ProgressBar> {
    if total < min || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "goat: {what} {{bar:30}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} eta {{eta}}"
    ))
    .ok()?;
    bar.set_style(style);
    Some(bar)
}
