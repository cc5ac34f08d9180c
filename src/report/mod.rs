//! Goroutine dumps as text (the runtime's own layout), JSON and groups.
