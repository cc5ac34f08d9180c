//! The goroutines of the current stop as the session holds them. At the
//! stop only what the prompt and a list need is read: every goroutine's
//! header (id, status, thread, `created by`), from the `runtime.g`s alone.
//! A goroutine's frames are decoded the first time a command asks for
//! them, reading its stack from the stopped target; the commands that look
//! at every stack (`goroutines -group`, filters on locations) decode them
//! all at once from one copy of every stack. A service with 100k
//! goroutines thus reaches the prompt without unwinding 100k stacks.

use std::cell::OnceCell;

use crate::goruntime::{Capture, Dump, Globals, Goroutine};

/// The goroutines of one stop: headers now, frames on demand.
pub(crate) struct StopGoroutines {
    /// Every live goroutine in `allgs` order, frames not decoded.
    heads: Dump,
    /// (goroutine id, index into `heads`), sorted: a million goroutines
    /// are indexed in a sort, where hashing cost more (and ids and
    /// addresses are target data: no hash they could flood).
    by_id: Vec<(u64, usize)>,
    /// (`runtime.g` address, index into `heads`), sorted.
    by_gp: Vec<(u64, usize)>,
    /// Each goroutine with its frames, once decoded.
    full: Vec<OnceCell<Box<Goroutine>>>,
    /// Whether every goroutine's frames were decoded.
    all: OnceCell<()>,
    /// Threads, wait reasons and the clock of the stop (its bytes dropped:
    /// stacks are read from the target itself).
    pub(crate) cap: Capture,
    /// Where the runtime's globals are, for a copy of every stack.
    pub(crate) globals: Option<Globals>,
}

impl StopGoroutines {
    pub(crate) fn empty() -> Self {
        Self::new(
            Dump {
                go_version: String::new(),
                header_shows_gp: false,
                goroutines: Vec::new(),
            },
            Capture::default(),
            None,
        )
    }

    pub(crate) fn new(heads: Dump, mut cap: Capture, globals: Option<Globals>) -> Self {
        let index = |key: fn(&Goroutine) -> u64| {
            let mut v: Vec<(u64, usize)> = heads
                .goroutines
                .iter()
                .enumerate()
                .map(|(i, g)| (key(g), i))
                .collect();
            v.sort_unstable();
            v
        };
        let (by_id, by_gp) = (index(|g| g.id), index(|g| g.gp));
        // The g structs were copied for the headers only.
        cap.mem = Default::default();
        StopGoroutines {
            full: (0..heads.goroutines.len())
                .map(|_| OnceCell::new())
                .collect(),
            heads,
            by_id,
            by_gp,
            all: OnceCell::new(),
            cap,
            globals,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heads.goroutines.len()
    }

    pub(crate) fn go_version(&self) -> &str {
        &self.heads.go_version
    }

    /// Every goroutine's header, in `allgs` order. Their `frames` are not
    /// decoded (empty) and `unreadable` is unset: only the id, status,
    /// thread, `gp` and `created_by` may be used.
    pub(crate) fn headers(&self) -> &[Goroutine] {
        &self.heads.goroutines
    }

    /// The index of goroutine `id` (the first of a repeated id).
    pub(crate) fn index_of(&self, id: u64) -> Option<usize> {
        find(&self.by_id, id)
    }

    /// Goroutine `i` with its frames, decoded by `decode` the first time.
    pub(crate) fn full(
        &self,
        i: usize,
        decode: impl FnOnce(&Goroutine) -> Goroutine,
    ) -> &Goroutine {
        let head = &self.heads.goroutines[i];
        self.full[i].get_or_init(|| Box::new(decode(head)))
    }

    /// The goroutines decoded so far, with their frames.
    pub(crate) fn decoded(&self) -> impl Iterator<Item = &Goroutine> {
        self.full.iter().filter_map(|c| c.get().map(|g| &**g))
    }

    pub(crate) fn all_decoded(&self) -> bool {
        self.all.get().is_some()
    }

    /// Takes the goroutines of a decode of every stack; those not listed in
    /// the headers (none, the target being stopped) are ignored.
    pub(crate) fn fill(&self, decoded: Vec<Goroutine>) {
        for g in decoded {
            if let Some(i) = find(&self.by_gp, g.gp) {
                // One decoded earlier stays: both read the same stop.
                let _ = self.full[i].set(Box::new(g));
            }
        }
        let _ = self.all.set(());
    }
}

/// The index paired with the first `key` in `sorted`.
fn find(sorted: &[(u64, usize)], key: u64) -> Option<usize> {
    let at = sorted.partition_point(|&(k, _)| k < key);
    sorted.get(at).filter(|&&(k, _)| k == key).map(|&(_, i)| i)
}
