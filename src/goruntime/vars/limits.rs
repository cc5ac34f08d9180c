//! How much of a value is loaded and printed: Delve's `max-string-len`,
//! `max-array-values` and `max-variable-recurse`, which the session's
//! `config` changes. A [`Scope`](super::Scope) carries one set, so the
//! library never reads the session's settings itself.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a string shown (the rest is counted: `...+N more`).
    pub string_len: u64,
    /// Elements of a slice, array, map or channel (not struct fields: Delve
    /// does not cut those either).
    pub array_values: u64,
    /// Nesting levels shown before `{...}` / `[...]`.
    pub depth: usize,
}

impl Limits {
    /// goat's own defaults, which its tests and users know; Delve's `print`
    /// loads 64 string bytes and recurses one level, goat shows more.
    pub const DEFAULT: Limits = Limits {
        string_len: 100,
        array_values: 64,
        depth: 3,
    };

    /// The largest settings accepted: the target's lengths are hostile, so
    /// even a user's wish is bounded (1 MiB of a string, 64Ki elements,
    /// 16 levels of recursion).
    pub const MAX: Limits = Limits {
        string_len: 1 << 20,
        array_values: 1 << 16,
        depth: 16,
    };

    /// These limits with every setting brought under [`Limits::MAX`].
    pub fn clamped(self) -> Limits {
        Limits {
            string_len: self.string_len.min(Self::MAX.string_len),
            array_values: self.array_values.min(Self::MAX.array_values),
            depth: self.depth.min(Self::MAX.depth),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Values formatted by one `format` call at most: elements times nesting
/// levels multiply (64Ki elements of 64Ki elements...), so one print of
/// hostile lengths is bounded as a whole, not only per level.
pub const VALUES_PER_PRINT: u64 = 1 << 20;

/// The values one print may still format; shared by the nested calls.
#[derive(Debug)]
pub struct Budget(Cell<u64>);

impl Budget {
    pub fn new() -> Budget {
        Budget(Cell::new(VALUES_PER_PRINT))
    }

    /// Takes one value from the budget; false once it is spent.
    pub fn take(&self) -> bool {
        let left = self.0.get();
        self.0.set(left.saturating_sub(1));
        left > 0
    }

    pub fn reset(&self) {
        self.0.set(VALUES_PER_PRINT);
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_budget() {
        let huge = Limits {
            string_len: u64::MAX,
            array_values: u64::MAX,
            depth: usize::MAX,
        };
        assert_eq!(huge.clamped(), Limits::MAX);
        assert_eq!(Limits::DEFAULT.clamped(), Limits::DEFAULT);
        let b = Budget::new();
        b.0.set(1);
        assert!(b.take());
        assert!(!b.take());
        b.reset();
        assert!(b.take());
    }
}
