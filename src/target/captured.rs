//! Bytes copied out of a stopped target, readable after it has resumed.

use std::collections::BTreeMap;

use super::memory::{Memory, ReadFault};

/// A sparse copy of target memory: the ranges read while the target was
/// stopped. Decoding runs against this after the target resumes, so the
/// pause covers only the copy. Also the `FakeMemory` of unit tests.
#[derive(Debug, Default, Clone)]
pub struct CapturedMemory {
    ranges: BTreeMap<u64, Vec<u8>>,
}

impl CapturedMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `bytes` as the contents at `addr`. Overlapping inserts keep both;
    /// a read is served by whichever single range covers it.
    pub fn insert(&mut self, addr: u64, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        match self.ranges.get(&addr) {
            Some(old) if old.len() >= bytes.len() => {}
            _ => {
                self.ranges.insert(addr, bytes);
            }
        }
    }

    /// Total bytes held.
    pub fn len_bytes(&self) -> usize {
        self.ranges.values().map(Vec::len).sum()
    }
}

impl Memory for CapturedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let fault = ReadFault { addr, len: buf.len() };
        let end = addr.checked_add(buf.len() as u64).ok_or(fault)?;
        // Ranges may overlap; try the nearest few starting at or below addr.
        for (&start, bytes) in self.ranges.range(..=addr).rev().take(8) {
            let stop = start + bytes.len() as u64;
            if end <= stop {
                let off = (addr - start) as usize;
                buf.copy_from_slice(&bytes[off..off + buf.len()]);
                return Ok(());
            }
        }
        Err(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::MemoryExt;

    #[test]
    fn reads_inside_a_range_and_faults_across_its_end() {
        let mut m = CapturedMemory::new();
        m.insert(0x1000, (0u8..16).collect());
        assert_eq!(m.read_u32(0x1004).unwrap(), u32::from_le_bytes([4, 5, 6, 7]));
        assert_eq!(m.read_u64(0x100c), Err(ReadFault { addr: 0x100c, len: 8 }));
        assert!(m.read_u64(0xfff).is_err());
    }
}
