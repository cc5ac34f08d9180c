//! `continue`, `next`, `step` and what a stop shows (`exec.rs`), `stepout`
//! (`stepout.rs`), `step-instruction` (`stepi.rs`).

pub(super) mod exec;
pub(super) mod stepi;
pub(super) mod stepout;
