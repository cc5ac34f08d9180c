//! Errors as the client reads them: one line, each cause after a colon
//! (a DAP error response has one message, no chain).

use crate::session::SessionError;

/// An error as one line, its causes after colons.
pub(super) fn error_text(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// An engine error as one line (for `map_err`).
pub(super) fn text(e: SessionError) -> String {
    error_text(&e)
}
