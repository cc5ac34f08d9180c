//! The pointers of a goroutine's own records that the runtime's
//! `scanstack` scans with its stack (the same in Go 1.19–1.27):
//! `g.sched.ctxt` (a live closure context register saved at a switch),
//! each `_defer` record's `fn` and `link`, the word holding a heap
//! allocated record itself, and `g._panic` (always on the stack: a pointer
//! that can only make a stack object live).

use crate::process::{Memory, MemoryExt};

use super::state::ScanState;
use crate::goruntime::layout::RuntimeLayout;

/// A bound on the defer records followed (a forged list could be a cycle).
const MAX_DEFERS: usize = 1 << 16;

/// Scans the records of the `g` at `gp`. Returns why the defer list could
/// not be followed to its end, if it could not.
pub(super) fn scan(layout: &RuntimeLayout, gp: u64, st: &mut ScanState<'_>) -> Option<String> {
    let mem: &dyn Memory = st.mem;
    let field = |off: u64| gp.checked_add(off);
    if let Some(at) = field(layout.g.sched_ctxt) {
        if mem.read_u64(at).is_ok_and(|v| v != 0) {
            st.slot(at, false);
        }
    }
    let mut why = None;
    // `holder`: the word that points at the record, g._defer or the
    // previous record's link.
    let mut holder = field(layout.g.defers);
    let d = &layout.defer;
    for _ in 0..MAX_DEFERS {
        let Some(at) = holder else {
            why = Some(format!("runtime.g at {gp:#x} overflows"));
            break;
        };
        let rec = match mem.read_u64(at) {
            Ok(0) => {
                holder = None;
                break;
            }
            Ok(r) => r,
            Err(e) => {
                why = Some(format!("defer list: {e}"));
                holder = None;
                break;
            }
        };
        let (Some(fn_at), Some(link_at), Some(heap_at)) = (
            rec.checked_add(d.fn_),
            rec.checked_add(d.link),
            rec.checked_add(d.heap),
        ) else {
            why = Some(format!("defer record at {rec:#x} overflows"));
            holder = None;
            break;
        };
        let mut heap = [0u8; 1];
        let (Ok(fn_), Ok(link), Ok(())) = (
            mem.read_u64(fn_at),
            mem.read_u64(link_at),
            mem.read(heap_at, &mut heap),
        ) else {
            why = Some(format!("defer record at {rec:#x} unreadable"));
            holder = None;
            break;
        };
        if fn_ != 0 {
            st.slot(fn_at, false);
        }
        if link != 0 {
            st.slot(link_at, false);
        }
        if heap[0] != 0 {
            st.slot(at, false);
        }
        holder = Some(link_at);
    }
    if holder.is_some() && why.is_none() {
        why = Some(format!("more than {MAX_DEFERS} defer records"));
    }
    if let Some(p) = field(layout.g.panic).and_then(|at| mem.read_u64(at).ok()) {
        if p != 0 {
            st.stack_pointer(p, false);
        }
    }
    why
}
