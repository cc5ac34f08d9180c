//! Network waits: the `pollDesc` whose `rg` (read) or `wg` (write) holds
//! the parked goroutine (`runtime/netpoll.go`). The runtime keeps no link
//! from the `g` to it; `poll_runtime_pollWait` keeps the descriptor (and
//! `netpollblock` its `&pd.rg`) on the stack across the park, so a stack
//! word is taken as one only when the descriptor there names itself
//! (`pd.self`) and this goroutine.

use super::{stack, Ctx, FdInfo, IoMode, IoWait, WaitsOn};
use crate::process::MemoryExt;

pub fn io_wait(ctx: &Ctx<'_>, gp: u64, fds: Option<&dyn FdInfo>) -> Result<WaitsOn, String> {
    let p = &ctx.w.poll;
    for w in stack::words(ctx, gp)? {
        // The descriptor itself, or a pointer to its rg or wg word.
        for pd in [Some(w), w.checked_sub(p.rg), w.checked_sub(p.wg)]
            .into_iter()
            .flatten()
        {
            if let Some(on) = check(ctx, pd, gp, fds) {
                return Ok(on);
            }
        }
    }
    Err("no pollDesc on its stack names it".to_string())
}

fn check(ctx: &Ctx<'_>, pd: u64, gp: u64, fds: Option<&dyn FdInfo>) -> Option<WaitsOn> {
    let p = &ctx.w.poll;
    let read = |off: u64| ctx.mem.read_u64(pd.checked_add(off)?).ok();
    if read(p.self_)? != pd {
        return None;
    }
    let (mode, deadline) = if read(p.rg)? == gp {
        (IoMode::Read, read(p.rd)?)
    } else if read(p.wg)? == gp {
        (IoMode::Write, read(p.wd)?)
    } else {
        return None;
    };
    let fd = read(p.fd).and_then(|v| i32::try_from(v).ok());
    let addrs = fd.and_then(|fd| fds?.socket(fd));
    Some(WaitsOn::Io(Box::new(IoWait {
        fd,
        mode,
        deadline_ns: (deadline != 0).then_some(deadline as i64),
        local: addrs.as_ref().map(|a| a.local.clone()),
        peer: addrs.map(|a| a.peer),
    })))
}
