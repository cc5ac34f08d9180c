//! A span's memory read at once: scanning a heap of millions of small
//! objects object by object cost a read for each object's pointer bits
//! (at its span's end, Go 1.22+) and another for its words, each through
//! the core reader's segment lookup and block cache. One read per span
//! serves both, and every read outside the span goes to the memory
//! behind, so what a scan sees is byte for byte what it saw before.

use crate::process::{Memory, ReadFault};

use super::{Heap, Object};

/// Most bytes of a span read at once: a small size class's span is at
/// most 10 pages (80 KiB); a large object's span is read as it is scanned.
const MAX_SPAN_READ: u64 = 128 << 10;

/// `bytes` at `base`, and `mem` for the rest.
struct SpanView<'a> {
    mem: &'a dyn Memory,
    base: u64,
    bytes: &'a [u8],
}

impl Memory for SpanView<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let inside = addr
            .checked_sub(self.base)
            .and_then(|off| usize::try_from(off).ok())
            .and_then(|off| self.bytes.get(off..off.checked_add(buf.len())?));
        match inside {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => self.mem.read(addr, buf),
        }
    }
}

impl Heap {
    /// Calls `each(object, memory)` for every allocated object in address
    /// order (as [`Heap::objects`]), `memory` serving the object's span
    /// from one read into `scratch` where the span holds pointers and
    /// reads whole (else `mem` itself).
    pub fn for_each_object(
        &self,
        mem: &dyn Memory,
        scratch: &mut Vec<u8>,
        mut each: impl FnMut(&Object, &dyn Memory),
    ) {
        for (i, s) in self.spans().iter().enumerate() {
            let words = self
                .allocated
                .get(s.bits_at..s.bits_at + s.words())
                .unwrap_or(&[]);
            if words.iter().all(|w| *w == 0) {
                continue;
            }
            let len = s.end() - s.base;
            let whole = !s.noscan && s.sizeclass != 0 && len <= MAX_SPAN_READ && {
                scratch.resize(len as usize, 0);
                mem.read(s.base, scratch).is_ok()
            };
            let view = SpanView {
                mem,
                base: s.base,
                bytes: if whole { scratch } else { &[] },
            };
            let at: &dyn Memory = if whole { &view } else { mem };
            for (w, &bits) in words.iter().enumerate() {
                for b in super::SetBits(bits) {
                    if let Some(obj) = self.slot(i, (w * 64 + b) as u32) {
                        each(&obj, at);
                    }
                }
            }
        }
    }
}
