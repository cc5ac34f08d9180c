//! `help`, `core`, `quit`/`detach` (`general.rs`), `config` (`config.rs`,
//! saved by `config_file.rs`), `source FILE` and `transcript` (`script.rs`).

pub(super) mod config;
pub(super) mod config_file;
pub(super) mod general;
pub(super) mod script;
