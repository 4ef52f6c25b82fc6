//! Everything that knows openraft: the type config, the log-storage adapter
//! over any `warren_storage::LogStore`, the state machines of the metadata
//! group and of queue groups, the networks (none for a lone group; gRPC
//! through `crate::net` for groups with peers: `grpc` the client side,
//! `rpc_host` the server side, `wire` the message conversions), and the
//! group handle the rest of the crate drives. Nothing outside this module
//! names an openraft type, so an alpha bump of openraft touches only here.
//!
//! ```text
//!   Node ──GroupHandle::propose(Request)──▶ openraft::Raft (one per group)
//!                                             │ append           │ apply (committed)
//!                                             ▼                  ▼
//!                                   LogAdapter<S: LogStore>   MetaMachine / QueueMachine
//!                                   (prost LogEntry bytes)    (warren-core, pure)
//!                                             │                  │ reply + effects
//!                                             ▼                  ▼
//!                                       warren-storage       Response ─▶ proposer only
//! ```

mod bodies;
mod codec;
mod group;
mod grpc;
mod log_store;
mod membership;
mod meta_sm;
mod network;
mod queue_sm;
mod repair;
mod rpc_host;
mod snapshot;
mod wire;

use std::fmt;
use std::io;

use bytes::Bytes;

pub(crate) use bodies::read_message;
pub(crate) use group::{GroupHandle, GroupNet, start_group};
pub(crate) use log_store::LogAdapter;
pub(crate) use membership::Members;
pub(crate) use meta_sm::{MetaCore, MetaMachine};
pub(crate) use queue_sm::{LocalEffects, QueueMachine, QueueShared, effect_owner, snapshot_prep};

/// How many voters a queue group should have, as its queue was declared
/// (`None` once the queue is gone); see `repair`.
pub(crate) type TargetFn = std::sync::Arc<dyn Fn() -> Option<usize> + Send + Sync>;

/// How a queue group's membership marks a reader (see [`is_reader`]): the
/// node's entry carries this before its address.
pub(crate) const READER_MARK: &str = "reader ";

/// A reader is a learner added so that a node holding no replica of a
/// queue can serve its consumers: it never votes, and repair never
/// promotes it (a replaced member on its way back is a learner too).
pub(crate) fn is_reader(node: &openraft::BasicNode) -> bool {
    node.addr.starts_with(READER_MARK)
}

/// A normal log entry's data: an encoded `warren.log.v1.Proposal`. Kept as
/// bytes so that the entry codec does not re-encode it, and so a message
/// body inside is never copied between proposal, log and state machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request(pub Bytes);

/// What the state machine answers the proposer: an encoded
/// `warren.log.v1.MetaResult` or `QueueResult`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Response(pub Bytes);

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({} bytes)", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Warren's Raft types: u64 node ids, openraft's default entry, vote and
    /// leader id (term + node), encoded proposals as data.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// openraft's storage traits speak `io::Error`.
pub(crate) fn io_err(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_replay;
