//! Appending text to a byte buffer without `fmt`'s machinery: a dump of
//! 100k goroutines is 7 million lines, and `write!` per field cost more
//! than decoding them. Shared by the dump's layout (`report/text.rs`) and
//! the argument lists decoding makes (`goruntime/args.rs`).

/// Text appended to a buffer.
pub(crate) trait Put {
    fn put(&mut self, s: &str);
    /// `{:#x}`: `0x` and lower-case hex digits, no leading zeros.
    fn hex(&mut self, v: u64);
    /// `{}` of an unsigned number.
    fn dec(&mut self, v: u64);
    /// `{}` of a signed number.
    fn idec(&mut self, v: i64);
}

impl Put for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    fn hex(&mut self, v: u64) {
        let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
        // The significant digits moved to the top, so that they are the
        // buffer's first: each byte becomes two digits at fixed places,
        // with no loop over a count of digits (twice as fast as one, and
        // numbers in hex are a third of a dump's text).
        let top = v << (64 - 4 * digits);
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        for (i, b) in top.to_be_bytes().iter().enumerate() {
            let [hi, lo] = HEX_PAIRS[usize::from(*b)];
            buf[2 + 2 * i] = hi;
            buf[3 + 2 * i] = lo;
        }
        append_first(self, &buf, 2 + digits as usize);
    }

    fn dec(&mut self, mut v: u64) {
        // Digits from the left: counted first, so the buffer is filled in
        // place and appended as a prefix (see `append_first`).
        let mut digits = 1;
        let mut rest = v / 10;
        while rest != 0 {
            digits += 1;
            rest /= 10;
        }
        let mut buf = [0u8; 20];
        for at in (0..digits).rev() {
            buf[at] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        append_first(self, &buf, digits);
    }

    fn idec(&mut self, v: i64) {
        if v < 0 {
            self.push(b'-');
        }
        self.dec(v.unsigned_abs());
    }
}

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
        i += 1;
    }
    pairs
};

/// Appends `buf[..n]`. The whole fixed-size buffer is copied, then cut
/// back: a copy of a size known when compiling is a few vector moves, where
/// one of `n` bytes is a call to `memcpy`, which at a million goroutines'
/// 50 million numbers was 9% of `goat stacks`' time.
fn append_first<const N: usize>(out: &mut Vec<u8>, buf: &[u8; N], n: usize) {
    let len = out.len();
    out.extend_from_slice(buf);
    out.truncate(len + n.min(N));
}

#[cfg(test)]
mod tests {
    use super::Put;

    #[test]
    fn numbers_print_as_format_prints_them() {
        let every_length = (0..64).flat_map(|s| [1u64 << s, (1u64 << s) - 1, !0u64 >> s]);
        let some = [
            0,
            9,
            10,
            15,
            16,
            255,
            0xc000_1234,
            0x4a_5f20,
            u64::MAX,
            1 << 63,
        ];
        for v in some.into_iter().chain(every_length) {
            let mut b = Vec::new();
            b.hex(v);
            b.put(" ");
            b.dec(v);
            assert_eq!(String::from_utf8(b).unwrap(), format!("{v:#x} {v}"));
        }
        for v in [0, -1, 42, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            b.idec(v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
    }
}
