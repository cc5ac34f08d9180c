//! Many short lists in one buffer: list `k` is `items[ends[k-1]..ends[k]]`.
//! A million goroutines' roots, each with a value or two, would otherwise
//! be a million small vectors.

/// Lists of `T`, in the order they were added.
pub(super) struct Lists<T> {
    items: Vec<T>,
    ends: Vec<usize>,
}

impl<T> Default for Lists<T> {
    fn default() -> Self {
        Lists {
            items: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<T> Lists<T> {
    /// Adds a list as `fill` appends its items; false, and no list added,
    /// if it appends none.
    pub fn add_nonempty(&mut self, fill: impl FnOnce(&mut Vec<T>)) -> bool {
        let start = self.items.len();
        fill(&mut self.items);
        if self.items.len() == start {
            return false;
        }
        self.end_list();
        true
    }

    /// Adds `item` to the list being built ([`Self::end_list`] ends it).
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    /// Ends the list being built: the items pushed since the last end.
    pub fn end_list(&mut self) {
        self.ends.push(self.items.len());
    }

    /// List `k`'s items (none for a list that does not exist).
    pub fn get(&self, k: usize) -> &[T] {
        let start = match k.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(k).copied().unwrap_or(start);
        self.items.get(start..end).unwrap_or(&[])
    }

    /// Each list's items, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[T]> + '_ {
        (0..self.len()).map(|k| self.get(k))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Adds `later`'s lists after these.
    pub fn append(&mut self, later: Lists<T>) {
        let base = self.items.len();
        self.items.extend(later.items);
        self.ends.extend(later.ends.into_iter().map(|e| base + e));
    }
}
