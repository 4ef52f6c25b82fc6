//! The plain data types of the store API: what goes in, what comes out, what can fail.

use bytes::Bytes;

/// One Raft group: the metadata group (0) or a durable queue.
pub type GroupId = u64;

/// The metadata group's id; queues use any other value.
pub const METADATA_GROUP: GroupId = 0;

/// An opaque log entry: the cluster crate encodes openraft entries into `payload`.
/// The store never looks inside it; the index is the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub payload: Bytes,
}

impl Entry {
    pub fn new(index: u64, payload: impl Into<Bytes>) -> Self {
        Self {
            index,
            payload: payload.into(),
        }
    }
}

/// Per-group small records (vote, committed, last purged log id, membership …),
/// stored as opaque bytes. The byte each key maps to is part of the on-disk
/// format: never renumber, only add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaKey {
    Vote,
    Committed,
    LastPurged,
    Applied,
    /// Free for the cluster crate's own records (e.g. membership).
    Custom(u8),
}

impl MetaKey {
    /// The on-disk tag. Custom keys live above the fixed ones so the two can never collide.
    pub fn to_byte(self) -> Result<u8, crate::StorageError> {
        match self {
            MetaKey::Vote => Ok(1),
            MetaKey::Committed => Ok(2),
            MetaKey::LastPurged => Ok(3),
            MetaKey::Applied => Ok(4),
            MetaKey::Custom(c) if c < CUSTOM_LIMIT => Ok(CUSTOM_BASE + c),
            MetaKey::Custom(c) => Err(crate::StorageError::InvalidArgument(format!(
                "MetaKey::Custom({c}) is out of range (0..{CUSTOM_LIMIT})"
            ))),
        }
    }

    pub fn from_byte(b: u8) -> Result<Self, crate::StorageError> {
        match b {
            1 => Ok(MetaKey::Vote),
            2 => Ok(MetaKey::Committed),
            3 => Ok(MetaKey::LastPurged),
            4 => Ok(MetaKey::Applied),
            b if b >= CUSTOM_BASE => Ok(MetaKey::Custom(b - CUSTOM_BASE)),
            b => Err(crate::StorageError::Corrupt(format!(
                "unknown meta key byte {b}"
            ))),
        }
    }
}

/// Fixed keys take 1..=4; everything from 16 up is `Custom`, leaving room for
/// more fixed keys later without breaking stored data.
const CUSTOM_BASE: u8 = 16;
/// `Custom(c)` is valid for `c < CUSTOM_LIMIT`.
pub const CUSTOM_LIMIT: u8 = u8::MAX - CUSTOM_BASE + 1;

/// First and last index of the entries still stored in a group's log
/// (after purges and truncations); `None` when the log holds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
}

/// Counters for benchmarks and metrics. Monotonic since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Synced writes (WAL fsyncs) issued. Zero for a store that is not durable.
    pub fsyncs: u64,
    /// Write batches issued; each carries one or more requests.
    pub batches: u64,
    /// Write requests completed (append, truncate, purge, save_meta, …).
    pub requests: u64,
    /// Log entries written by `append`.
    pub entries_written: u64,
    /// Payload bytes written (entries, meta, snapshots, bodies).
    pub bytes_written: u64,
    /// The most requests one batch has carried.
    pub max_batch_requests: u64,
    /// Failed write batches (each failed every request it carried).
    pub failed_batches: u64,
    /// How long the write batch under way has been running, in ms (0: the
    /// writer is idle, or the store writes no disk). A disk whose fsyncs
    /// stop returning shows here as a number that keeps growing.
    pub write_stalled_ms: u64,
}

/// Why a storage call failed. A failed fsync is an error, never a success.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// The disk or RocksDB refused an operation (full disk, failed fsync, …).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Stored data is not what this version of Warren wrote.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// The store has shut down (its writer is gone).
    #[error("storage closed")]
    Closed,
    /// The caller asked for something the store cannot represent.
    #[error("invalid storage request: {0}")]
    InvalidArgument(String),
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        match e.kind() {
            rocksdb::ErrorKind::Corruption => StorageError::Corrupt(e.into_string()),
            rocksdb::ErrorKind::InvalidArgument => StorageError::InvalidArgument(e.into_string()),
            _ => StorageError::Io(e.into_string()),
        }
    }
}
