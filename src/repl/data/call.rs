//! call: a function of the program called on the selected goroutine, through
//! the Go runtime's debugger-call protocol, which the tracer drives
//! (tracer/fncall.rs). Here: finding the function, marshalling the
//! arguments (values/eval/callargs.rs, laid out by the register
//! ABI of values/abi.rs), and printing the results.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};

use crate::process::MemoryExt;
use crate::session::Session;
use crate::values::abi::Slot;
use crate::values::eval::ast::Expr;
use crate::values::eval::callargs::Marshal;
use crate::values::eval::parse;
use crate::values::{Place, Value};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::binary::GoVersion;
use crate::tracer::{Block, CallPlan, CallStop, RunCommand, Word, FLOAT_ARG_REGS, INT_ARG_REGS};

const USAGE: &str = "usage: call [-unsafe] FUNC(ARGS)";
/// `_Grunning`: the only state a call can be injected in.
const GRUNNING: u32 = 2;

/// What printing the results needs once the function has returned.
struct Prepared {
    plan: CallPlan,
    func: String,
    results: Vec<(String, usize, Slot)>,
}

/// `call [-unsafe] FUNC(ARGS)`
pub fn call(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    let (check_escape, rest) = match args {
        ["-unsafe", rest @ ..] => (false, rest),
        _ => (true, args),
    };
    if rest.is_empty() {
        bail!(USAGE);
    }
    if s.control().is_err() {
        bail!("call needs a live process: this session is a core file, where nothing runs");
    }
    let text = rest.join(" ");
    let Expr::Call(f, arg_exprs) = parse(&text).map_err(|e| anyhow!(e))? else {
        bail!("call takes a function call, such as main.f(1, \"x\"): {USAGE}");
    };
    let mut prep = prepare(s, &f, &arg_exprs, check_escape)?;
    say_what_an_endless_call_holds(s, &prep);
    // A Ctrl-C during the call is for it (the tracer leaves it running).
    let command = RunCommand::begin();
    prep.plan.command = command.id();
    let stop = s.may_run()?.call(prep.plan.clone());
    let stop = match stop {
        Ok(stop) => stop,
        Err(e) => {
            let _ = s.load();
            return Err(anyhow::Error::from(e).context(format!("calling {}", prep.func)));
        }
    };
    let shown = match &stop {
        CallStop::Returned { tid, xmm } => Some(results(s, &prep, *tid, xmm)),
        CallStop::Panicked { tid } => Some(panic_value(s, *tid)),
        CallStop::Refused(_) | CallStop::Finished | CallStop::Interrupted => None,
    };
    if shown.is_some() {
        // The thread goes back to where it was whatever was read.
        s.control()?.finish_call()?;
    }
    s.load()?;
    let text = match (stop, shown) {
        (CallStop::Refused(why), _) => bail!("the runtime refused to call {}: {why}", prep.func),
        // Only a tracer told to end (SIGTERM, SIGHUP) lets a call finish
        // without its results.
        (CallStop::Finished, _) => bail!(
            "goat is terminating: {} was let run to its end, its results unread",
            prep.func
        ),
        (CallStop::Interrupted, _) => {
            crate::repl::exec::show_position(s, out, None)?;
            writeln!(
                out,
                "interrupted: {} has not returned, and goes on in the program: the goroutine \
                 that made the call waits in it, the others run on. `continue` lets the program \
                 run (goat finishes the call when the function returns, and that goroutine goes \
                 on where it was); `quit` detaches: the program runs on, and goat's tracer stays \
                 only until the function returns{}",
                prep.func,
                if prep.plan.callee_locked {
                    ", on the call's thread alone"
                } else {
                    ", on every thread (this release may run the call on any)"
                }
            )?;
            return Ok(());
        }
        (_, Some(text)) => text?,
        (_, None) => String::new(),
    };
    crate::repl::exec::show_position(s, out, None)?;
    write!(out, "{text}")?;
    Ok(())
}

/// Says, once per session, before a call starts, what a call that never
/// returns would hold on to after goat quits (tracer/fncall/pending.rs):
/// every thread, on a release that may run the callee on any; the main
/// thread, whose tracer `/proc/PID/status` shows, when the call runs there.
fn say_what_an_endless_call_holds(s: &Session, prep: &Prepared) {
    static SAID: AtomicBool = AtomicBool::new(false);
    let pid = s.pid().unwrap_or_default();
    let held = if !prep.plan.callee_locked {
        format!("every thread of pid {pid} (before Go 1.21 the runtime may run the call on any)")
    } else if prep.plan.tid == pid {
        format!(
            "pid {pid}'s main thread, where the call runs: other tools then see pid {pid} as \
             traced"
        )
    } else {
        return;
    };
    if SAID.swap(true, Ordering::SeqCst) {
        return;
    }
    crate::eprintln_quiet!(
        "goat: note: should {} never return, goat's tracer keeps {held} traced until it does, \
         even after goat quits (Ctrl-C leaves the call running)",
        prep.func
    );
}

/// The function, its arguments and the plan the tracer carries out.
fn prepare(s: &Session, f: &Expr, arg_exprs: &[Expr], check_escape: bool) -> Result<Prepared> {
    let index = s.var_index()?;
    let scope = s.scope()?;
    let name = f.to_string();
    let func = index
        .function_named(&name)
        .or_else(|| index.function_named(&format!("main.{name}")));
    let Some(func) = func else {
        match scope.eval(f) {
            Ok(v) => bail!("{name} is not a function (a {})", scope.val_type(&v)),
            Err(_) => bail!("no function {name} in the program"),
        }
    };
    let tab = s.prog.binary().pclntab()?;
    let entry = tab
        .func_by_name(&func.name)
        .map(|f| f.entry())
        .ok_or_else(|| anyhow!("{} has no code of its own to call", func.name))?;
    let params: Vec<_> = func.vars.iter().filter(|v| v.param).collect();
    let typed = |v: &&crate::binary::dwarf_vars::Var| {
        v.ty.ok_or_else(|| anyhow!("{}: parameter {} has no type", func.name, v.name))
    };
    let (ins, outs): (Vec<_>, Vec<_>) = params.iter().partition(|v| !v.result);
    if ins.len() != arg_exprs.len() {
        bail!(
            "{} takes {} argument{}, not {}",
            func.name,
            ins.len(),
            if ins.len() == 1 { "" } else { "s" },
            arg_exprs.len()
        );
    }
    let in_types = ins.iter().map(typed).collect::<Result<Vec<_>>>()?;
    let out_types = outs.iter().map(typed).collect::<Result<Vec<_>>>()?;
    let frame = scope
        .abi_frame(&in_types, &out_types)
        .map_err(|e| anyhow!("{}: its parameters: {e}", func.name))?;
    if frame.size > crate::tracer::MAX_CALL_FRAME {
        bail!(
            "{}'s argument frame is larger than the runtime's largest",
            func.name
        );
    }
    let g = s.current_g()?;
    let thread = s.thread_of(g).filter(|t| {
        g.status_code == GRUNNING && g.frames.first().is_some_and(|f| f.pc == t.regs.rip)
    });
    let Some(thread) = thread else {
        bail!(
            "goroutine {} is not running on a thread ({}): a call is made on a running \
             goroutine, such as one stopped at a breakpoint",
            g.id,
            g.status
        );
    };
    let mut marshal = Marshal::new(&scope, stacks(s), check_escape);
    let mut plan = CallPlan {
        tid: thread.tid,
        debug_call: 0,
        mallocgc: 0,
        protocol: Vec::new(),
        g_tls_offset: s.g_tls_offset(),
        blocks: Vec::new(),
        func: entry.wrapping_add(s.bias),
        frame_size: frame.size,
        int_regs: Vec::new(),
        float_regs: Vec::new(),
        stack: vec![0; frame.size as usize],
        stack_words: Vec::new(),
        command: 0,
        callee_locked: GoVersion::parse(s.go_version()).is_some_and(|v| v.at_least(21)),
    };
    for ((p, &ty), (e, slot)) in ins
        .iter()
        .zip(&in_types)
        .zip(arg_exprs.iter().zip(&frame.args))
    {
        let v = scope
            .eval(e)
            .map_err(|err| anyhow!("argument {}: {e}: {err}", p.name))?;
        let arg = marshal.arg(ty, &p.name, v)?;
        place_arg(&mut plan, slot, &arg.bytes, &arg.refs)?;
    }
    plan.blocks = std::mem::take(&mut marshal.blocks)
        .into_iter()
        .map(|b| Block {
            bytes: b.bytes,
            words: b
                .refs
                .into_iter()
                .map(|(o, n)| (o, Word::Block(n)))
                .collect(),
            rtype: b.rtype,
        })
        .collect();
    let runtime = |n: &str| {
        tab.func_by_name(n)
            .map(|f| f.entry().wrapping_add(s.bias))
            .ok_or_else(|| anyhow!("the program has no {n}: its Go release cannot take calls"))
    };
    plan.debug_call = runtime("runtime.debugCallV2")?;
    if !plan.blocks.is_empty() {
        plan.mallocgc = runtime("runtime.mallocgc")?;
    }
    for f in tab.functions() {
        let Ok(n) = f.name() else { continue };
        if n.starts_with("runtime.debugCall") || n.starts_with("debugCall") {
            if let Some((b, e)) = tab.func_bounds(f.entry()) {
                plan.protocol
                    .push((b.wrapping_add(s.bias), e.wrapping_add(s.bias)));
            }
        }
    }
    let results = outs
        .iter()
        .zip(out_types)
        .zip(frame.results)
        .map(|((v, ty), slot)| (v.name.clone(), ty, slot))
        .collect();
    Ok(Prepared {
        plan,
        func: func.name.clone(),
        results,
    })
}

/// Puts one argument's bytes where its slot says.
fn place_arg(plan: &mut CallPlan, slot: &Slot, bytes: &[u8], refs: &[(u64, usize)]) -> Result<()> {
    match slot {
        Slot::Stack(off) => {
            let at = *off as usize;
            let end = at
                .checked_add(bytes.len())
                .filter(|&e| e <= plan.stack.len());
            let Some(end) = end else {
                bail!("an argument lies outside the argument frame");
            };
            plan.stack[at..end].copy_from_slice(bytes);
            for &(o, n) in refs {
                plan.stack_words.push((off + o, Word::Block(n)));
            }
        }
        Slot::Regs(pieces) => {
            for p in pieces {
                let (at, len) = (p.offset as usize, p.size as usize);
                let Some(part) = at.checked_add(len).and_then(|end| bytes.get(at..end)) else {
                    bail!("an argument is shorter than its type");
                };
                let mut word = [0u8; 8];
                word[..len.min(8)].copy_from_slice(&part[..len.min(8)]);
                let v = u64::from_le_bytes(word);
                let max = if p.float {
                    FLOAT_ARG_REGS
                } else {
                    INT_ARG_REGS
                };
                if p.reg >= max {
                    bail!("more register arguments than the ABI has");
                }
                if p.float {
                    if plan.float_regs.len() <= p.reg {
                        plan.float_regs.resize(p.reg + 1, 0);
                    }
                    plan.float_regs[p.reg] = v;
                    continue;
                }
                if plan.int_regs.len() <= p.reg {
                    plan.int_regs.resize(p.reg + 1, Word::Lit(0));
                }
                let block = refs.iter().find(|r| r.0 == p.offset).map(|r| r.1);
                plan.int_regs[p.reg] = block.map_or(Word::Lit(v), Word::Block);
            }
        }
    }
    Ok(())
}

/// `[lo, hi)` of every goroutine's stack (the first two words of its g).
fn stacks(s: &Session) -> Vec<(u64, u64)> {
    let Ok(t) = s.target() else {
        return Vec::new();
    };
    s.headers()
        .iter()
        .filter_map(|g| {
            let lo = t.read_u64(g.gp).ok()?;
            let hi = t.read_u64(g.gp.checked_add(8)?).ok()?;
            (lo < hi).then_some((lo, hi))
        })
        .collect()
}

/// `Values returned:` and each result, as print shows values.
fn results(s: &Session, prep: &Prepared, tid: i32, xmm: &[u64]) -> Result<String> {
    if prep.results.is_empty() {
        return Ok(String::new());
    }
    let scope = s.scope()?;
    let regs = s
        .target()?
        .threads()
        .iter()
        .find(|t| t.tid == tid)
        .map(|t| t.regs)
        .ok_or_else(|| anyhow!("the call's thread {tid} is gone"))?;
    let ints = [
        regs.rax, regs.rbx, regs.rcx, regs.rdi, regs.rsi, regs.r8, regs.r9, regs.r10, regs.r11,
    ];
    let mut text = String::from("Values returned:\n");
    for (name, ty, slot) in &prep.results {
        let size = scope.size(*ty);
        let place = match slot {
            Slot::Stack(off) => Place::Bytes(
                scope
                    .read(&Place::Mem(regs.rsp.wrapping_add(*off)), 0, size)
                    .context("reading a result")?,
            ),
            Slot::Regs(pieces) => {
                let mut b = vec![0u8; size as usize];
                for p in pieces {
                    let v = if p.float {
                        xmm.get(p.reg).copied()
                    } else {
                        ints.get(p.reg).copied()
                    };
                    let v = v.ok_or_else(|| anyhow!("result register {} unread", p.reg))?;
                    let (at, len) = (p.offset as usize, (p.size as usize).min(8));
                    if let Some(dst) = at.checked_add(len).and_then(|end| b.get_mut(at..end)) {
                        dst.copy_from_slice(&v.to_le_bytes()[..len]);
                    }
                }
                Place::Bytes(b)
            }
        };
        let value = Value { ty: *ty, place };
        text.push_str(&format!("\t{name}: {}\n", scope.format(&value)));
    }
    Ok(text)
}

/// The panic value, an `interface{}` at the thread's stack pointer.
fn panic_value(s: &Session, tid: i32) -> Result<String> {
    let scope = s.scope()?;
    let rsp = s
        .target()?
        .threads()
        .iter()
        .find(|t| t.tid == tid)
        .map(|t| t.regs.rsp)
        .ok_or_else(|| anyhow!("the call's thread {tid} is gone"))?;
    let eface = scope
        .index
        .type_named("interface {}")
        .ok_or_else(|| anyhow!("the program has no interface {{}} type to show the panic"))?;
    let value = Value {
        ty: eface,
        place: Place::Bytes(scope.read(&Place::Mem(rsp), 0, 16)?),
    };
    Ok(format!(
        "The call panicked:\n\t~panic: {}\n",
        scope.format(&value)
    ))
}
