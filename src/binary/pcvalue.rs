//! Decoding of Go's pc-value tables (pcsp, pcfile, pcln, pcdata).
//!
//! A table is a sequence of (value delta, pc delta) pairs of uvarints,
//! starting from value -1 at the function's entry. The value delta is
//! zig-zag encoded; the pc delta is in instruction quanta (1 on x86-64).
//! A value-delta byte of 0 ends the table, except in the very first pair.
//! The value for a pc is the one in force when the running pc first passes
//! it (runtime `pcvalue` / `step`).

/// Why a lookup in a pc-value table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PcValueError {
    /// The table runs past the end of pctab or has an over-long varint;
    /// carries the offset into pctab.
    Malformed(usize),
    /// The table ended before reaching the pc.
    NotCovered,
}

/// Longest uvarint accepted. Go writes uint32 deltas (5 bytes at most); 10
/// bounds a hostile table whatever the width.
const MAX_VARINT_LEN: usize = 10;

/// Reads a uvarint at `*pos`, truncating to 32 bits as the runtime does.
fn read_varint(table: &[u8], pos: &mut usize) -> Result<u32, PcValueError> {
    let mut value = 0u32;
    for i in 0..MAX_VARINT_LEN {
        let b = *table.get(*pos).ok_or(PcValueError::Malformed(*pos))?;
        *pos += 1;
        value |= u32::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(PcValueError::Malformed(*pos))
}

/// The cursor over one table.
struct Cursor<'a> {
    table: &'a [u8],
    pos: usize,
    pc: u64,
    value: i32,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start (byte `start` of `pctab`) of a function's
    /// table, before its first step.
    fn at(pctab: &'a [u8], start: usize, entry: u64) -> Result<Cursor<'a>, PcValueError> {
        Ok(Cursor {
            table: pctab.get(start..).ok_or(PcValueError::Malformed(start))?,
            pos: 0,
            pc: entry,
            value: -1,
        })
    }

    /// Decodes the next pair; `Ok(false)` at the end of the table.
    fn step(&mut self, first: bool) -> Result<bool, PcValueError> {
        let lead = *self
            .table
            .get(self.pos)
            .ok_or(PcValueError::Malformed(self.pos))?;
        if lead == 0 && !first {
            return Ok(false);
        }
        let uvdelta = read_varint(self.table, &mut self.pos)?;
        let delta = ((uvdelta >> 1) as i32) ^ -((uvdelta & 1) as i32);
        self.value = self.value.wrapping_add(delta);
        let pcdelta = read_varint(self.table, &mut self.pos)?;
        self.pc = self.pc.saturating_add(u64::from(pcdelta));
        Ok(true)
    }
}

/// The value of the table at `off` in `pctab` for `target`, in a function
/// starting at `entry`. `off` must be non-zero (0 means "no table").
///
/// Every step consumes at least two bytes, so the loop is bounded by the
/// length of `pctab`.
pub(crate) fn lookup(pctab: &[u8], off: u32, entry: u64, target: u64) -> Result<i32, PcValueError> {
    let start = off as usize;
    let mut cur = Cursor::at(pctab, start, entry)?;
    loop {
        let first = cur.pc == entry;
        match cur.step(first) {
            Ok(true) => {}
            Ok(false) => return Err(PcValueError::NotCovered),
            Err(PcValueError::Malformed(p)) => return Err(PcValueError::Malformed(start + p)),
            Err(e) => return Err(e),
        }
        if target < cur.pc {
            return Ok(cur.value);
        }
    }
}

/// Every `(start, end, value)` run of the table at `off`, at most `max`
/// of them (each step consumes two bytes or more, so the walk ends with
/// the data anyway).
pub(crate) fn runs(
    pctab: &[u8],
    off: u32,
    entry: u64,
    max: usize,
) -> Result<Vec<(u64, u64, i32)>, PcValueError> {
    let start = off as usize;
    let mut cur = Cursor::at(pctab, start, entry)?;
    let mut out = Vec::new();
    let mut first = true;
    while out.len() < max {
        let from = cur.pc;
        match cur.step(first) {
            Ok(true) => {}
            Ok(false) => break,
            Err(PcValueError::Malformed(p)) => return Err(PcValueError::Malformed(start + p)),
            Err(e) => return Err(e),
        }
        first = false;
        if cur.pc > from {
            out.push((from, cur.pc, cur.value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_runtime_example() {
        // value -1+1=0 for [entry, entry+4), then +8 => 8 for [entry+4, entry+0x20).
        // zigzag(1)=2, zigzag(8)=16.
        let table = [0u8, 2, 4, 16, 0x1c, 0];
        let t = |pc| lookup(&table, 1, 0x1000, pc);
        assert_eq!(t(0x1000), Ok(0));
        assert_eq!(t(0x1003), Ok(0));
        assert_eq!(t(0x1004), Ok(8));
        assert_eq!(t(0x101f), Ok(8));
        assert_eq!(t(0x1020), Err(PcValueError::NotCovered));
    }

    #[test]
    fn runs_of_the_runtime_example() {
        let table = [0u8, 2, 4, 16, 0x1c, 0];
        assert_eq!(
            runs(&table, 1, 0x1000, 100),
            Ok(vec![(0x1000, 0x1004, 0), (0x1004, 0x1020, 8)])
        );
        assert_eq!(runs(&table, 1, 0x1000, 1).map(|r| r.len()), Ok(1));
        assert!(runs(&[0, 2], 1, 0, 100).is_err());
    }

    #[test]
    fn truncated_and_overlong_tables_fail() {
        assert!(matches!(
            lookup(&[0, 2], 1, 0, 5),
            Err(PcValueError::Malformed(_))
        ));
        assert!(matches!(
            lookup(&[0xff; 32], 0, 0, 5),
            Err(PcValueError::Malformed(_))
        ));
        assert!(matches!(
            lookup(&[], 7, 0, 5),
            Err(PcValueError::Malformed(_))
        ));
        // A long run of zero pc deltas terminates at the end of the data.
        let mut t = [2u8, 0].repeat(1000);
        t.insert(0, 0);
        assert!(lookup(&t, 1, 0, 5).is_err());
    }
}
