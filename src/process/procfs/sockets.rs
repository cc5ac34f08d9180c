//! What a process's file descriptors are, for `goat why`: a descriptor a
//! goroutine waits on named by its socket's addresses. Read from
//! `/proc/PID/fd` (the socket inode behind each descriptor) and the
//! process's own network namespace's `/proc/PID/net/tcp{,6}` (inode to
//! addresses). A core has none of this: callers pass no [`FdInfo`] then.

use std::collections::HashMap;

use ::procfs::process::{FDTarget, Process};

/// Most descriptors read from `/proc/PID/fd`: past that the rest are
/// unnamed rather than read without end.
const MAX_FDS: usize = 1 << 20;

/// A descriptor's socket addresses, as `ip:port` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAddrs {
    pub local: String,
    pub peer: String,
}

/// What goat knows of a process's descriptors.
pub trait FdInfo: Sync {
    /// The TCP addresses of descriptor `fd`, when it is a TCP socket.
    fn socket(&self, fd: i32) -> Option<SocketAddrs>;
}

/// A live process's descriptors, read once when made (a snapshot: the
/// process may open and close more meanwhile).
#[derive(Debug, Default, Clone)]
pub struct ProcFds {
    by_fd: HashMap<i32, SocketAddrs>,
}

impl ProcFds {
    /// Reads process `pid`'s descriptors and TCP tables; what cannot be
    /// read is left out (the process may have exited).
    pub fn read(pid: i32) -> ProcFds {
        let Ok(proc_) = Process::new(pid) else {
            return ProcFds::default();
        };
        let mut by_inode = HashMap::new();
        for table in [proc_.tcp(), proc_.tcp6()].into_iter().flatten() {
            for e in table {
                let addrs = SocketAddrs {
                    local: e.local_address.to_string(),
                    peer: e.remote_address.to_string(),
                };
                by_inode.insert(e.inode, addrs);
            }
        }
        let mut by_fd = HashMap::new();
        if let Ok(fds) = proc_.fd() {
            for info in fds.take(MAX_FDS).flatten() {
                if let FDTarget::Socket(inode) = info.target {
                    if let Some(a) = by_inode.get(&inode) {
                        by_fd.insert(info.fd, a.clone());
                    }
                }
            }
        }
        ProcFds { by_fd }
    }
}

impl FdInfo for ProcFds {
    fn socket(&self, fd: i32) -> Option<SocketAddrs> {
        self.by_fd.get(&fd).cloned()
    }
}
