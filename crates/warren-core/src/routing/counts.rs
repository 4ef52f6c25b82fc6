//! A multiset of destinations.
//!
//! Two bindings may select the same destination under the same key (they
//! differ only in arguments, e.g. on a direct exchange); removing one of
//! them must leave the route in place, hence a count per destination.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestCounts<D> {
    counts: BTreeMap<D, u32>,
}

impl<D> Default for DestCounts<D> {
    fn default() -> Self {
        DestCounts {
            counts: BTreeMap::new(),
        }
    }
}

impl<D: Ord + Clone> DestCounts<D> {
    pub fn add(&mut self, dest: D) {
        *self.counts.entry(dest).or_insert(0) += 1;
    }

    pub fn remove(&mut self, dest: &D) {
        if let Some(n) = self.counts.get_mut(dest) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(dest);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn for_each<'a, F: FnMut(&'a D)>(&'a self, f: &mut F) {
        self.counts.keys().for_each(f);
    }
}
