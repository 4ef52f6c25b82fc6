//! The `LogStore` trait: the one storage API the cluster crate programs against.
//! Both `MemStore` and `RocksStore` implement it, and `conformance` checks that
//! they agree.

use std::future::Future;
use std::ops::Range;

use bytes::Bytes;

use crate::types::{Entry, GroupId, LogState, MetaKey, StorageError, StoreStats};

/// Many Raft logs (one per group) plus their small records, snapshots and
/// out-of-log message bodies, in one store per node.
///
/// Writes are futures that resolve once the change is durable; reads are
/// synchronous and see every write whose future has resolved. Writes to the
/// same group are applied in the order their futures were first polled.
/// Clones share the same store.
pub trait LogStore: Clone + Send + Sync + 'static {
    /// Appends (or overwrites) entries of one group; resolves once they are durable (fsynced).
    /// Appends from all groups are batched into one write + one fsync (group commit).
    /// Overwriting index `i` does not remove entries above `i`: Raft's conflict
    /// resolution calls `truncate_after` first.
    fn append(
        &self,
        group: GroupId,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The stored entries with index in `range`, in index order, skipping gaps.
    fn entries(&self, group: GroupId, range: Range<u64>) -> Result<Vec<Entry>, StorageError>;

    fn log_state(&self, group: GroupId) -> Result<LogState, StorageError>;

    /// Deletes entries with index > `index` (conflict truncation). Durable when it returns.
    fn truncate_after(
        &self,
        group: GroupId,
        index: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes entries with index <= `index` (log compaction). Disk space is
    /// reclaimed lazily, but within a bounded time.
    fn purge_upto(
        &self,
        group: GroupId,
        index: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores one small record of a group, durably.
    fn save_meta(
        &self,
        group: GroupId,
        key: MetaKey,
        value: Bytes,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    fn read_meta(&self, group: GroupId, key: MetaKey) -> Result<Option<Bytes>, StorageError>;

    /// Replaces the group's one current snapshot (meta + data) atomically and durably.
    fn save_snapshot(
        &self,
        group: GroupId,
        meta: Bytes,
        data: Bytes,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The current snapshot as `(meta, data)`, both from the same save.
    fn read_snapshot(&self, group: GroupId) -> Result<Option<(Bytes, Bytes)>, StorageError>;

    /// Message bodies kept past log compaction ("live indexes"): when the log
    /// is purged up to X, the queue's still-unsettled messages below X are
    /// moved here first (keyed by their log index), and deleted when settled.
    /// This is how disk space is reclaimed even when acks arrive out of order.
    fn put_bodies(
        &self,
        group: GroupId,
        bodies: Vec<(u64, Bytes)>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    fn get_body(&self, group: GroupId, index: u64) -> Result<Option<Bytes>, StorageError>;

    /// Deletes the given bodies; absent indexes are ignored.
    fn delete_bodies(
        &self,
        group: GroupId,
        indexes: Vec<u64>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Deletes everything of a group (queue deleted): log, meta, snapshot, bodies.
    fn delete_group(&self, group: GroupId)
    -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Groups with any data (log entries, meta, snapshot or bodies), ascending;
    /// what a restarting node has to bring back up.
    fn groups(&self) -> Result<Vec<GroupId>, StorageError>;

    /// Counters for benchmarks: fsyncs, batches, entries and bytes written.
    fn stats(&self) -> StoreStats;
}
