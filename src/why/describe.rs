//! What a goroutine waits on, in words and as the JSON's `waits_on`, with
//! the names of the objects involved where the program's symbols give one
//! (`main.jobs`, `main.state.mu`).

use serde::Serialize;

use super::Snapshot;
use crate::goruntime::waits::{ChanOp, IoMode, IoWait, SyncKind, Waits, WaitsOn};
use crate::goruntime::GoProgram;

/// `waits_on` of the JSON document (docs/why-json.md).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WaitDesc {
    /// `chan`, `select`, `mutex`, `rwmutex`, `waitgroup`, `cond`, `sema`,
    /// `io`, `sleep`, `syscall`, `runtime`, `unreadable`, or `none`.
    pub kind: &'static str,
    /// The channel's or sync object's address, `"0x…"`.
    pub addr: Option<String>,
    /// The package variable (and field) it is, where known.
    pub name: Option<String>,
    /// The rest in words: "receive", "send", a select's cases, an fd and
    /// its addresses, when a sleep ends.
    pub detail: Option<String>,
}

/// Names of the objects goroutines wait on.
pub struct Names<'a> {
    prog: &'a GoProgram,
    bias: u64,
    /// See [`Snapshot::now_ns`].
    now_ns: Option<i64>,
    waits: &'a Waits,
}

impl<'a> Names<'a> {
    pub fn new(snap: &Snapshot<'a>, waits: &'a Waits) -> Self {
        Names {
            prog: snap.prog,
            bias: snap.bias,
            now_ns: snap.now_ns,
            waits,
        }
    }

    /// The package variable holding a pointer to the channel or sync
    /// object at `addr`, as `goruntime::waits` found it.
    fn holder(&self, addr: u64) -> Option<&str> {
        self.waits
            .chans
            .get(&addr)
            .and_then(|c| c.name.as_deref())
            .or_else(|| self.waits.syncs.get(&addr)?.held_by.as_deref())
    }

    /// The name of the object at `addr`: a package variable (and field)
    /// it lies in, or the variable that holds a pointer to it.
    pub fn name(&self, addr: u64) -> Option<String> {
        if let Some(s) = self.waits.syncs.get(&addr).and_then(|s| s.name.clone()) {
            return Some(s);
        }
        if let Some(c) = self.waits.chans.get(&addr).and_then(|c| c.name.clone()) {
            return Some(c);
        }
        crate::goruntime::waits::name_of(self.prog, self.bias, addr)
            .or_else(|| self.holder(addr).map(str::to_string))
    }

    /// The link-time range `[start, end)` of the package variable `addr`
    /// lies in, or that holds a pointer to it: what code addresses.
    pub fn variable_link_range(&self, addr: u64) -> Option<(u64, u64)> {
        let bin = self.prog.binary();
        if let Some((_, s, e)) = addr.checked_sub(self.bias).and_then(|a| bin.symbol_at(a)) {
            return Some((s, e));
        }
        let (s, size) = bin.symbol_range(self.holder(addr)?)?;
        Some((s, s.checked_add(size)?))
    }

    /// `waits_on` for a goroutine's wait (`None`: not known to wait).
    pub fn describe(&self, w: Option<&WaitsOn>) -> WaitDesc {
        let Some(w) = w else {
            return plain("none", None);
        };
        match w {
            WaitsOn::NotBlocked => plain("none", None),
            WaitsOn::Chan { chan: 0, op } => plain(
                "chan",
                Some(format!("{} on a nil channel (forever)", op_word(*op))),
            ),
            WaitsOn::Chan { chan, op } => WaitDesc {
                kind: "chan",
                addr: Some(hex(*chan)),
                name: self.name(*chan),
                detail: Some(format!("{} {}", op_word(*op), self.chan_state(*chan))),
            },
            WaitsOn::Select { cases } if cases.is_empty() => {
                plain("select", Some("select {} (no cases: forever)".into()))
            }
            WaitsOn::Select { cases } => {
                let parts: Vec<String> = cases
                    .iter()
                    .map(|(c, op)| match self.name(*c) {
                        Some(n) => format!("{} {} ({n})", op_word(*op), hex(*c)),
                        None => format!("{} {}", op_word(*op), hex(*c)),
                    })
                    .collect();
                WaitDesc {
                    kind: "select",
                    addr: None,
                    name: None,
                    detail: Some(parts.join(", ")),
                }
            }
            WaitsOn::Sync { object, kind, .. } => WaitDesc {
                kind: sync_kind(*kind),
                addr: Some(hex(*object)),
                name: self.name(*object),
                detail: Some(sync_detail(*kind).to_string()),
            },
            WaitsOn::Io(io) => {
                let IoWait {
                    fd,
                    mode,
                    local,
                    peer,
                    deadline_ns,
                } = io.as_ref();
                let mut d = format!(
                    "{} fd {}",
                    match mode {
                        IoMode::Read => "reading",
                        IoMode::Write => "writing",
                        #[allow(unreachable_patterns)]
                        _ => "waiting on",
                    },
                    fd.map_or("?".to_string(), |f| f.to_string())
                );
                if let (Some(l), Some(p)) = (local, peer) {
                    d.push_str(&format!(" {l} → {p}"));
                } else if let Some(l) = local {
                    d.push_str(&format!(" {l}"));
                }
                match (deadline_ns, self.now_ns) {
                    (Some(-1), _) => d.push_str(", deadline passed"),
                    (Some(t), Some(now)) => {
                        d.push_str(&format!(", deadline in {}", span(t.saturating_sub(now))))
                    }
                    _ => d.push_str(", no deadline"),
                }
                plain("io", Some(d))
            }
            WaitsOn::Sleep { until_ns } => plain(
                "sleep",
                until_ns.map(|t| match self.now_ns {
                    Some(now) => format!("wakes in {}", span(t.saturating_sub(now))),
                    None => format!("until monotonic {t} ns"),
                }),
            ),
            WaitsOn::Syscall { nr, name, fd } => {
                let mut d = match (name, nr) {
                    (Some(n), _) => (*n).to_string(),
                    (None, Some(nr)) => format!("syscall {nr}"),
                    (None, None) => "a system call".to_string(),
                };
                if let Some(fd) = fd {
                    d.push_str(&format!(" on fd {fd}"));
                }
                plain("syscall", Some(d))
            }
            WaitsOn::Runtime { reason } => plain("runtime", Some(reason.clone())),
            WaitsOn::Unreadable { why } => plain("unreadable", Some(why.clone())),
        }
    }

    /// "chan int (len 0, cap 0)", "closed" when it is.
    fn chan_state(&self, chan: u64) -> String {
        let Some(c) = self.waits.chans.get(&chan) else {
            return "a channel".into();
        };
        let ty = c.elem_type.as_deref().unwrap_or("?");
        let closed = if c.closed { ", closed" } else { "" };
        format!("chan {ty} (len {}, cap {}{closed})", c.len, c.cap)
    }
}

fn plain(kind: &'static str, detail: Option<String>) -> WaitDesc {
    WaitDesc {
        kind,
        addr: None,
        name: None,
        detail,
    }
}

/// `ns` as "59m12s", "3.2s", "12ms"; "now" for what is due.
fn span(ns: i64) -> String {
    if ns <= 0 {
        return "no time (due)".into();
    }
    let ms = ns / 1_000_000;
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{}.{}s", s, (ms % 1000) / 100),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

pub fn op_word(op: ChanOp) -> &'static str {
    match op {
        ChanOp::Send => "send",
        ChanOp::Recv => "receive",
    }
}

fn sync_kind(k: SyncKind) -> &'static str {
    match k {
        SyncKind::Mutex => "mutex",
        SyncKind::RWMutexRead | SyncKind::RWMutexWrite => "rwmutex",
        SyncKind::WaitGroup => "waitgroup",
        SyncKind::Cond => "cond",
        SyncKind::Semaphore => "sema",
    }
}

/// The Go type and operation, as findings name them.
pub fn sync_detail(k: SyncKind) -> &'static str {
    match k {
        SyncKind::Mutex => "sync.Mutex Lock",
        SyncKind::RWMutexRead => "sync.RWMutex RLock",
        SyncKind::RWMutexWrite => "sync.RWMutex Lock",
        SyncKind::WaitGroup => "sync.WaitGroup Wait",
        SyncKind::Cond => "sync.Cond Wait",
        SyncKind::Semaphore => "a semaphore",
    }
}
