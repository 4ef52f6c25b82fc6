//! The one error type of warren-cluster. openraft's errors are turned into
//! text at the `raft` module's edge, so no openraft type leaks out.

use warren_storage::{GroupId, StorageError};

use crate::convert::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store failed (a failed fsync included): nothing was acknowledged.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// openraft refused or failed (shut down, not leader, fatal storage error …).
    #[error("raft: {0}")]
    Raft(String),
    /// A log entry, snapshot or reply is not in a format this version reads.
    #[error("log format: {0}")]
    Decode(#[from] DecodeError),
    #[error("no queue group {0}")]
    NoSuchGroup(GroupId),
    #[error("queue group {0} already exists")]
    GroupExists(GroupId),
    #[error("group id {0} is the metadata group's")]
    ReservedGroup(GroupId),
    /// A body was asked for by an index that holds no message (a caller bug,
    /// or the message was settled and its body reclaimed).
    #[error("no message at log index {index} of group {group}")]
    NoMessage { group: GroupId, index: u64 },
    /// No leader of the group took the proposal in time (none elected,
    /// or it kept moving); `leader` is the last one this node knew of.
    /// Nothing was applied.
    #[error("group {group} has no reachable leader (last known: {leader:?})")]
    NotLeader { group: GroupId, leader: Option<u64> },
    /// The gRPC transport failed in a way that leaves the outcome unknown.
    #[error("transport: {0}")]
    Transport(String),
    /// The node's cluster settings are unusable (peer table, members).
    #[error("cluster config: {0}")]
    Config(String),
}

impl From<std::io::Error> for ClusterError {
    fn from(e: std::io::Error) -> Self {
        ClusterError::Raft(e.to_string())
    }
}
