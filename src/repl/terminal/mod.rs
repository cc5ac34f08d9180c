//! The terminal: reedline (`frontend.rs`) or plain lines (`term.rs`), the
//! history file (`history.rs`), multi-line input (`multiline.rs`).

pub(super) mod frontend;
pub(super) mod history;
pub(super) mod multiline;
pub(super) mod term;
