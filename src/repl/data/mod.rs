//! regs, x.
//!
//! The family: `print`, `args`, `locals`, `vars` (`vars.rs`), `display`,
//! `set`, `call`, `funcs`/`types`/`sources`/`libraries` (`info.rs`,
//! `pattern.rs`), `why`, `heap`.

pub(super) mod call;
pub(super) mod display;
pub(super) mod heap;
pub(super) mod info;
pub(super) mod pattern;
pub(super) mod set;
pub(super) mod vars;
pub(super) mod why;

use std::io::Write;

use anyhow::Result;

use crate::session::Session;
use crate::values::eval::Val;
use crate::values::types::kind;

/// `regs`
pub fn regs(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    if !args.is_empty() {
        // Delve's -a adds floating-point and vector registers, which goat
        // does not read: printing the general ones would pass for them.
        anyhow::bail!("usage: regs (the general registers; -a is not supported)");
    }
    let g = s.current_g()?;
    if let Some(t) = s.thread_of(g) {
        let r = &t.regs;
        writeln!(out, "Thread {} (running goroutine {}):", t.tid, g.id)?;
        let rows: [(&str, u64); 24] = [
            ("Rip", r.rip),
            ("Rsp", r.rsp),
            ("Rax", r.rax),
            ("Rbx", r.rbx),
            ("Rcx", r.rcx),
            ("Rdx", r.rdx),
            ("Rsi", r.rsi),
            ("Rdi", r.rdi),
            ("Rbp", r.rbp),
            ("R8", r.r8),
            ("R9", r.r9),
            ("R10", r.r10),
            ("R11", r.r11),
            ("R12", r.r12),
            ("R13", r.r13),
            ("R14", r.r14),
            ("R15", r.r15),
            ("Orig_rax", r.orig_rax),
            ("Cs", r.cs),
            ("Eflags", r.eflags),
            ("Ss", r.ss),
            ("Fs_base", r.fs_base),
            ("Gs_base", r.gs_base),
            ("Fs", r.fs),
        ];
        for (name, v) in rows {
            write!(out, "{name:>10} = {v:#018x}")?;
            if name == "Rip" {
                write!(out, "  {}", s.symbolize(v))?;
            }
            writeln!(out)?;
        }
        return Ok(());
    }
    // Parked: the runtime saved where it resumes in g.sched, which is the
    // innermost frame's pc and sp.
    let Some(f) = g.frames.first() else {
        anyhow::bail!("goroutine {} is not on a thread and has no frames", g.id);
    };
    writeln!(
        out,
        "Goroutine {} is not running on a thread; it resumes at (g.sched):",
        g.id
    )?;
    writeln!(
        out,
        "{:>10} = {:#018x}  {} ({}:{})",
        "Rip",
        f.pc,
        f.function,
        crate::repl::base_name(&f.file),
        f.line
    )?;
    writeln!(out, "{:>10} = {:#018x}", "Rsp", f.sp)?;
    Ok(())
}

/// `x` prints at most this many bytes.
const EXAMINE_MAX: usize = 4096;

const EXAMINE_USAGE: &str = "usage: x ADDR [N] or x [-count|-len N] [-size 1] [-fmt hex] \
     [-x] ADDR   (ADDR: a number, &VAR, or a pointer, slice or string)";

/// `x ADDR [N]`, or Delve's `x [-count|-len N] [-size 1] [-fmt hex] [-x] ADDR`.
pub fn examine(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (addr, len) = match delve_flags(args)? {
        (rest, Some(n)) => match rest {
            [a] => (address(s, a)?, n),
            _ => anyhow::bail!(EXAMINE_USAGE),
        },
        (rest, None) => match rest {
            [a] => (address(s, a)?, 64),
            [a, n] => (address(s, a)?, number(n)?),
            _ => anyhow::bail!(EXAMINE_USAGE),
        },
    };
    let asked = len;
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(EXAMINE_MAX);
    let mut bytes = vec![0u8; len];
    s.target()?.read(addr, &mut bytes)?;
    for (i, line) in bytes.chunks(16).enumerate() {
        write!(out, "{:#018x}:", addr + (i * 16) as u64)?;
        for b in line {
            write!(out, " {b:02x}")?;
        }
        let pad = 16 - line.len();
        write!(out, "{}  ", "   ".repeat(pad))?;
        let text: String = line
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "{text}")?;
    }
    if asked > EXAMINE_MAX as u64 {
        // Said, not silently cut: the user asked for more than is shown.
        writeln!(
            out,
            "(x shows at most {EXAMINE_MAX} bytes: {} more not shown; `x {:#x} N` goes on from there)",
            asked - EXAMINE_MAX as u64,
            addr.wrapping_add(EXAMINE_MAX as u64)
        )?;
    }
    Ok(())
}

/// Delve's `examinemem` flags ahead of the address: what is left, and the
/// count `-count`/`-len` gave. `x` prints bytes in hex, so `-size` must be
/// 1 and `-fmt` hex; `-x` only marks the address as an expression.
fn delve_flags<'a, 'b>(args: &'a [&'b str]) -> Result<(&'a [&'b str], Option<u64>)> {
    let mut rest = args;
    let mut count = None;
    while let [flag, more @ ..] = rest {
        if *flag == "-x" {
            rest = more;
            continue;
        }
        if !matches!(*flag, "-count" | "-len" | "-size" | "-fmt") {
            break;
        }
        let [value, more @ ..] = more else {
            anyhow::bail!("x: {flag} needs a value");
        };
        match *flag {
            "-size" if *value != "1" => {
                anyhow::bail!("x: only -size 1 is supported (bytes, 16 a line)")
            }
            "-fmt" if !matches!(*value, "hex" | "x") => {
                anyhow::bail!("x: only -fmt hex is supported (bytes in hex and ASCII)")
            }
            "-count" | "-len" => count = Some(number(value)?),
            _ => {}
        }
        rest = more;
    }
    Ok((rest, count))
}

fn number(a: &str) -> Result<u64> {
    let parsed = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => a.parse(),
    };
    parsed.map_err(|_| anyhow::anyhow!("not a number: {a:?}"))
}

/// Where `x` looks: a number, or what an expression points at (`&v`: the
/// variable itself; a pointer: its target; a slice or string: its bytes),
/// as Delve's `examinemem` takes an expression.
pub(super) fn address(s: &Session, a: &str) -> Result<u64> {
    if a.starts_with(|c: char| c.is_ascii_digit()) {
        return number(a);
    }
    let scope = s.scope()?;
    let v = scope
        .eval_text(a)
        .map_err(|err| anyhow::anyhow!("{a}: {err}"))?;
    if let Val::Typed(t) = &v {
        let k = scope.kind(t.ty);
        let addressy = matches!(
            k,
            kind::POINTER | kind::UNSAFE_POINTER | kind::UINTPTR | kind::SLICE | kind::STRING
        ) || (kind::INT..=kind::UINT64).contains(&k);
        if !addressy {
            anyhow::bail!(
                "{a} is a {}: give x an address, &{a}, or a pointer, slice or string",
                scope.type_name(t.ty)
            );
        }
    }
    scope
        .address_of(&v)
        .map_err(|e| anyhow::anyhow!("{a}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::delve_flags;

    #[test]
    fn delve_s_examinemem_flags_give_the_count() {
        let (rest, n) = delve_flags(&["-count", "19", "-size", "1", "-fmt", "hex", "b"]).unwrap();
        assert_eq!((rest, n), (&["b"][..], Some(19)));
        let (rest, n) = delve_flags(&["-len", "0x10", "-x", "&v"]).unwrap();
        assert_eq!((rest, n), (&["&v"][..], Some(16)));
        // goat's own form passes through untouched.
        let (rest, n) = delve_flags(&["b", "8"]).unwrap();
        assert_eq!((rest, n), (&["b", "8"][..], None));
        for bad in [&["-size", "4", "b"][..], &["-fmt", "dec", "b"], &["-count"]] {
            assert!(delve_flags(bad).is_err(), "{bad:?}");
        }
    }
}
