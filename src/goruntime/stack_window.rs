//! A goroutine's stack read once, for its decoding: unwinding and argument
//! printing read it a word at a time (3.5 million frames at 100k service
//! goroutines), and each read of a capture looks its range up and, for a
//! spilled capture, goes through a block cache. One read up front and
//! slice copies after that halve what decoding spends reading.

use crate::process::{Memory, ReadFault};

/// Stack bytes read at most into a window; a deeper stack's reads past it
/// go to the memory underneath (capture copies are cut at 4 MiB anyway).
const MAX_WINDOW: u64 = 4 << 20;

/// `inner`, with `[base, base + bytes.len())` answered from a copy.
pub(super) struct StackWindow<'a> {
    inner: &'a dyn Memory,
    base: u64,
    bytes: &'a [u8],
}

impl<'a> StackWindow<'a> {
    /// The window over `[sp, hi)` of `inner`, read into `buf` (reused
    /// between goroutines). A range `inner` cannot read whole gives an
    /// empty window, and leaves `buf` empty: every read then goes to
    /// `inner`, which answers as it would have without one.
    pub(super) fn new(inner: &'a dyn Memory, sp: u64, hi: u64, buf: &'a mut Vec<u8>) -> Self {
        let len = hi.saturating_sub(sp).min(MAX_WINDOW) as usize;
        buf.clear();
        buf.resize(len, 0);
        if len > 0 && inner.read(sp, buf).is_err() {
            buf.clear();
        }
        StackWindow::over(inner, sp, buf)
    }

    /// A window over bytes already read from `[base, base + bytes.len())`
    /// of `inner` (a decoding's, lent to the stack scan that follows it).
    pub(super) fn over(inner: &'a dyn Memory, base: u64, bytes: &'a [u8]) -> Self {
        StackWindow { inner, base, bytes }
    }
}

impl Memory for StackWindow<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let held = addr
            .checked_sub(self.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.bytes.get(off..off.checked_add(buf.len())?));
        match held {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => self.inner.read(addr, buf),
        }
    }

    fn read_word(&self, addr: u64) -> Result<u64, ReadFault> {
        let held = addr
            .checked_sub(self.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.bytes.get(off..off.checked_add(8)?))
            .and_then(|b| <[u8; 8]>::try_from(b).ok());
        match held {
            Some(b) => Ok(u64::from_le_bytes(b)),
            None => self.inner.read_word(addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{CapturedMemory, MemoryExt};

    #[test]
    fn reads_inside_come_from_the_copy_and_others_from_underneath() {
        let mut m = CapturedMemory::new();
        m.insert(0x1000, &(0u8..64).collect::<Vec<_>>());
        m.insert(0x9000, &[7; 8]);
        let mut buf = Vec::new();
        let w = StackWindow::new(&m, 0x1010, 0x1040, &mut buf);
        assert_eq!(w.read_u64(0x1010).unwrap(), m.read_u64(0x1010).unwrap());
        assert_eq!(w.read_u64(0x1038).unwrap(), m.read_u64(0x1038).unwrap());
        // Below the window, across its end, elsewhere: as underneath.
        assert_eq!(w.read_u64(0x1008).unwrap(), m.read_u64(0x1008).unwrap());
        assert_eq!(w.read_u64(0x103c), m.read_u64(0x103c));
        assert_eq!(w.read_u64(0x9000).unwrap(), u64::from_le_bytes([7; 8]));
        assert!(w.read_u64(u64::MAX - 3).is_err());
        // A window the memory cannot fill is empty, not partly made up.
        let mut buf = Vec::new();
        let w = StackWindow::new(&m, 0x1030, 0x1080, &mut buf);
        assert_eq!(w.read_u64(0x1030).unwrap(), m.read_u64(0x1030).unwrap());
        assert!(w.read_u64(0x1040).is_err());
    }
}
