//! Warren's storage layer: many Raft logs (the metadata group and one group
//! per durable queue) in one RocksDB per node, with group commit, per-group
//! small records, snapshots and out-of-log message bodies; and `MemStore`,
//! an in-memory twin with the same semantics. `conformance` holds the one
//! test suite both must pass.
//!
//! Must not depend on: any other warren crate, openraft (the cluster crate
//! adapts this API to openraft's storage traits), tonic.
//!
//! Write path of `RocksStore` (group commit):
//!
//! ```text
//!  append/save_meta/purge/... futures (any group, any task)
//!        │  bounded tokio mpsc (back-pressure)
//!        ▼
//!  writer thread: take every pending request ─► one WriteBatch ─► write(sync=true)
//!        │                                                          │ one fsync
//!        ├─ reply Ok/Err to every request's oneshot ◄───────────────┘
//!        └─ purged ranges ─► reclaim thread: flush + compact_range (frees disk)
//! ```
//!
//! Reads go straight to RocksDB from the caller's thread; they see every
//! write whose future has resolved.

pub mod conformance;
mod mem;
mod rocks;
mod store;
mod types;

pub use mem::MemStore;
pub use rocks::{RocksOptions, RocksStore};
pub use store::LogStore;
pub use types::{
    CUSTOM_LIMIT, Entry, GroupId, LogState, METADATA_GROUP, MetaKey, StorageError, StoreStats,
};
