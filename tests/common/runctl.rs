//! The `runctl` fixture's sessions: its flavours, its marked lines, and
//! the stops goat prints.

use std::process::Output;

/// Every release, optimized and `-N -l`.
pub const FLAVOURS: [&str; 8] = super::SESSION_FLAVOURS;

/// The fixture's line carrying `// L:name`.
pub fn line_of(name: &str) -> u32 {
    let src = std::fs::read_to_string(super::root().join("tests/fixtures/runctl/main.go"))
        .expect("runctl source");
    let marker = format!("// L:{name}");
    src.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i as u32 + 1)
        .unwrap_or_else(|| panic!("no {marker} in runctl/main.go"))
}

/// A stop goat showed: `> [goroutine G] FUNC() FILE:LINE NOTE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub g: u64,
    pub func: String,
    pub line: u32,
    pub note: String,
    /// Index of its line in the output.
    pub at: usize,
}

pub fn stops(out: &str) -> Vec<Stop> {
    out.lines()
        .enumerate()
        .filter_map(|(at, l)| {
            let rest = l.strip_prefix("> [goroutine ")?;
            let (g, rest) = rest.split_once("] ")?;
            let (func, rest) = rest.split_once("() ")?;
            let (loc, note) = rest.split_once(' ').unwrap_or((rest, ""));
            let line = loc.rsplit(':').next()?.parse().ok()?;
            Some(Stop {
                g: g.parse().ok()?,
                func: func.to_string(),
                line,
                note: note.to_string(),
                at,
            })
        })
        .collect()
}

/// `goat attach PID` with the script typed in: stdout, stderr, and the
/// context to print when an assertion fails.
pub fn session(flavour: &str, pid: i32, script: &[&str]) -> (String, String, String) {
    let out: Output = super::attach_with_stdin(pid, &[], &format!("{}\n", script.join("\n")));
    let (stdout, stderr) = (super::text(&out.stdout), super::text(&out.stderr));
    let ctx = format!("{flavour}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "{ctx}");
    (stdout, stderr, ctx)
}

/// Whether a stop is at the line marked `marker`, or at the declaration
/// of its function when the fixture marks it `marker-decl`: a breakpoint
/// after the prologue of a function is on its declaration's line when the
/// first instruction there is an argument's spill (`-N -l`) or the
/// function has no frame to set up (optimized).
pub fn at_marker(line: u32, marker: &str) -> bool {
    if line == line_of(marker) {
        return true;
    }
    let src = std::fs::read_to_string(super::root().join("tests/fixtures/runctl/main.go"))
        .expect("runctl source");
    let decl = format!("// L:{marker}-decl");
    src.lines()
        .position(|l| l.trim_end().ends_with(&decl))
        .is_some_and(|i| i as u32 + 1 == line)
}

impl Stop {
    /// Goroutine `g` stopped in `func` at the line marked `marker`.
    pub fn is(&self, g: u64, func: &str, marker: &str) -> bool {
        self.g == g && self.func == func && at_marker(self.line, marker)
    }
}
