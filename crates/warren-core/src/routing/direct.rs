//! Direct exchange: the routing key must equal the binding key.

use std::collections::BTreeMap;

use super::DestCounts;

#[derive(Debug, Clone)]
pub struct DirectIndex<D> {
    by_key: BTreeMap<String, DestCounts<D>>,
}

impl<D> Default for DirectIndex<D> {
    fn default() -> Self {
        DirectIndex {
            by_key: BTreeMap::new(),
        }
    }
}

impl<D: Ord + Clone> DirectIndex<D> {
    pub fn add(&mut self, dest: D, key: &str) {
        self.by_key.entry(key.to_owned()).or_default().add(dest);
    }

    pub fn remove(&mut self, dest: &D, key: &str) {
        if let Some(set) = self.by_key.get_mut(key) {
            set.remove(dest);
            if set.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    pub fn route<'a, F: FnMut(&'a D)>(&'a self, key: &str, f: &mut F) {
        if let Some(set) = self.by_key.get(key) {
            set.for_each(f);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
