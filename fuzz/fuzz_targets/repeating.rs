//! The hostile memory of the `goroutine_decode` and `value_print` fuzz
//! targets: the input's bytes after its first 8 repeated over the whole
//! address space, shifted by those 8 bytes, so that every pointer the
//! reader follows lands on bytes the fuzzer chose; the top page faults, so
//! both outcomes of a read are explored. Shared with goat's unit tests,
//! which replay the targets' findings: the includer brings `Memory` and
//! `ReadFault` into scope; a capture reads it as a `Threadless` target.

use super::{Memory, ReadFault};

pub struct Repeating<'a> {
    pub bytes: &'a [u8],
    pub shift: u64,
}

impl<'a> Repeating<'a> {
    /// The memory an input describes: its first 8 bytes are the shift,
    /// the rest the repeated bytes. `None` if there are no bytes to repeat.
    pub fn of_input(input: &'a [u8]) -> Option<Repeating<'a>> {
        let shift = input.get(..8)?.try_into().ok().map(u64::from_le_bytes)?;
        let bytes = &input[8..];
        (!bytes.is_empty()).then_some(Repeating { bytes, shift })
    }
}

impl Memory for Repeating<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let n = self.bytes.len() as u64;
        if n == 0 || addr >= u64::MAX - 4096 {
            return Err(ReadFault {
                addr,
                len: buf.len(),
            });
        }
        // The same bytes as one `%` per byte, copied a run at a time: a
        // capture reads megabytes of stacks per input, and a loop per byte
        // kept the fuzzer at ~30 inputs a second.
        let mut at = (addr.wrapping_add(self.shift) % n) as usize;
        let mut rest = &mut buf[..];
        while !rest.is_empty() {
            let run = rest.len().min(self.bytes.len() - at);
            let (head, tail) = rest.split_at_mut(run);
            head.copy_from_slice(&self.bytes[at..at + run]);
            rest = tail;
            at = 0;
        }
        Ok(())
    }
}
