//! `break`, `trace`, `cond`, `on`, `clear`, `toggle`, `breakpoints`
//! (`bpcmds.rs`), what a hit shows (`bphit.rs`), `watch` (`watch.rs`).

pub(super) mod bpcmds;
pub(super) mod bphit;
pub(super) mod watch;
