//! Walks the Go heap of a core: `cargo run --release --example heapwalk --
//! CORE`. Prints the heap's totals, the roots, what a mark from the global
//! roots and every goroutine's stack (scanned conservatively) reaches, and
//! how long each step took.

use std::time::Instant;

use goat::binary::Binary;
use goat::corefile::CoreFile;
use goat::goruntime::GoProgram;
use goat::heapwalk::{global_roots, Heap, Marks};
use goat::process::{Memory, MemoryExt, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: heapwalk CORE")?;
    let core = CoreFile::open(std::path::Path::new(&path))?;
    let exe = core.executable().ok_or("the core names no executable")?;
    let mut prog = GoProgram::load(Binary::open(&exe)?)?;
    let bias = prog.load_bias(core.mappings(), &exe)?;
    prog.settle_layout(&core, bias)?;
    let mem: &dyn Memory = &core;

    let t = Instant::now();
    let heap = Heap::load(&prog, mem, bias)?;
    println!("load: {:?} {:?}", t.elapsed(), heap.totals());

    let t = Instant::now();
    let roots = global_roots(&prog, mem, bias, &heap)?;
    println!(
        "roots: {:?}, {} slots, unreadable {:?}",
        t.elapsed(),
        roots.slots.len(),
        roots.unreadable
    );

    let t = Instant::now();
    let mut marks = Marks::new(&heap);
    let none = goat::heapwalk::SkipSlots::default();
    marks.mark_from(&heap, mem, roots.values(), &none);
    let g = &prog.layout().g;
    let globals = prog.locate(mem, bias)?;
    let array = mem.read_u64(globals.allgs)?;
    let len = mem.read_u64(globals.allgs + 8)?.min(10_000_000);
    let mut stacks = Vec::new();
    for i in 0..len {
        let Ok(gp) = mem.read_u64(array + i * 8) else {
            continue;
        };
        let (Ok(sp), Ok(hi)) = (mem.read_u64(gp + g.sched_sp), mem.read_u64(gp + g.stack_hi))
        else {
            continue;
        };
        if sp == 0 || sp >= hi || hi - sp > 1 << 30 {
            continue;
        }
        if let Ok(bytes) = mem.read_vec(sp & !7, (hi - (sp & !7)) as usize) {
            stacks.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            );
        }
    }
    marks.mark_from(&heap, mem, stacks, &none);
    println!("mark: {:?}, marked {:?}", t.elapsed(), marks.marked());
    Ok(())
}
