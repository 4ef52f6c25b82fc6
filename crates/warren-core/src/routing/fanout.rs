//! Fanout exchange: every bound destination, whatever the key.

use super::DestCounts;

#[derive(Debug, Clone)]
pub struct FanoutSet<D> {
    dests: DestCounts<D>,
}

impl<D> Default for FanoutSet<D> {
    fn default() -> Self {
        FanoutSet {
            dests: DestCounts::default(),
        }
    }
}

impl<D: Ord + Clone> FanoutSet<D> {
    pub fn add(&mut self, dest: D) {
        self.dests.add(dest);
    }

    pub fn remove(&mut self, dest: &D) {
        self.dests.remove(dest);
    }

    pub fn route<'a, F: FnMut(&'a D)>(&'a self, f: &mut F) {
        self.dests.for_each(f);
    }

    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }
}
