//! Memory of a live process: `process_vm_readv`, many iovecs per call, with a
//! `/proc/PID/mem` fallback where the syscall is unavailable or refused.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;

use super::memory::{Memory, ReadFault};

/// The kernel's per-call cap on iovecs (`IOV_MAX`, `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Reads the memory of process `pid`. Works whether or not the process is
/// stopped; reads of a running process may be torn.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: i32,
    /// Set once `process_vm_readv` has returned ENOSYS/EPERM.
    use_proc_mem: AtomicBool,
    proc_mem: OnceLock<Option<File>>,
}

impl ProcessMemory {
    pub fn new(pid: i32) -> Self {
        ProcessMemory {
            pid,
            use_proc_mem: AtomicBool::new(false),
            proc_mem: OnceLock::new(),
        }
    }

    /// Reads through `/proc/PID/mem` only. For a copy-on-write child (the
    /// fork-mode core): `process_vm_readv` pins each page, and the kernel
    /// (5.19+) unshares — copies — an anonymous page pinned while shared, so
    /// reading the child would duplicate the whole heap. `/proc/PID/mem`
    /// reads without pinning.
    pub fn without_pinning(pid: i32) -> Self {
        ProcessMemory {
            pid,
            use_proc_mem: AtomicBool::new(true),
            proc_mem: OnceLock::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn proc_mem(&self) -> Option<&File> {
        self.proc_mem
            .get_or_init(|| super::procfs::open_mem(self.pid, false).ok())
            .as_ref()
    }

    fn pread(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        // /proc/PID/mem takes the address as a file offset; offsets >= 2^63 are
        // kernel addresses and never readable.
        if addr > i64::MAX as u64 {
            return Err(fault);
        }
        let file = self.proc_mem().ok_or(fault)?;
        file.read_exact_at(buf, addr).map_err(|_| fault)
    }

    /// One `process_vm_readv` call. Returns the bytes transferred or the errno.
    fn readv_raw(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> Result<usize, Errno> {
        debug_assert!(local.len() <= IOV_MAX && local.len() == remote.len());
        // SAFETY: callers build every local iovec over memory they own
        // exclusively (a `&mut [u8]` or scratch buffer) of exactly iov_len
        // bytes; remote iovecs are only addresses in the target.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            Err(Errno::last())
        } else {
            Ok(n as usize)
        }
    }

    fn switch_to_proc_mem(&self, e: Errno) -> bool {
        if matches!(e, Errno::ENOSYS | Errno::EPERM) {
            self.use_proc_mem.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        if buf.is_empty() {
            return Ok(());
        }
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(fault);
        }
        if self.use_proc_mem.load(Ordering::Relaxed) {
            return self.pread(addr, buf);
        }
        let len = buf.len();
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        };
        match self.readv_raw(&[local], &[remote]) {
            Ok(n) if n == len => Ok(()),
            Ok(_) => Err(fault),
            Err(e) if self.switch_to_proc_mem(e) => self.pread(addr, buf),
            Err(_) => Err(fault),
        }
    }

    /// Coalesces nearby requests (gaps under a page) into one remote iovec
    /// read into a scratch buffer, and sends up to `IOV_MAX` iovecs per
    /// `process_vm_readv`: the kernel's cost is per iovec and per page, so
    /// 100k small reads cost a few hundred syscalls' worth, not 100k. The
    /// kernel stops a call at the first remote iovec it cannot read in full;
    /// that iovec's requests are retried one by one (marking the bad ones
    /// faulted) and the call resumes after it, so one bad address never
    /// fails the batch.
    /// Batches of more than `PARALLEL_MIN` requests are split over a few
    /// threads (the kernel takes the target's mmap lock shared, so they scale).
    fn read_batch(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if reqs.len() < PARALLEL_MIN || threads < 2 {
            return self.read_batch_serial(reqs);
        }
        let total = reqs.len();
        let per = total.div_ceil(threads);
        std::thread::scope(|sc| {
            let parts: Vec<_> = reqs
                .chunks_mut(per)
                .map(|part| (part.len(), sc.spawn(move || self.read_batch_serial(part))))
                .collect();
            let mut out = Vec::with_capacity(total);
            for (len, h) in parts {
                match h.join() {
                    Ok(part) => out.extend(part),
                    // Unreachable (the reader does not panic); keep the order anyway.
                    Err(_) => {
                        out.extend(std::iter::repeat_n(Err(ReadFault { addr: 0, len: 0 }), len))
                    }
                }
            }
            out
        })
    }
}

/// Batches at least this large are read by several threads at once.
const PARALLEL_MIN: usize = 8192;

impl ProcessMemory {
    fn read_batch_serial(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadFault>> {
        let mut out: Vec<Result<(), ReadFault>> = vec![Ok(()); reqs.len()];
        if self.use_proc_mem.load(Ordering::Relaxed) {
            for (o, (addr, buf)) in out.iter_mut().zip(reqs.iter_mut()) {
                *o = self.pread(*addr, buf);
            }
            return out;
        }
        let mut order: Vec<usize> = Vec::with_capacity(reqs.len());
        for (i, (addr, buf)) in reqs.iter().enumerate() {
            let len = buf.len() as u64;
            if len == 0 {
                continue;
            }
            match addr.checked_add(len) {
                Some(end) if end <= isize::MAX as u64 => order.push(i),
                _ => {
                    out[i] = Err(ReadFault {
                        addr: *addr,
                        len: buf.len(),
                    })
                }
            }
        }
        order.sort_unstable_by_key(|&i| reqs[i].0);
        let groups = group(reqs, &order);

        let mut scratch: Vec<u8> = Vec::new();
        let mut g = 0;
        while g < groups.len() {
            // One syscall's worth: at most IOV_MAX groups and SCRATCH_MAX bytes.
            let mut end = g;
            let mut scratch_len = 0usize;
            while end < groups.len() && end - g < IOV_MAX {
                let gr = &groups[end];
                if gr.members.len() > 1 {
                    if scratch_len > 0 && scratch_len + gr.len() > SCRATCH_MAX {
                        break;
                    }
                    scratch_len += gr.len();
                }
                end += 1;
            }
            if scratch.len() < scratch_len {
                scratch.resize(scratch_len, 0);
            }
            let mut local = Vec::with_capacity(end - g);
            let mut remote = Vec::with_capacity(end - g);
            let mut off = 0usize;
            for gr in &groups[g..end] {
                let base = if gr.members.len() == 1 {
                    reqs[order[gr.members.start]].1.as_mut_ptr()
                } else {
                    // SAFETY: off + len <= scratch_len <= scratch.len().
                    let p = unsafe { scratch.as_mut_ptr().add(off) };
                    off += gr.len();
                    p
                };
                local.push(libc::iovec {
                    iov_base: base.cast(),
                    iov_len: gr.len(),
                });
                remote.push(libc::iovec {
                    iov_base: gr.start as usize as *mut libc::c_void,
                    iov_len: gr.len(),
                });
            }
            let n = match self.readv_raw(&local, &remote) {
                Ok(n) => n,
                Err(e) if self.switch_to_proc_mem(e) => {
                    for gr in &groups[g..] {
                        for &i in &order[gr.members.clone()] {
                            let (addr, buf) = &mut reqs[i];
                            out[i] = self.pread(*addr, buf);
                        }
                    }
                    return out;
                }
                // EFAULT with nothing read: the first iovec is bad. ESRCH: the
                // process is gone, and every request will fault one by one.
                Err(_) => 0,
            };
            let mut done = 0usize;
            let mut off = 0usize;
            for gr in &groups[g..end] {
                let members = &order[gr.members.clone()];
                g += 1;
                if done + gr.len() <= n {
                    done += gr.len();
                    if members.len() > 1 {
                        for &i in members {
                            let (addr, buf) = &mut reqs[i];
                            let at = off + (*addr - gr.start) as usize;
                            buf.copy_from_slice(&scratch[at..at + buf.len()]);
                        }
                        off += gr.len();
                    }
                } else {
                    for &i in members {
                        let (addr, buf) = &mut reqs[i];
                        out[i] = if members.len() == 1 {
                            Err(ReadFault {
                                addr: *addr,
                                len: buf.len(),
                            })
                        } else {
                            self.read(*addr, buf)
                        };
                    }
                    break;
                }
            }
        }
        out
    }
}

/// Requests closer than this are read as one range. Small: a coalesced
/// range is read into scratch and copied out, gap bytes included, which
/// costs more than the `iovec` it saves unless the gap is tiny (`g`s side
/// by side, words of one struct). With 4 KiB, goroutine stacks (a few KiB
/// apart) were coalesced: at 100k goroutines a stop capture took 204 ms
/// against 148 ms with 256 bytes, and the running copy 455 ms against 391
/// (medians of 5, interleaved).
const COALESCE_GAP: u64 = 256;
/// Largest coalesced range.
const MAX_GROUP: u64 = 1 << 20;
/// Scratch bytes per syscall for coalesced ranges.
const SCRATCH_MAX: usize = 16 << 20;

/// A run of requests (indices into the sorted order) read as one range.
struct Group {
    start: u64,
    end: u64,
    members: std::ops::Range<usize>,
}

impl Group {
    fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
}

fn group(reqs: &[(u64, &mut [u8])], order: &[usize]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        let (a, e) = (reqs[i].0, reqs[i].0 + reqs[i].1.len() as u64);
        if let Some(g) = groups.last_mut() {
            let new_end = g.end.max(e);
            if a <= g.end.saturating_add(COALESCE_GAP) && new_end - g.start <= MAX_GROUP {
                g.end = new_end;
                g.members.end = k + 1;
                continue;
            }
        }
        groups.push(Group {
            start: a,
            end: e,
            members: k..k + 1,
        });
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::MemoryExt;

    #[test]
    fn reads_own_memory_and_faults_on_bad_addresses() {
        let mem = ProcessMemory::new(std::process::id() as i32);
        let data: Vec<u64> = (0..4096u64).collect();
        let base = data.as_ptr() as u64;
        assert_eq!(mem.read_u64(base + 8 * 7).unwrap(), 7);
        assert!(mem.read_u64(8).is_err());
        assert!(mem.read_u64(u64::MAX - 3).is_err());

        let mut bufs: Vec<[u8; 8]> = vec![[0; 8]; 20_000];
        let mut reqs: Vec<(u64, &mut [u8])> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| {
                let addr = if i % 500 == 3 {
                    16
                } else {
                    base + 8 * (i as u64 % 4096)
                };
                (addr, &mut b[..])
            })
            .collect();
        let res = mem.read_batch(&mut reqs);
        assert_eq!(res.len(), 20_000);
        for (i, r) in res.iter().enumerate() {
            if i % 500 == 3 {
                assert_eq!(*r, Err(ReadFault { addr: 16, len: 8 }));
            } else {
                assert!(r.is_ok(), "request {i}");
                assert_eq!(u64::from_le_bytes(bufs[i]), i as u64 % 4096);
            }
        }
    }

    #[test]
    fn proc_mem_fallback_reads_the_same_bytes() {
        let mem = ProcessMemory::new(std::process::id() as i32);
        mem.use_proc_mem.store(true, Ordering::Relaxed);
        let data = [0xabu8; 64];
        let mut b = [0u8; 64];
        let mut bad = [0u8; 4];
        let mut reqs: Vec<(u64, &mut [u8])> = vec![(data.as_ptr() as u64, &mut b), (8, &mut bad)];
        let res = mem.read_batch(&mut reqs);
        assert!(res[0].is_ok() && res[1].is_err());
        assert_eq!(b, data);
    }

    #[test]
    fn coalesced_group_with_a_hole_falls_back_per_request() {
        let page = 4096usize;
        // SAFETY: a fresh private anonymous mapping, unmapped at the end.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: `base` is the start of the 3-page read-write mapping just
        // made (checked not MAP_FAILED); nothing else refers to it.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, 3 * page) };
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i / 7) as u8;
        }
        // The middle page becomes unreadable: a hole inside one coalesced range.
        assert_eq!(
            // SAFETY: the middle page lies inside the mapping; `bytes` is
            // not used after this.
            unsafe { libc::mprotect(base.cast::<u8>().add(page).cast(), page, libc::PROT_NONE) },
            0
        );
        let b = base as u64;
        let expect = |a: u64, len: usize| -> Vec<u8> {
            (0..len)
                .map(|k| ((a - b) as usize + k) / 7)
                .map(|v| v as u8)
                .collect()
        };
        let mem = ProcessMemory::new(std::process::id() as i32);
        let addrs = [
            b + 100,
            b + 4000,
            b + page as u64 + 8,
            b + 2 * page as u64 + 16,
            b + 120,
            b + 4090,
        ];
        let mut bufs = vec![vec![0u8; 32]; addrs.len()];
        let mut reqs: Vec<(u64, &mut [u8])> = addrs
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&a, v)| (a, &mut v[..]))
            .collect();
        let res = mem.read_batch(&mut reqs);
        // b+4000 and b+4090 run into the hole; b+page+8 is inside it.
        let bad = [false, false, true, false, false, true];
        for (k, r) in res.iter().enumerate() {
            assert_eq!(r.is_err(), bad[k], "request {k}: {r:?}");
            if !bad[k] {
                assert_eq!(bufs[k], expect(addrs[k], 32), "request {k}");
            }
        }
        // SAFETY: the whole mapping made above; nothing refers to it now.
        unsafe { libc::munmap(base, 3 * page) };
    }
}
