//! A parser for the Go runtime's goroutine dump, so tests can hold goat's
//! output against the runtime's own, goroutine by goroutine.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: u64,
    /// Everything between `[` and `]`, e.g. `chan receive, locked to thread`.
    pub bracket: String,
    /// The `gp=0x...` value when printed.
    pub gp: Option<String>,
    /// (function without args, file, line) per frame; elision lines as ("...", "", 0).
    pub frames: Vec<(String, String, u32)>,
    /// created by: (function + " in goroutine N" if any, file, line).
    pub created_by: Option<(String, String, u32)>,
    /// The whole block as printed, minus the header's ` m=N mp=0x..` /
    /// ` m=nil` (which M a goroutine last ran on can differ between looks).
    pub text: String,
}

impl Block {
    pub fn status(&self) -> &str {
        self.bracket.split(',').next().unwrap_or("").trim()
    }
    pub fn locked(&self) -> bool {
        self.bracket.contains("locked to thread")
    }
}

/// Parses every `goroutine N ...:` block in `text` (anything else is skipped).
pub fn parse(text: &str) -> BTreeMap<u64, Block> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(rest) = lines[i].strip_prefix("goroutine ") else {
            i += 1;
            continue;
        };
        if !lines[i].ends_with("]:") {
            i += 1;
            continue;
        }
        let id: u64 = rest
            .split([' ', '['])
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        let open = lines[i].find('[').unwrap_or(0);
        let bracket = lines[i][open + 1..lines[i].len() - 2].to_string();
        let gp = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix("gp="))
            .map(str::to_string);
        let header = lines[i];
        let header = match (header.find(" m="), header.find(" [")) {
            (Some(m), Some(b)) if m < b => format!("{}{}", &header[..m], &header[b..]),
            _ => header.to_string(),
        };
        let mut block = Block {
            id,
            bracket,
            gp,
            frames: Vec::new(),
            created_by: None,
            text: header,
        };
        i += 1;
        while i < lines.len() && !lines[i].is_empty() && !lines[i].starts_with("goroutine ") {
            let l = lines[i];
            // `\tgoroutine running on other thread; ...` / `\tgoroutine stack
            // unreadable: ...` stand alone, without a file line.
            if l.starts_with("\tgoroutine ") {
                block.text.push('\n');
                block.text.push_str(l);
                i += 1;
                continue;
            }
            block.text.push('\n');
            block.text.push_str(l);
            if let Some(next) = lines.get(i + 1).filter(|_| !l.starts_with("...")) {
                block.text.push('\n');
                block.text.push_str(next);
            }
            if l.starts_with("...") {
                block.frames.push((l.to_string(), String::new(), 0));
                i += 1;
                continue;
            }
            let (file, line) = lines.get(i + 1).map(|n| file_line(n)).unwrap_or_default();
            if let Some(f) = l.strip_prefix("created by ") {
                block.created_by = Some((f.to_string(), file, line));
            } else {
                let func = match l.rfind('(') {
                    Some(p) if l.ends_with(')') => &l[..p],
                    _ => l,
                };
                block.frames.push((func.to_string(), file, line));
            }
            i += 2;
        }
        out.insert(id, block);
    }
    out
}

fn file_line(l: &str) -> (String, u32) {
    let l = l.trim_start_matches('\t');
    let loc = l.split(' ').next().unwrap_or("");
    match loc.rsplit_once(':') {
        Some((f, n)) => (f.to_string(), n.parse().unwrap_or(0)),
        None => (loc.to_string(), 0),
    }
}

/// Statuses of goroutines that cannot move between goat's look and the
/// SIGQUIT: everything parked. Running/runnable ones are not compared.
fn parked(b: &Block) -> bool {
    !matches!(
        b.status(),
        "running" | "runnable" | "preempted" | "copystack"
    )
}

/// In a system call when goat looked and parked otherwise by the SIGQUIT:
/// the call returned between the two looks. (One that stays in its call,
/// a read of a pipe, is compared.)
fn left_its_syscall(got: &Block, want: &Block) -> bool {
    got.status() == "syscall" && want.status() != "syscall"
}

/// A goroutine the runtime started for itself (scavenger, sweeper, forced
/// GC, finalizers, GC workers): made by `runtime.*` and standing only in
/// runtime code.
fn runtime_worker(b: &Block) -> bool {
    let runtime = |f: &str| f.starts_with("runtime.") || f == "...";
    b.created_by
        .as_ref()
        .is_some_and(|(f, _, _)| f.starts_with("runtime."))
        && b.frames.iter().all(|(f, _, _)| runtime(f))
}

/// Every parked goroutine of the runtime's dump is in goat's, identical
/// (the runtime's own workers only where they did not move meanwhile).
pub fn assert_same_dump(flavour: &str, goat_text: &str, runtime_text: &str) {
    let ours = parse(goat_text);
    let theirs = parse(runtime_text);
    assert!(
        theirs.len() >= 15,
        "{flavour}: runtime dump has {} goroutines:\n{runtime_text}",
        theirs.len()
    );
    let mut compared = 0;
    let mut moving = Vec::new();
    for (id, want) in &theirs {
        if !parked(want) {
            continue;
        }
        let Some(got) = ours.get(id) else {
            // Started after goat looked (a GC worker, say): nothing to compare.
            continue;
        };
        if !parked(got) || left_its_syscall(got, want) {
            // Moving when goat looked: main still returning from the write
            // of "ready" (seen on a loaded machine), parked by the SIGQUIT.
            moving.push(*id);
            continue;
        }
        if got.bracket != want.bracket && runtime_worker(want) {
            // The runtime's own workers wake on its timers and GC cycles:
            // the scavenger goes from [sleep] to [GC scavenge wait] between
            // goat's look and the SIGQUIT on a loaded machine.
            continue;
        }
        let ctx = || {
            format!(
                "{flavour}: goroutine {id}\n--- goat:\n{goat_text}\n--- runtime:\n{runtime_text}"
            )
        };
        assert_eq!(got.bracket, want.bracket, "status/locked differ, {}", ctx());
        assert_eq!(got.gp, want.gp, "gp differs, {}", ctx());
        assert_eq!(got.frames, want.frames, "frames differ, {}", ctx());
        assert_eq!(
            got.created_by,
            want.created_by,
            "created by differs, {}",
            ctx()
        );
        compared += 1;
    }
    assert!(
        compared >= 15,
        "{flavour}: only {compared} parked goroutines compared"
    );
    // A moment's race, not a habit: goat seeing many goroutines move
    // that the runtime then shows parked would be goat's error.
    assert!(
        moving.len() <= 2,
        "{flavour}: goroutines {moving:?} running or in a system call for goat, parked for the runtime:\n--- goat:\n{goat_text}\n--- runtime:\n{runtime_text}"
    );
    // The fixture's own goroutines all exist before it says "ready": goat must list each.
    for (id, b) in &theirs {
        let own = *id == 1
            || b.created_by
                .as_ref()
                .is_some_and(|c| c.0.starts_with("main.main"));
        assert!(
            !own || ours.contains_key(id),
            "{flavour}: goat missed goroutine {id}\n{goat_text}"
        );
    }
}
