//! The scan's running state, as the runtime's `stackScanState`: the slots
//! found so far, the pointers into the stack they hold (the only way a
//! stack object becomes live), and the stack objects of the frames scanned
//! precisely. Once the frames are done, [`ScanState::trace_objects`] scans
//! every object some live pointer reaches, as `scanstack` does after its
//! frame walk.

use crate::binary::Binary;
use crate::process::{Memory, MemoryExt};

use super::maps::Bitmap;

const WORD: u64 = 8;
/// A bound on the stack objects of one goroutine (a forged stack could
/// list millions).
const MAX_OBJECTS: usize = 1 << 20;

/// A stack object placed in its frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct StackObject {
    pub addr: u64,
    pub size: u64,
    /// The record's `ptrdata`: negative for a GC program (before Go 1.24).
    pub ptrdata: i32,
    /// Link-time address of its pointer bitmap, when the rodata base is known.
    pub gcdata: Option<u64>,
}

pub(super) struct ScanState<'a> {
    pub mem: &'a dyn Memory,
    pub lo: u64,
    pub hi: u64,
    pub out: &'a mut Vec<u64>,
    /// Slots appended by this scan, and how many it may append.
    pub appended: u64,
    pub max_slots: u64,
    /// Pointers into `[lo, hi)` found in precise slots and in words scanned
    /// conservatively: precise ones are followed first (the runtime's
    /// `getPtr`), so that an object reached both ways is scanned precisely.
    precise: Vec<u64>,
    conservative: Vec<u64>,
    objects: Vec<StackObject>,
    /// Set when `max_slots` was reached: the rest was not appended.
    pub overflowed: bool,
    /// Set when objects past [`MAX_OBJECTS`] were left out.
    pub dropped_objects: bool,
}

impl<'a> ScanState<'a> {
    pub fn new(mem: &'a dyn Memory, lo: u64, hi: u64, out: &'a mut Vec<u64>) -> Self {
        // Every word of the stack at most a few times over (frames, args
        // overlapping their caller's frame, objects), and the goroutine's
        // records: generous for a real stack, a bound for a forged one.
        let max_slots = ((hi - lo) / WORD).saturating_mul(4).saturating_add(1 << 16);
        ScanState {
            mem,
            lo,
            hi,
            out,
            appended: 0,
            max_slots,
            precise: Vec::new(),
            conservative: Vec::new(),
            objects: Vec::new(),
            overflowed: false,
            dropped_objects: false,
        }
    }

    fn in_stack(&self, v: u64) -> bool {
        v >= self.lo && v < self.hi
    }

    /// A slot the GC treats as a live pointer (`scanblock`, or
    /// `scanConservative` when `conservative`): appended, and its value
    /// followed if it points into the stack.
    pub fn slot(&mut self, addr: u64, conservative: bool) {
        if self.appended >= self.max_slots {
            self.overflowed = true;
            return;
        }
        self.appended += 1;
        self.out.push(addr);
        if let Ok(v) = self.mem.read_u64(addr) {
            self.stack_pointer(v, conservative);
        }
    }

    /// A pointer that may point at a stack object (`putPtr`).
    pub fn stack_pointer(&mut self, v: u64, conservative: bool) {
        if !self.in_stack(v) {
            return;
        }
        match conservative {
            true => self.conservative.push(v),
            false => self.precise.push(v),
        }
    }

    /// The words of `[from, to)` (within the stack), each a slot.
    pub fn words(&mut self, from: u64, to: u64, conservative: bool) {
        let (from, to) = (from.max(self.lo), to.min(self.hi));
        let mut at = from;
        while at.checked_add(WORD).is_some_and(|end| end <= to) && !self.overflowed {
            self.slot(at, conservative);
            at += WORD;
        }
    }

    /// The words of `bitmap` over `base..`, within `[lo, hi)`.
    pub fn bitmap(&mut self, base: u64, bitmap: &Bitmap<'_>, conservative: bool) {
        for i in (0..bitmap.n).filter(|&i| bitmap.is_set(i)) {
            let Some(addr) = base.checked_add(u64::from(i) * WORD) else {
                break;
            };
            if addr >= self.lo && addr.checked_add(WORD).is_some_and(|e| e <= self.hi) {
                self.slot(addr, conservative);
            }
        }
    }

    pub fn add_object(&mut self, obj: StackObject) {
        // Objects outside the stack cannot be reached by a pointer into it.
        if !self.in_stack(obj.addr) {
            return;
        }
        match self.objects.len() < MAX_OBJECTS {
            true => self.objects.push(obj),
            false => self.dropped_objects = true,
        }
    }

    /// Scans every stack object a pointer found so far reaches, and those
    /// their own pointers reach, each once.
    pub fn trace_objects(&mut self, bin: &Binary) {
        self.objects.sort_by_key(|o| o.addr);
        let mut scanned = vec![false; self.objects.len()];
        loop {
            let (p, conservative) = if let Some(p) = self.precise.pop() {
                (p, false)
            } else if let Some(p) = self.conservative.pop() {
                (p, true)
            } else {
                break;
            };
            // The object starting at or below p that spans it.
            let i = self.objects.partition_point(|o| o.addr <= p);
            let Some(idx) = i.checked_sub(1) else {
                continue;
            };
            let Some(obj) = self.objects.get(idx).copied() else {
                continue;
            };
            if p >= obj.addr.saturating_add(obj.size) {
                continue;
            }
            match scanned.get_mut(idx) {
                Some(done) if !*done => *done = true,
                _ => continue,
            }
            self.scan_object(bin, &obj, conservative);
            if self.overflowed {
                break;
            }
        }
    }

    /// An object's pointer words: by its bitmap when it has one that can
    /// be read; every word of its pointer-holding prefix otherwise (a GC
    /// program, or a bitmap goat cannot find), which errs toward keeping
    /// things alive.
    fn scan_object(&mut self, bin: &Binary, obj: &StackObject, conservative: bool) {
        let ptrdata = match obj.ptrdata {
            p if p >= 0 => u64::from(p.unsigned_abs()),
            p => u64::from(p.unsigned_abs()).min(obj.size),
        };
        let end = obj.addr.saturating_add(ptrdata).min(self.hi);
        let words = end.saturating_sub(obj.addr) / WORD;
        let bitmap = (obj.ptrdata >= 0)
            .then_some(obj.gcdata)
            .flatten()
            .and_then(|at| bin.read_static(at, words.div_ceil(8) as usize));
        match bitmap {
            Some(bytes) => {
                let map = Bitmap {
                    n: u32::try_from(words).unwrap_or(u32::MAX),
                    bytes,
                };
                self.bitmap(obj.addr, &map, conservative);
            }
            None => self.words(obj.addr, end, conservative),
        }
    }
}
