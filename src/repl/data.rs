//! regs, x.

use std::io::Write;

use anyhow::Result;

use super::state::Session;
use crate::goruntime::vars::eval::Val;
use crate::goruntime::vars::types::kind;

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
        super::base_name(&f.file),
        f.line
    )?;
    writeln!(out, "{:>10} = {:#018x}", "Rsp", f.sp)?;
    Ok(())
}

/// `x` prints at most this many bytes.
const EXAMINE_MAX: usize = 4096;

/// `x ADDR [N]`
pub fn examine(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (addr, len) = match args {
        [a] => (address(s, a)?, 64),
        [a, n] => (address(s, a)?, number(n)?),
        _ => anyhow::bail!(
            "usage: x ADDR [N]   (ADDR: a number, &VAR, or a pointer, slice or string)"
        ),
    };
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
    Ok(())
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
fn address(s: &Session, a: &str) -> Result<u64> {
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
