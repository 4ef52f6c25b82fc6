//! warren-cluster: Warren's replicated core. The metadata (vhosts, users,
//! exchanges, queues, bindings) is one Raft group; each durable queue is
//! its own Raft group running the unchanged `warren_core::queue` machine.
//! Groups keep their logs in one `warren_storage::LogStore` per node
//! (RocksDB, or memory for tests), entries encoded with the protobuf
//! format of `proto/warren/log.proto`.
//!
//! Depends on warren-core (the machines), warren-storage (the logs) and
//! warren-rpc (the wire format); never on warren-amqp or the binary.
//! openraft is confined to the [`raft`] module (private), so an alpha bump
//! of openraft touches one place.
//!
//! ```text
//!   frontend ─MetaCommand──▶ Node::meta_apply ─┐
//!   frontend ─Command<Message>─▶ QueueGroup::apply ─┤ propose (leader stamps now_ms)
//!                                                   ▼
//!                         raft (one openraft::Raft per group) ─append─▶ LogStore (group commit, fsync)
//!                                                   │ committed
//!                                                   ▼
//!               MetaState::apply / queue::apply (payload = log index of the Enqueue entry)
//!                                                   │ reply (+ effects), to the proposer only
//!   frontend ◀──────────────────────────────────────┘   bodies: QueueGroup::body(index)
//! ```
//!
//! Only the proposer receives replies and effects (on a node on its own;
//! in a cluster see below), so effects are executed once; replaying the log after a restart re-applies every command but
//! answers (and executes) nothing. Locks (`parking_lot`) guard the applied
//! states and are never held across an `.await`.
//!
//! A node in a cluster ([`Node::start`]) runs its groups over gRPC
//! (`net`): one channel per peer carries every group's Raft RPCs, and a
//! proposal made on a member that does not lead is forwarded to the
//! leader, whose state machine's reply (and effects) come back to the
//! proposing node:
//!
//! ```text
//!   node B: QueueGroup::apply ─(not leader)─ Propose RPC ─▶ node A: Raft::client_write
//!   node B ◀──────────── index + encoded QueueResult ───── node A (applied, committed)
//! ```
//!
//! In a cluster, the effects addressed to an owner (a delivery to a
//! consumer, a consumer activated) do not travel with the answer: every
//! replica applies every committed entry, and each one hands the effects
//! addressed to its own node's owners (`OwnerId::node`) to
//! [`QueueGroup::local_effects`] as it applies. Each is thus executed once,
//! by the node holding the consumer's connection, whoever proposed the
//! command and whichever node leads; a replica that catches up from a
//! snapshot hands over the deliveries the skipped entries made
//! (`QueueState::held_deliveries`). Effects addressed to nobody
//! (dead-lettering) stay with the proposer's answer.
//!
//! Queue groups with peers run no Raft timers: the node's failure detector
//! (`node::detector`) pings peers and starts elections for the groups whose
//! leader's node is judged down. Brokers also reach each other's queues
//! through the `warren.broker.v1` service ([`Node::publish_to`], for a
//! transient queue that lives on one node) and answer
//! `warren ctl cluster status` ([`cluster_report`]).
//!
//! A member whose replica is gone (its node came back with an emptied data
//! directory) answers its group's RPCs with NOT_FOUND; the group's leader
//! then demotes it to learner, starts an empty replica there, and promotes
//! it once the member itself reports having applied the log (`raft::repair`).
//! A node holding no replica of a queue it must serve consumers of joins
//! its group as a *reader* (`node::reader`): a learner marked as such in
//! the membership, never promoted by the repair, that applies the log and
//! so makes the deliveries to its node's consumers. Publishes from such a
//! node need no replica: the broker hands them to one ([`Node::locate_queue`],
//! [`Node::publish_to`]).
//!
//! The leader of a queue group also replaces the replicas of members
//! judged down for longer than [`ClusterConfig::replace_after`]: a live
//! node that is not a voter joins (a reader is promoted at once, another
//! node first catches up as a learner), then the down members stop voting
//! and stay readers. Every [`ClusterConfig::rebalance_every`] each node
//! hands some of its queue leaderships to live voters leading at least two
//! fewer groups (`node::balance`, openraft's TransferLeader).
//!
//! A storage error is fatal to an openraft group, and the binary stops the
//! node on a failed write rather than serve on with dead groups.

pub mod convert;
mod error;
pub mod meta_snapshot;
mod net;
mod node;
mod queue_group;
mod raft;

pub use error::ClusterError;
pub use net::{
    BrokerHost, ClusterReport, GrowReport, NodeReport, QueueReport, add_cluster_node,
    cluster_report, grow_cluster_queues, move_queue_leader, remove_cluster_node,
};
pub use node::{
    Bootstrap, ClusterConfig, ClusterStatus, DEFAULT_REBALANCE_EVERY, DEFAULT_REPLACE_AFTER,
    FoundQueue, Node, NodeChange,
};
pub use queue_group::QueueGroup;
pub use warren_storage::GroupId;
