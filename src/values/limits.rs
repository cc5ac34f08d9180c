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

/// Values one print may be inside of at once. `Limits::depth` counts only
/// the levels Go nests (a struct, a slice); a pointer or an interface shows
/// its target at the same level, so hostile memory (an interface whose
/// dynamic type is an interface, again and again) could recurse without
/// end: this bounds the recursion itself, far above what 16 levels of
/// real values need (a few calls per level).
pub const NESTED_PER_PRINT: usize = 256;

/// The values one print may still format, and how deep in nested values
/// it is; shared by the nested calls.
#[derive(Debug)]
pub struct Budget {
    left: Cell<u64>,
    nested: Cell<usize>,
}

/// One value being formatted, inside the others; leaves when dropped.
pub struct Nested<'a>(&'a Budget);

impl Drop for Nested<'_> {
    fn drop(&mut self) {
        self.0.nested.set(self.0.nested.get().saturating_sub(1));
    }
}

impl Budget {
    pub fn new() -> Budget {
        Budget {
            left: Cell::new(VALUES_PER_PRINT),
            nested: Cell::new(0),
        }
    }

    /// Takes one value from the budget; false once it is spent.
    pub fn take(&self) -> bool {
        let left = self.left.get();
        self.left.set(left.saturating_sub(1));
        left > 0
    }

    /// Enters one more nested value; `None` when [`NESTED_PER_PRINT`] are
    /// open already.
    pub fn enter(&self) -> Option<Nested<'_>> {
        let n = self.nested.get();
        if n >= NESTED_PER_PRINT {
            return None;
        }
        self.nested.set(n + 1);
        Some(Nested(self))
    }

    pub fn reset(&self) {
        self.left.set(VALUES_PER_PRINT);
        self.nested.set(0);
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
        b.left.set(1);
        assert!(b.take());
        assert!(!b.take());
        b.reset();
        assert!(b.take());
    }

    #[test]
    fn nesting_is_bounded_and_left_on_drop() {
        let b = Budget::new();
        let open: Vec<Nested> = (0..NESTED_PER_PRINT).map_while(|_| b.enter()).collect();
        assert_eq!(open.len(), NESTED_PER_PRINT);
        assert!(b.enter().is_none());
        drop(open);
        assert!(b.enter().is_some());
    }
}
