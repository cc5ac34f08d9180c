//! The command reference documents are generated from the command table,
//! so they cannot drift from `help`: README's short list (between
//! `<!-- commands -->` markers) and docs/COMMANDS.md (every command's
//! usage). `GOAT_BLESS=1 cargo test --lib cmdref` rewrites both.

use super::{Group, COMMANDS};

/// goat commands whose Delve name differs, or that Delve lacks.
const DELVE: &[(&str, &str)] = &[
    ("core", "Delve: `dump`"),
    ("dump-bytes", "goat only"),
    ("detach", "goat only; Delve: `quit -c`"),
];

fn delve_note(name: &str) -> Option<&'static str> {
    DELVE.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

fn names(c: &super::Command) -> String {
    let mut s = format!("`{}`", c.name);
    for a in c.aliases {
        s.push_str(&format!("/`{a}`"));
    }
    if let Some(d) = delve_note(c.name) {
        s.push_str(&format!(" ({d})"));
    }
    s
}

/// README's list: one line per `help` group.
fn readme_list() -> String {
    let mut s = String::new();
    for g in Group::ALL {
        let cmds: Vec<String> = COMMANDS
            .iter()
            .filter(|c| c.group == g)
            .map(names)
            .collect();
        // Nested under README's `goat attach` item, hence the indent.
        s.push_str(&format!("  - {}: {}\n", g.title(), cmds.join(", ")));
    }
    s
}

/// docs/COMMANDS.md: every command's one-line help and full usage.
fn commands_md() -> String {
    let mut s = String::from(
        "# goat attach / goat debug commands\n\n\
         Generated from `src/repl/table.rs` (the table `help` reads) by\n\
         `GOAT_BLESS=1 cargo test --lib cmdref`; do not edit by hand.\n\
         The command line's own commands (`goat stacks` with `--json`, `--group`,\n\
         `--pprof FILE` for a goroutine profile `go tool pprof` reads, `goat core`,\n\
         `goat check`) are in README.md and `goat help`.\n",
    );
    for g in Group::ALL {
        s.push_str(&format!("\n## {}\n", g.title()));
        for c in COMMANDS.iter().filter(|c| c.group == g) {
            s.push_str(&format!("\n### {}\n\n{}\n\n```\n", names(c), c.help));
            s.push_str(c.usage);
            s.push_str("\n```\n");
        }
    }
    s
}

const BEGIN: &str = "<!-- commands: generated from src/repl/table.rs -->\n";
/// Indented as README's list item is, so a rewrite keeps the indent.
const END: &str = "  <!-- /commands -->\n";

/// `text` with what stands between the markers replaced by `list`.
fn splice(text: &str, list: &str) -> Option<String> {
    let b = text.find(BEGIN)? + BEGIN.len();
    let e = b + text[b..].find(END)?;
    Some(format!("{}{list}{}", &text[..b], &text[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares `path` with `want`, or writes it under GOAT_BLESS=1.
    fn check(path: &str, want: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if std::env::var_os("GOAT_BLESS").is_some() {
            std::fs::write(&path, want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: GOAT_BLESS=1 cargo test --lib cmdref",
            path.display()
        );
    }

    #[test]
    fn reference_documents_match_the_table() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(readme_path).unwrap();
        let spliced = splice(&readme, &readme_list()).expect("README has the command markers");
        check("README.md", &spliced);
        check("docs/COMMANDS.md", &commands_md());
        for c in COMMANDS {
            assert!(spliced.contains(&format!("`{}`", c.name)), "{}", c.name);
        }
        for (name, _) in DELVE {
            assert!(COMMANDS.iter().any(|c| c.name == *name), "{name}");
        }
    }
}
