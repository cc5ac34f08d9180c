//! args, locals, print, dump-bytes: variables of the selected frame and
//! package variables, read through DWARF.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::outfile::{self, TempCore};
use crate::process::Memory;
use crate::repl::multiline;
use crate::repl::pattern::Pattern;
use crate::session::Session;
use crate::values::eval::{Val, Verb};
use crate::values::{types::kind, Place};

/// `dump-bytes` writes at most this many bytes: more than any real slice,
/// less than a corrupt length would ask for.
const DUMP_MAX: u64 = 64 << 30;
/// And copies them this many at a time.
const DUMP_CHUNK: u64 = 8 << 20;

/// `args`/`locals [-v] [REGEX]` (Delve's forms): only the names REGEX
/// matches; `-v` lays each value out on lines as Delve's verbose form does.
fn list(s: &mut Session, params: bool, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let cmd = if params { "args" } else { "locals" };
    let (verbose, rest) = match args {
        ["-v", rest @ ..] => (true, rest),
        _ => (false, args),
    };
    let re = match rest {
        [] => None,
        [re] => Some(Pattern::new(re)?),
        _ => bail!("usage: {cmd} [-v] [REGEX]"),
    };
    let scope = s.scope()?;
    let vars = scope.variables(params).map_err(|e| anyhow!(e))?;
    let mut shown = 0;
    for (name, v) in vars {
        if re.as_ref().is_some_and(|re| !re.matches(&name)) {
            continue;
        }
        shown += 1;
        let text = scope.format(&v);
        let text = if verbose {
            multiline::layout(&text)
        } else {
            text
        };
        writeln!(out, "{name} = {text}")?;
    }
    if shown == 0 {
        writeln!(out, "(no {})", if params { "arguments" } else { "locals" })?;
    }
    Ok(())
}

/// `args`
pub fn args(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    list(s, true, args, out)
}

/// `locals`
pub fn locals(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    list(s, false, args, out)
}

/// `print [%VERB] EXPR`
pub fn print(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (verb, rest) = match args.first().and_then(|a| Verb::parse(a)) {
        Some(v) => (Some(v), &args[1..]),
        None => (None, args),
    };
    if rest.is_empty() {
        bail!("usage: print EXPR");
    }
    let scope = s.scope()?;
    let v = scope.eval_text(&rest.join(" ")).map_err(|e| anyhow!(e))?;
    writeln!(out, "{}", scope.show(&v, verb).map_err(|e| anyhow!(e))?)?;
    Ok(())
}

/// `whatis EXPR`: the type of an expression, or a type itself.
pub fn whatis(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if args.is_empty() {
        bail!("usage: whatis EXPR");
    }
    let scope = s.scope()?;
    let v = scope.eval_text(&args.join(" ")).map_err(|e| anyhow!(e))?;
    writeln!(out, "{}", scope.val_type(&v))?;
    // As Delve: an interface also names what it holds.
    if let Val::Typed(t) = &v {
        if scope.kind(t.ty) == kind::INTERFACE {
            if let Ok(crate::values::format::Dynamic::Value(d)) = scope.dynamic(t) {
                writeln!(out, "Concrete type: {}", scope.type_name(d.ty))?;
            }
        }
    }
    Ok(())
}

/// `dump-bytes EXPR FILE [-f]`
pub fn dump_bytes(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (force, words) = crate::repl::force_flag(args);
    let [text, file] = words[..] else {
        bail!("usage: dump-bytes EXPR FILE [-f]");
    };
    let scope = s.scope()?;
    let v = match scope.eval_text(text).map_err(|e| anyhow!(e))? {
        Val::Typed(v) => v,
        Val::Addr { .. } => {
            bail!("dump-bytes takes a string, []byte or [N]byte value, not an address")
        }
        other => bail!(
            "dump-bytes needs a string, []byte or [N]byte; {text} is a {}",
            scope.val_type(&other)
        ),
    };
    let k = scope.kind(v.ty);
    let (base, len) = match k {
        kind::STRING => {
            let ptr = scope.read_u64(&v.place, 0).map_err(|e| anyhow!(e))?;
            let len = scope.read_u64(&v.place, 8).map_err(|e| anyhow!(e))?;
            (Place::Mem(ptr), len)
        }
        kind::SLICE | kind::ARRAY => {
            let (elem, base, len, _) = scope.sequence(&v).map_err(|e| anyhow!(e))?;
            if scope.size(elem) != 1 {
                bail!("{} is not a byte sequence", scope.type_name(v.ty));
            }
            (base, len)
        }
        _ => bail!(
            "dump-bytes needs a string, []byte or [N]byte; {} is a {}",
            text,
            scope.type_name(v.ty)
        ),
    };
    if len > DUMP_MAX {
        bail!("{len} bytes is more than dump-bytes writes ({DUMP_MAX})");
    }
    // Registers and the like are small; memory is copied a chunk at a time.
    let small = match base {
        Place::Mem(_) => None,
        ref other => Some(scope.read(other, 0, len).map_err(|e| anyhow!(e))?),
    };
    // A new 0600 file renamed over FILE (see outfile/mod.rs): FILE
    // itself is never opened, so a FIFO or a device there cannot block the
    // session while the target waits stopped, and is refused like a link.
    outfile::check_dest(Path::new(file), force)?;
    let mut tmp =
        TempCore::create(Path::new(file), force).with_context(|| format!("cannot write {file}"))?;
    let copied = match (small, base) {
        (Some(b), _) => tmp.file.write_all(&b).map_err(anyhow::Error::from),
        (None, Place::Mem(addr)) => copy_out(scope.mem, addr, len, &mut tmp.file),
        (None, _) => Ok(()),
    };
    // Half a value is worse than none: the temporary goes (when dropped),
    // and FILE is as it was.
    copied.with_context(|| format!("copying the bytes to {file} (it is left as it was)"))?;
    tmp.commit()
        .with_context(|| format!("saving {file} (left as it was)"))?;
    writeln!(out, "wrote {len} bytes to {file}")?;
    Ok(())
}

/// Copies `len` bytes at `addr` of `mem` to `f`, a chunk at a time.
fn copy_out(mem: &dyn Memory, addr: u64, len: u64, f: &mut std::fs::File) -> Result<()> {
    let mut buf = vec![0u8; DUMP_CHUNK.min(len) as usize];
    let mut done = 0u64;
    while done < len {
        let n = DUMP_CHUNK.min(len - done) as usize;
        mem.read(addr + done, &mut buf[..n])?;
        f.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}
