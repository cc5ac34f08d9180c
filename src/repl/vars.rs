//! args, locals, print, dump-bytes: variables of the selected frame and
//! package variables, read through DWARF.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{anyhow, bail, Context, Result};

use super::state::Session;
use crate::goruntime::vars::{expr, types::kind, Place};

/// `dump-bytes` writes at most this many bytes.
const DUMP_MAX: u64 = 64 << 20;

fn list(s: &mut Session, params: bool, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: {}", if params { "args" } else { "locals" });
    }
    let scope = s.scope()?;
    let vars = scope.variables(params).map_err(|e| anyhow!(e))?;
    if vars.is_empty() {
        writeln!(out, "(no {})", if params { "arguments" } else { "locals" })?;
    }
    for (name, v) in vars {
        writeln!(out, "{name} = {}", scope.format(&v))?;
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

/// `print EXPR`
pub fn print(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if args.is_empty() {
        bail!("usage: print EXPR");
    }
    let e = expr::parse(&args.join(" ")).map_err(|e| anyhow!(e))?;
    let scope = s.scope()?;
    let v = scope.eval(&e).map_err(|e| anyhow!(e))?;
    if e.address_of {
        let Place::Mem(a) = v.place else {
            bail!("{} is not in memory: it has no address", e.name);
        };
        writeln!(out, "(*{})({a:#x})", scope.type_name(v.ty))?;
    } else {
        writeln!(out, "{}", scope.format(&v))?;
    }
    Ok(())
}

/// `dump-bytes EXPR FILE [-f]`
pub fn dump_bytes(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let force = args.contains(&"-f");
    let words: Vec<&str> = args.iter().copied().filter(|a| *a != "-f").collect();
    let [text, file] = words[..] else {
        bail!("usage: dump-bytes EXPR FILE [-f]");
    };
    let e = expr::parse(text).map_err(|e| anyhow!(e))?;
    if e.address_of {
        bail!("dump-bytes takes a string, []byte or [N]byte value, not an address");
    }
    let scope = s.scope()?;
    let v = scope.eval(&e).map_err(|e| anyhow!(e))?;
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
    let bytes = match base {
        Place::Mem(addr) => {
            let mut b = vec![0u8; len as usize];
            scope.mem.read(addr, &mut b)?;
            b
        }
        other => scope.read(&other, 0, len).map_err(|e| anyhow!(e))?,
    };
    let mut opts = OpenOptions::new();
    opts.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(file).with_context(|| {
        if force {
            format!("cannot open {file}")
        } else {
            format!("cannot create {file} (use -f to overwrite an existing file)")
        }
    })?;
    f.write_all(&bytes)
        .with_context(|| format!("writing {file}"))?;
    writeln!(out, "wrote {} bytes to {file}", bytes.len())?;
    Ok(())
}
