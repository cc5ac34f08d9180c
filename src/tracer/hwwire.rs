//! The watchpoint requests of the tracer protocol (`wire.rs`) and the
//! [`LiveProcess`] calls that send them (`hwbreak.rs` does the work).

use serde::{Deserialize, Serialize};

use super::hwbreak::{WatchSpec, WatchpointInfo};
use super::live::LiveProcess;
use super::ptrace::{AttachError, Tracer};
use super::wire::{protocol_error, Reply, Request};

impl Tracer {
    pub(super) fn handle_watch(&mut self, req: WatchRequest) -> Reply {
        match req {
            WatchRequest::Add(spec) => self
                .add_watchpoint(spec)
                .map_or_else(Reply::Failed, |w| Reply::Watchpoints(vec![w])),
            WatchRequest::Remove(id) => {
                self.remove_watchpoint(id).map_or_else(Reply::Failed, |w| {
                    Reply::Watchpoints(w.into_iter().collect())
                })
            }
            WatchRequest::List => Reply::Watchpoints(self.hw.list()),
            WatchRequest::Move { id, addr, stack_hi } => self
                .move_watchpoint(id, addr, stack_hi)
                .map_or_else(Reply::Failed, Reply::Found),
            WatchRequest::RecordHit(id, goid) => Reply::Watchpoints(
                self.hw
                    .slots
                    .iter_mut()
                    .flatten()
                    .find(|w| w.id == id)
                    .map(|w| {
                        *w.hits.entry(goid).or_default() += 1;
                        w.total += 1;
                        w.clone()
                    })
                    .into_iter()
                    .collect(),
            ),
        }
    }
}

/// The watchpoint requests (one `Request` variant, `wire.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum WatchRequest {
    Add(WatchSpec),
    Remove(u32),
    List,
    Move { id: u32, addr: u64, stack_hi: u64 },
    RecordHit(u32, u64),
}

impl LiveProcess {
    fn watch_request(&self, req: WatchRequest) -> Result<Vec<WatchpointInfo>, AttachError> {
        match self.request(Request::Watch(req))? {
            Reply::Watchpoints(w) => Ok(w),
            _ => Err(protocol_error()),
        }
    }

    /// Sets a watchpoint on every thread (the target stopped).
    pub fn add_watchpoint(&self, spec: WatchSpec) -> Result<WatchpointInfo, AttachError> {
        self.watch_request(WatchRequest::Add(spec))?
            .pop()
            .ok_or_else(protocol_error)
    }

    pub fn remove_watchpoint(&self, id: u32) -> Result<Option<WatchpointInfo>, AttachError> {
        Ok(self.watch_request(WatchRequest::Remove(id))?.pop())
    }

    pub fn watchpoints(&self) -> Result<Vec<WatchpointInfo>, AttachError> {
        self.watch_request(WatchRequest::List)
    }

    /// Moves watchpoint `id` to `addr` (its stack was copied; the new
    /// `g.stack.hi` is `stack_hi`).
    pub fn move_watchpoint(&self, id: u32, addr: u64, stack_hi: u64) -> Result<bool, AttachError> {
        match self.request(Request::Watch(WatchRequest::Move { id, addr, stack_hi }))? {
            Reply::Found(f) => Ok(f),
            _ => Err(protocol_error()),
        }
    }

    /// Counts a reported hit of watchpoint `id` by goroutine `goid`.
    pub fn record_watch_hit(
        &self,
        id: u32,
        goid: u64,
    ) -> Result<Option<WatchpointInfo>, AttachError> {
        Ok(self.watch_request(WatchRequest::RecordHit(id, goid))?.pop())
    }
}
