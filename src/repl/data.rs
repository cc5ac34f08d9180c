//! regs.

use std::io::Write;

use anyhow::Result;

use super::state::Session;

/// `regs`
pub fn regs(s: &mut Session, _args: &[&str], out: &mut dyn Write) -> Result<()> {
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
