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

    /// Reads every `(addr, len)` range from `mem` again: bytes that lie in
    /// spans already captured are replaced in place (in every span holding
    /// them, so no older copy of them is left to answer a read), and parts
    /// no span holds are captured as new spans. Returns whether each range
    /// could be read; a range that could not may leave its old bytes
    /// damaged, so the caller must not trust them.
    pub fn rewrite_from(&mut self, mem: &dyn Memory, ranges: &[(u64, usize)]) -> Vec<bool> {
        // The ranges as sorted, disjoint runs, each remembering which
        // ranges it holds; ranges past the end of the address space are
        // never readable.
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_unstable_by_key(|&i| ranges[i].0);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut run_of = vec![usize::MAX; ranges.len()];
        for i in order {
            let (addr, n) = ranges[i];
            let Some(end) = addr.checked_add(n as u64) else {
                continue;
            };
            if n == 0 {
                continue;
            }
            match runs.last_mut() {
                Some(r) if addr <= r.1 => r.1 = r.1.max(end),
                _ => runs.push((addr, end)),
            }
            run_of[i] = runs.len() - 1;
        }
        // Every (span, run) overlap: the spans are sorted by start, so the
        // first run that ends past a span's start only moves forward.
        let mut pieces: Vec<(usize, u64, usize, usize)> = Vec::new(); // (arena offset, addr, len, run)
        let mut held: Vec<Vec<(u64, u64)>> = vec![Vec::new(); runs.len()];
        let mut first = 0;
        for s in &self.index {
            let s_end = s.addr + s.len;
            while first < runs.len() && runs[first].1 <= s.addr {
                first += 1;
            }
            for (j, &(r_start, r_end)) in runs.iter().enumerate().skip(first) {
                if r_start >= s_end {
                    break;
                }
                let (a, b) = (r_start.max(s.addr), r_end.min(s_end));
                if a < b {
                    pieces.push((s.offset + (a - s.addr) as usize, a, (b - a) as usize, j));
                    held[j].push((a, b));
                }
            }
        }
        let mut run_ok = vec![true; runs.len()];
        pieces.sort_unstable_by_key(|p| p.0);
        let results = {
            let mut reqs = Vec::with_capacity(pieces.len());
            let mut rest = &mut self.arena[..];
            let mut at = 0;
            for &(off, addr, n, _) in &pieces {
                // Spans never share arena bytes, so pieces never overlap.
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(off - at);
                let (head, tail) = tail.split_at_mut(n);
                reqs.push((addr, head));
                rest = tail;
                at = off + n;
            }
            mem.read_batch(&mut reqs)
        };
        for (p, r) in pieces.iter().zip(&results) {
            if r.is_err() {
                run_ok[p.3] = false;
            }
        }
        // What no span held: new spans.
        let mut fresh: Vec<(u64, usize)> = Vec::new();
        let mut fresh_run: Vec<usize> = Vec::new();
        for (j, &(r_start, r_end)) in runs.iter().enumerate() {
            let h = &mut held[j];
            h.sort_unstable();
            let mut at = r_start;
            for &(a, b) in h.iter() {
                if a > at {
                    fresh.push((at, (a - at) as usize));
                    fresh_run.push(j);
                }
                at = at.max(b);
            }
            if at < r_end {
                fresh.push((at, (r_end - at) as usize));
                fresh_run.push(j);
            }
        }
        for (j, ok) in fresh_run.iter().zip(self.read_from(mem, &fresh)) {
            if !ok {
                run_ok[*j] = false;
            }
        }
        run_of
            .iter()
            .map(|&j| j != usize::MAX && run_ok[j])
            .collect()
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
    fn rewrite_replaces_every_copy_and_adds_what_was_not_held() {
        let mut src = CapturedMemory::new();
        src.insert(0x1000, &[7; 0x40]);
        let mut m = CapturedMemory::new();
        // The same bytes twice (a g alone and inside a run), and a neighbour.
        m.insert(0x1000, &[1; 0x20]);
        m.insert(0x1010, &[2; 0x08]);
        m.insert(0x1030, &[3; 0x08]);
        let ok = m.rewrite_from(&src, &[(0x1008, 0x10), (0x1020, 0x18), (0x5000, 4)]);
        assert_eq!(ok, vec![true, true, false]);
        assert_eq!(m.read_u64(0x1008).unwrap(), u64::from_le_bytes([7; 8]));
        assert_eq!(m.read_u64(0x1010).unwrap(), u64::from_le_bytes([7; 8]));
        assert_eq!(m.read_u64(0x1000).unwrap(), u64::from_le_bytes([1; 8]));
        // 0x1020..0x1030 was held by no span: now it is.
        assert_eq!(m.read_u64(0x1024).unwrap(), u64::from_le_bytes([7; 8]));
        assert_eq!(m.read_u64(0x1030).unwrap(), u64::from_le_bytes([7; 8]));
        assert!(m.read_u32(0x5000).is_err());
        // A range past the end of the address space is refused, not a panic.
        assert_eq!(m.rewrite_from(&src, &[(u64::MAX - 2, 8)]), vec![false]);
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
