//! funcs, types, sources, vars, libraries: what the binary and the process
//! are made of, filtered by an optional regular expression (pattern.rs).

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::{bail, Result};

use crate::repl::pattern::Pattern;
use crate::session::Session;
use crate::values::{Place, Value};

/// The optional REGEX of `cmd [REGEX]`.
fn filter(cmd: &str, args: &[&str]) -> Result<Option<Pattern>> {
    match args {
        [] => Ok(None),
        [re] => Ok(Some(Pattern::new(re)?)),
        _ => bail!("usage: {cmd} [REGEX]"),
    }
}

fn write_sorted(out: &mut dyn Write, names: BTreeSet<String>, re: Option<&Pattern>) -> Result<()> {
    for n in names.iter().filter(|n| re.is_none_or(|re| re.matches(n))) {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// `funcs [REGEX]`: every function of the binary's pclntab.
pub fn funcs(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let re = filter("funcs", args)?;
    let tab = s.prog.binary().pclntab()?;
    let names = tab
        .functions()
        .filter_map(|f| f.name().ok().map(str::to_string))
        .collect();
    write_sorted(out, names, re.as_ref())
}

/// `sources [REGEX]`: the source files of the binary's functions.
pub fn sources(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let re = filter("sources", args)?;
    let tab = s.prog.binary().pclntab()?;
    let names = tab
        .functions()
        .filter_map(|f| f.file_line(f.entry()).ok().map(|(f, _)| f.to_string()))
        .collect();
    write_sorted(out, names, re.as_ref())
}

/// `types [REGEX]`: the named types of the binary's DWARF.
pub fn types(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let re = filter("types", args)?;
    let index = s.var_index()?;
    let names = index
        .types
        .values()
        .filter(|t| !t.name.is_empty())
        .map(|t| t.name.clone())
        .collect();
    write_sorted(out, names, re.as_ref())
}

/// `vars [REGEX]`: package variables and their values, printed as
/// `print` prints them.
pub fn vars(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let re = filter("vars", args)?;
    let scope = s.scope()?;
    let mut globals: Vec<_> = scope
        .index
        .globals()
        .filter(|(n, _)| re.as_ref().is_none_or(|re| re.matches(n)))
        .collect();
    globals.sort_by_key(|(n, _)| *n);
    for (name, g) in globals {
        let Some(ty) = g.ty else {
            writeln!(out, "{name} = (no type information)")?;
            continue;
        };
        let v = Value {
            ty,
            place: Place::Mem(g.addr.wrapping_add(s.bias)),
        };
        writeln!(out, "{name} = {}", scope.format(&v))?;
    }
    Ok(())
}

/// `libraries`: the shared objects mapped into the process.
pub fn libraries(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: libraries");
    }
    let t = s.target()?;
    let mut seen = BTreeSet::new();
    let mut n = 0;
    for m in t.mappings() {
        let Some(path) = &m.path else { continue };
        let name = crate::repl::base_name(path);
        // A shared object: `libc.so.6`, `ld-linux-x86-64.so.2`.
        if !(name.contains(".so.") || name.ends_with(".so")) || !seen.insert(path.clone()) {
            continue;
        }
        writeln!(out, "{n}. {:#x} {path}", m.start.wrapping_sub(m.offset))?;
        n += 1;
    }
    if n == 0 {
        writeln!(
            out,
            "(no shared libraries: the program is statically linked)"
        )?;
    }
    Ok(())
}

/// `dump FILE`: Delve's name for `core`.
pub fn dump(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    // Delve's dump always names its file; goat's core has a default.
    if !args.iter().any(|a| !a.starts_with('-')) {
        bail!("usage: dump [-f] FILE");
    }
    crate::repl::general::core(s, args, out)
}
