//! `heap`, `heap path WHAT`, `heap retained WHAT`: `goat heap`'s analysis
//! of the stopped program, from the session's own stop (nothing more is
//! stopped or copied). WHAT is an address or an expression, as `x` takes.

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::binary::dwarf_vars::VarIndex;
use crate::heapgraph::{
    HeapGraph, ReportOptions, Snapshot, StackRoots, StackScanContext, StackScratch,
};
use crate::report::HeapTextOptions;
use crate::session::Session;

/// Rows of the histogram and the roots in the session's report.
const TOP: usize = 10;

/// `heap [path|retained WHAT]`
pub fn heap(s: &mut Session, args: &[&str], out: &mut dyn Write) -> Result<()> {
    // The object asked about, before the heap is walked: a typo costs nothing.
    let asked = match args {
        [] => None,
        [verb @ ("path" | "retained"), what @ ..] if !what.is_empty() => {
            Some((*verb, super::address(s, &what.join(" "))?))
        }
        _ => return Err(anyhow!("usage: heap [path|retained ADDRESS|EXPR]")),
    };
    let graph = build(s)?;
    let Some((verb, addr)) = asked else {
        let of = match s.pid() {
            Some(p) => format!("pid {p}"),
            None => "the core".to_string(),
        };
        let report = graph.report(s.go_version(), ReportOptions { chains: 3 });
        let text = crate::report::heap_text(&report, &of, HeapTextOptions { top: TOP });
        write!(out, "{text}")?;
        return Ok(());
    };
    let i = graph
        .object_at(addr)
        .ok_or_else(|| anyhow!("heap: {addr:#x} is in no allocated heap object"))?;
    let ty = graph.type_of(i).to_string();
    match verb {
        "path" => match graph.chain(i) {
            Some(chain) => writeln!(out, "{}", chain.join(" → "))?,
            None => writeln!(
                out,
                "{ty} at {addr:#x}: no root reaches it (garbage the runtime has not freed yet)"
            )?,
        },
        _ => {
            let (bytes, objects) = graph.retained(i);
            writeln!(
                out,
                "{ty} at {addr:#x} retains {bytes} bytes in {objects} objects (what would be freed without it)"
            )?;
        }
    }
    Ok(())
}

/// The object graph of the session's stop.
fn build(s: &mut Session) -> Result<HeapGraph> {
    s.decode_all()?;
    let vars = VarIndex::load(s.prog.binary().debug_data());
    let t = s.target()?;
    let cx = StackScanContext::new(s.prog, t, s.bias, vars.as_ref().ok());
    let mut stacks = StackRoots::default();
    let mut scratch = StackScratch::default();
    for i in 0..s.goroutine_count() {
        stacks.add_goroutine(&cx, &mut scratch, s.goroutine_at(i));
    }
    let snap = Snapshot {
        prog: s.prog,
        mem: t,
        bias: s.bias,
        stacks,
        vars: vars.as_ref().ok(),
    };
    Ok(HeapGraph::build(snap, &mut |_| {})?)
}
