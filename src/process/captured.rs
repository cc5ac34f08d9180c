//! Bytes copied out of a stopped target, readable after it has resumed.

use super::memory::{Memory, ReadFault};

/// One copied range: `len` bytes of target memory at `addr`, kept at
/// `offset` in the arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    addr: u64,
    len: u64,
    offset: usize,
}

/// A sparse copy of target memory: the ranges read while the target was
/// stopped. Decoding runs against this after the target resumes, so the
/// pause covers only the copy. Also the fake memory of unit tests.
///
/// All bytes live in one arena and the ranges in one sorted index: a dump of
/// 100k goroutines copies 200k ranges, and one allocation per range would
/// cost more than the copy itself.
#[derive(Debug, Default, Clone)]
pub struct CapturedMemory {
    arena: Vec<u8>,
    index: Vec<Span>,
}

impl CapturedMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty copy whose arena already holds `bytes` of faulted-in memory,
    /// so that filling it while the target is stopped costs no page faults.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut arena = vec![0u8; bytes];
        // vec! of zeros maps pages lazily; touch one byte a page to fault
        // them in now, outside the pause.
        for b in arena.iter_mut().step_by(4096) {
            *b = 1;
        }
        arena.clear();
        CapturedMemory {
            arena,
            index: Vec::new(),
        }
    }

    /// Records `bytes` as the contents at `addr`.
    /// Bytes the arena holds room for (what [`Self::with_capacity`] faulted in).
    #[cfg(test)]
    pub(crate) fn reserved(&self) -> usize {
        self.arena.capacity()
    }

    pub fn insert(&mut self, addr: u64, bytes: &[u8]) {
        let offset = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.push_span(addr, bytes.len(), offset);
        self.sort();
    }

    /// Reads every `(addr, len)` range from `mem` in one batch straight into
    /// the arena, and returns whether each range could be read.
    /// (The live backend's `read_batch` merges neighbouring ranges and
    /// spreads large batches over threads.)
    pub fn read_from(&mut self, mem: &dyn Memory, ranges: &[(u64, usize)]) -> Vec<bool> {
        let base = self.arena.len();
        let total: usize = ranges.iter().map(|&(_, n)| n).sum();
        self.arena.resize(base + total, 0);
        let results = {
            let mut rest = &mut self.arena[base..];
            let mut reqs = Vec::with_capacity(ranges.len());
            for &(addr, n) in ranges {
                let (head, tail) = rest.split_at_mut(n);
                reqs.push((addr, head));
                rest = tail;
            }
            mem.read_batch(&mut reqs)
        };
        let mut offset = base;
        let mut ok = Vec::with_capacity(ranges.len());
        for (&(addr, n), res) in ranges.iter().zip(&results) {
            if res.is_ok() {
                self.push_span(addr, n, offset);
            }
            ok.push(res.is_ok());
            offset += n;
        }
        self.sort();
        ok
    }

    /// Total bytes held.
    pub fn len_bytes(&self) -> usize {
        self.index.iter().map(|s| s.len as usize).sum()
    }

    fn push_span(&mut self, addr: u64, len: usize, offset: usize) {
        if len > 0 {
            self.index.push(Span {
                addr,
                len: len as u64,
                offset,
            });
        }
    }

    fn sort(&mut self) {
        // Nearly sorted in practice (each batch is appended in address
        // order), which the stable sort handles in close to linear time.
        self.index.sort_by_key(|s| s.addr);
    }
}

impl Memory for CapturedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault {
            addr,
            len: buf.len(),
        };
        let end = addr.checked_add(buf.len() as u64).ok_or(fault)?;
        let after = self.index.partition_point(|s| s.addr <= addr);
        // Ranges may overlap (a g copied alone and inside a larger run):
        // try the nearest few that start at or below addr.
        for s in self.index[..after].iter().rev().take(8) {
            if end <= s.addr + s.len {
                let from = s.offset + (addr - s.addr) as usize;
                buf.copy_from_slice(&self.arena[from..from + buf.len()]);
                return Ok(());
            }
        }
        Err(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::MemoryExt;

    #[test]
    fn reads_inside_a_range_and_faults_across_its_end() {
        let mut m = CapturedMemory::new();
        m.insert(0x1000, &(0u8..16).collect::<Vec<_>>());
        assert_eq!(
            m.read_u32(0x1004).unwrap(),
            u32::from_le_bytes([4, 5, 6, 7])
        );
        assert_eq!(
            m.read_u64(0x100c),
            Err(ReadFault {
                addr: 0x100c,
                len: 8
            })
        );
        assert!(m.read_u64(0xfff).is_err());
    }

    #[test]
    fn batch_reads_keep_only_what_was_readable() {
        let mut src = CapturedMemory::new();
        src.insert(0x2000, &[1, 2, 3, 4]);
        src.insert(0x1000, &[9; 8]);
        let mut m = CapturedMemory::new();
        assert_eq!(
            m.read_from(&src, &[(0x2000, 4), (0x3000, 4), (0x1000, 8)]),
            vec![true, false, true]
        );
        assert_eq!(
            m.read_u32(0x2000).unwrap(),
            u32::from_le_bytes([1, 2, 3, 4])
        );
        assert_eq!(m.read_u64(0x1000).unwrap(), u64::from_le_bytes([9; 8]));
        assert!(m.read_u32(0x3000).is_err());
        assert_eq!(m.len_bytes(), 12);
    }
}
