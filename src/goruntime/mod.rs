//! The Go runtime's scheduler state as the target's memory holds it.

mod model;

pub use model::{CreatedBy, Dump, Elision, Frame, Goroutine, MachineRef};
