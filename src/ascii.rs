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
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let digits = (64 - v.leading_zeros()).div_ceil(4).max(1) as usize;
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        for i in 0..digits {
            buf[1 + digits - i] = DIGITS[((v >> (4 * i)) & 0xf) as usize];
        }
        self.extend_from_slice(&buf[..2 + digits]);
    }

    fn dec(&mut self, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.extend_from_slice(&buf[at..]);
    }

    fn idec(&mut self, v: i64) {
        if v < 0 {
            self.push(b'-');
        }
        self.dec(v.unsigned_abs());
    }
}

#[cfg(test)]
mod tests {
    use super::Put;

    #[test]
    fn numbers_print_as_format_prints_them() {
        for v in [0, 1, 9, 10, 15, 16, 255, 0xc000_1234, u64::MAX, 1 << 63] {
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
