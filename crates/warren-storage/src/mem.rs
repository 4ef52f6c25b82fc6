//! `MemStore`: the in-memory twin of `RocksStore`. Same semantics, no disk,
//! nothing survives the process. For tests of everything above storage.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::store::LogStore;
use crate::types::{Entry, GroupId, LogState, MetaKey, StorageError, StoreStats};

#[derive(Default)]
struct GroupData {
    log: BTreeMap<u64, Bytes>,
    meta: BTreeMap<MetaKey, Bytes>,
    snapshot: Option<(Bytes, Bytes)>,
    bodies: BTreeMap<u64, Bytes>,
}

impl GroupData {
    fn is_empty(&self) -> bool {
        self.log.is_empty()
            && self.meta.is_empty()
            && self.snapshot.is_none()
            && self.bodies.is_empty()
    }
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<GroupId, GroupData>,
    stats: StoreStats,
}

impl Inner {
    /// Runs one write against a group, counting it like a one-request batch,
    /// and forgets the group when the write left it empty (as RocksStore,
    /// whose `groups()` only sees keys that exist).
    fn write(&mut self, group: GroupId, bytes: u64, f: impl FnOnce(&mut GroupData)) {
        let data = self.groups.entry(group).or_default();
        f(data);
        if data.is_empty() {
            self.groups.remove(&group);
        }
        self.stats.batches += 1;
        self.stats.requests += 1;
        self.stats.bytes_written += bytes;
        self.stats.max_batch_requests = 1;
    }
}

/// The in-memory store. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = self.inner.lock().groups.len();
        f.debug_struct("MemStore").field("groups", &groups).finish()
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LogStore for MemStore {
    async fn append(&self, group: GroupId, entries: Vec<Entry>) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = entries.iter().map(|e| e.payload.len() as u64).sum();
        let mut inner = self.inner.lock();
        inner.stats.entries_written += entries.len() as u64;
        inner.write(group, bytes, |g| {
            for e in entries {
                g.log.insert(e.index, e.payload);
            }
        });
        Ok(())
    }

    fn entries(&self, group: GroupId, range: Range<u64>) -> Result<Vec<Entry>, StorageError> {
        let inner = self.inner.lock();
        let Some(g) = inner.groups.get(&group) else {
            return Ok(Vec::new());
        };
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        Ok(g.log
            .range(range)
            .map(|(i, p)| Entry::new(*i, p.clone()))
            .collect())
    }

    fn log_state(&self, group: GroupId) -> Result<LogState, StorageError> {
        let inner = self.inner.lock();
        let log = inner.groups.get(&group).map(|g| &g.log);
        Ok(LogState {
            first_index: log.and_then(|l| l.keys().next().copied()),
            last_index: log.and_then(|l| l.keys().next_back().copied()),
        })
    }

    async fn truncate_after(&self, group: GroupId, index: u64) -> Result<(), StorageError> {
        self.inner.lock().write(group, 0, |g| {
            if index < u64::MAX {
                g.log.split_off(&(index + 1));
            }
        });
        Ok(())
    }

    async fn purge_upto(&self, group: GroupId, index: u64) -> Result<(), StorageError> {
        self.inner.lock().write(group, 0, |g| {
            g.log = if index < u64::MAX {
                g.log.split_off(&(index + 1))
            } else {
                BTreeMap::new()
            };
        });
        Ok(())
    }

    async fn save_meta(
        &self,
        group: GroupId,
        key: MetaKey,
        value: Bytes,
    ) -> Result<(), StorageError> {
        key.to_byte()?;
        let bytes = value.len() as u64;
        self.inner.lock().write(group, bytes, |g| {
            g.meta.insert(key, value);
        });
        Ok(())
    }

    fn read_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>, StorageError> {
        key.to_byte()?;
        let inner = self.inner.lock();
        Ok(inner
            .groups
            .get(&group)
            .and_then(|g| g.meta.get(&key).cloned()))
    }

    async fn save_snapshot(
        &self,
        group: GroupId,
        meta: Bytes,
        data: Bytes,
    ) -> Result<(), StorageError> {
        let bytes = (meta.len() + data.len()) as u64;
        self.inner.lock().write(group, bytes, |g| {
            g.snapshot = Some((meta, data));
        });
        Ok(())
    }

    fn read_snapshot(&self, group: GroupId) -> Result<Option<(Bytes, Bytes)>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner.groups.get(&group).and_then(|g| g.snapshot.clone()))
    }

    async fn put_bodies(
        &self,
        group: GroupId,
        bodies: Vec<(u64, Bytes)>,
    ) -> Result<(), StorageError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let bytes = bodies.iter().map(|(_, b)| b.len() as u64).sum();
        self.inner
            .lock()
            .write(group, bytes, |g| g.bodies.extend(bodies));
        Ok(())
    }

    fn get_body(&self, group: GroupId, index: u64) -> Result<Option<Bytes>, StorageError> {
        let inner = self.inner.lock();
        Ok(inner
            .groups
            .get(&group)
            .and_then(|g| g.bodies.get(&index).cloned()))
    }

    async fn delete_bodies(&self, group: GroupId, indexes: Vec<u64>) -> Result<(), StorageError> {
        if indexes.is_empty() {
            return Ok(());
        }
        self.inner.lock().write(group, 0, |g| {
            for i in indexes {
                g.bodies.remove(&i);
            }
        });
        Ok(())
    }

    async fn delete_group(&self, group: GroupId) -> Result<(), StorageError> {
        self.inner
            .lock()
            .write(group, 0, |g| *g = GroupData::default());
        Ok(())
    }

    fn groups(&self) -> Result<Vec<GroupId>, StorageError> {
        Ok(self.inner.lock().groups.keys().copied().collect())
    }

    fn stats(&self) -> StoreStats {
        self.inner.lock().stats
    }
}
