//! The transport between nodes: gRPC (`proto/warren/raft.proto`) over one
//! long-lived HTTP/2 channel per peer, shared by every group.
//!
//! ```text
//!   group g's Raft ──RaftNetworkV2 (raft::grpc, tags g)──▶ Net::client(peer) ─HTTP/2─┐
//!                                                                                  ▼
//!   peer: server::RaftService ──Net::group(g)──▶ dyn GroupRpc (raft::rpc_host) ──▶ its Raft
//!                             ──StartReplica / ClusterInfo──▶ dyn Host (the Node)
//!                             ──Ping──▶ answered here (node id, incarnation)
//! ```
//!
//! This module knows tonic and the generated protobuf types but not
//! openraft: the conversions and the openraft calls sit behind
//! [`GroupRpc`], implemented in the `raft` module. Channels connect lazily
//! (a peer that is down costs nothing until it is dialled) and reconnect by
//! themselves.
//!
//! The peer table starts as the node's `--peers` (the seed). Once the node
//! is a member of the cluster it follows the metadata group's membership
//! (see `node::members`): nodes added or removed with `warren ctl cluster
//! add-node / remove-node` join or leave it on every node, with the seed's
//! address preferred for the nodes it names (an address given at start is
//! fresher than one recorded when the node joined).
//!
//! The registry is also what the node's failure detector
//! (`node::detector`) walks: [`GroupRpc::view`] tells it who leads each
//! queue group, [`GroupRpc::elect`] and [`GroupRpc::heartbeat`] are what it
//! acts with.

mod broker;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};
use warren_rpc::log as pb;
use warren_rpc::raft as rpc;
use warren_rpc::raft::raft_client::RaftClient;
use warren_storage::GroupId;

pub(crate) use broker::{AdminHost, BrokerSlot};
pub use broker::{
    BrokerHost, ClusterReport, GrowReport, NodeReport, QueueReport, add_cluster_node,
    cluster_report, grow_cluster_queues, move_queue_leader, remove_cluster_node,
};
pub(crate) use server::{ServerTask, serve};

/// Largest gRPC message either side accepts: an append carries up to
/// openraft's `max_payload_entries` entries, each holding a message body.
pub(crate) const MAX_MESSAGE: usize = 256 << 20;

/// How long dialling a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 pings on an idle connection, so a dead peer is noticed even
/// when no request is in flight; the answer may take [`KEEPALIVE_TIMEOUT`]
/// (generous: a busy node answers pings late, and a connection dropped
/// for that fails every request on it).
const KEEPALIVE: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a transport call can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetError {
    #[error("node {0} is not in the peer table")]
    UnknownPeer(u64),
    #[error("node {node} at {addr}: bad address: {error}")]
    Address {
        node: u64,
        addr: SocketAddr,
        error: String,
    },
    #[error("node {node}: {status}")]
    Rpc { node: u64, status: Status },
}

impl NetError {
    /// Whether the call surely did not reach the peer's group (down,
    /// unknown group, not dialled): waiting and retrying is the answer.
    pub(crate) fn unreachable(&self) -> bool {
        match self {
            NetError::UnknownPeer(_) | NetError::Address { .. } => true,
            NetError::Rpc { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::Unimplemented
            ),
        }
    }
}

impl NetError {
    /// Whether the peer answered with a refusal (retrying cannot help).
    pub(crate) fn refused(&self) -> bool {
        match self {
            NetError::UnknownPeer(_) | NetError::Address { .. } => true,
            NetError::Rpc { status, .. } => matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::AlreadyExists
                    | tonic::Code::PermissionDenied
            ),
        }
    }
}

/// One running group as the server sees it: the Raft RPCs and forwarded
/// proposals, in wire types. Implemented over openraft in `raft::rpc_host`.
pub(crate) trait GroupRpc: Send + Sync + 'static {
    fn append(
        &self,
        req: rpc::AppendRequest,
    ) -> BoxFuture<'static, Result<rpc::AppendResponse, Status>>;
    fn vote(&self, req: rpc::VoteRequest) -> BoxFuture<'static, Result<rpc::VoteResponse, Status>>;
    fn install_snapshot(
        &self,
        vote: pb::Vote,
        meta: pb::SnapshotMeta,
        data: Bytes,
    ) -> BoxFuture<'static, Result<rpc::SnapshotResponse, Status>>;
    /// Proposes on this node only (never forwards again: a proposal hops
    /// at most once).
    fn propose(&self, proposals: Vec<Bytes>) -> BoxFuture<'static, rpc::ProposeResponse>;
    /// What the node's failure detector needs to know of the group; `None`
    /// for a group that keeps its own election timers (the metadata group,
    /// a group running alone).
    fn view(&self) -> Option<GroupView>;
    /// Stands for election: with `pre_vote`, only if a quorum would grant
    /// it (no term is spent otherwise). A leader ignores it.
    fn elect(&self, pre_vote: bool) -> BoxFuture<'static, ()>;
    /// A leader sends every follower an (empty) append now: a follower
    /// that came back learns who leads, and a leader that was superseded
    /// meanwhile learns it from the answers and steps down.
    fn heartbeat(&self) -> BoxFuture<'static, ()>;
    /// Adds `node` to the group as a reader (a learner that never votes),
    /// takes the reader `node` out of it, or adds it as a replica (see
    /// [`Joining`]); only the leader can: otherwise the answer names the
    /// leader it knows.
    fn add_reader(
        &self,
        node: u64,
        how: Joining,
    ) -> BoxFuture<'static, Result<rpc::AddReaderResponse, Status>>;
    /// As the group's leader, hands the leadership to the voter `to`
    /// (it stands once it holds this node's log; ignored by a follower).
    fn transfer_to(&self, to: u64) -> BoxFuture<'static, ()>;
    /// A leader of the group hands its leadership to a voter (see
    /// `TransferLeaderRequest` in raft.proto).
    fn transfer_leader(
        &self,
        req: rpc::TransferLeaderRequest,
    ) -> BoxFuture<'static, Result<rpc::TransferLeaderResponse, Status>>;
}

/// What an `AddReader` request asks of a queue group's leader for a node
/// that runs an empty replica of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joining {
    /// Join as a reader: a learner that never votes (it serves consumers).
    Reader,
    /// A reader leaves the group.
    Leave,
    /// Join as a replica: a learner made a voter once caught up (`warren
    /// ctl queue grow`); a reader is made one.
    Replica,
}

impl Joining {
    pub(crate) fn of(req: &rpc::AddReaderRequest) -> Self {
        if req.leave {
            Joining::Leave
        } else if req.replica {
            Joining::Replica
        } else {
            Joining::Reader
        }
    }
}

/// One group as the failure detector sees it on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupView {
    /// The leader this node's replica knows of (it may be this node while
    /// the replica no longer leads, e.g. just after a restart).
    pub(crate) leader: Option<u64>,
    /// Whether this node's replica leads right now.
    pub(crate) leading: bool,
    /// Whether an election is under way that this replica takes part in:
    /// it stands (candidate), or it granted its vote to a candidate that
    /// has not won yet.
    pub(crate) electing: bool,
    pub(crate) voters: Vec<u64>,
    /// Voters and learners.
    pub(crate) members: Vec<u64>,
}

/// The node behind the server, for the RPCs that are not one group's.
pub(crate) trait Host: Send + Sync + 'static {
    fn cluster_info(&self) -> BoxFuture<'static, Result<rpc::ClusterInfoResponse, Status>>;
    fn start_replica(
        &self,
        req: rpc::StartReplicaRequest,
    ) -> BoxFuture<'static, Result<rpc::StartReplicaResponse, Status>>;
    fn find_queue(
        &self,
        req: rpc::FindQueueRequest,
    ) -> BoxFuture<'static, Result<rpc::FindQueueResponse, Status>>;
}

/// This node's view of the cluster's network: the peer table, a channel
/// per peer, and the registry of the groups this node runs (what the
/// server dispatches to).
pub(crate) struct Net {
    node_id: u64,
    /// Differs between two runs of the node (see `PingResponse`).
    incarnation: u64,
    /// The `--peers` the node was started with.
    seed: BTreeMap<u64, SocketAddr>,
    /// The peer table now (see the module doc).
    peers: Mutex<BTreeMap<u64, SocketAddr>>,
    /// The table follows the metadata membership (this node is a member):
    /// from then on, Raft requests from nodes outside it are refused.
    authoritative: AtomicBool,
    channels: Mutex<BTreeMap<u64, Channel>>,
    groups: Mutex<BTreeMap<GroupId, Arc<dyn GroupRpc>>>,
    /// Fault injection for tests: every RPC in or out fails as if the
    /// network were cut, while the node keeps running.
    isolated: AtomicBool,
    /// The node is shutting down: its groups go one by one, and a request
    /// for one already gone must not read as "no such replica here" (see
    /// `raft::repair`), so every request is refused as unavailable.
    closing: AtomicBool,
    /// The node's disk stalled (see `node::stall`): its pings go
    /// unanswered, so that its peers judge it down and elect leaders
    /// elsewhere while its own groups wait on the disk.
    unhealthy: AtomicBool,
    /// After how long without an answer the failure detector judges a
    /// peer down (queue groups size their leader lease after it).
    down_after: Duration,
    /// The peers the failure detector judges down right now.
    down: Mutex<BTreeSet<u64>>,
    /// Since when each of them is.
    down_since: Mutex<BTreeMap<u64, std::time::Instant>>,
    /// After how long down a queue group's leader replaces a member's
    /// replica on a live node (`None`: never; see `raft::repair`).
    replace_after: Option<Duration>,
    /// The same set, for whoever follows its changes (the broker).
    down_watch: tokio::sync::watch::Sender<BTreeSet<u64>>,
    /// Bumped whenever a peer is judged down or up, or the peer table
    /// changes: what wakes each queue group's repair loop (`raft::repair`),
    /// which otherwise sleeps.
    topology: tokio::sync::watch::Sender<u64>,
    /// The groups whose leader, vote, state or membership changed since
    /// the failure detector last looked (see `node::detector`): it
    /// re-examines those, not every group, each round.
    changed: Mutex<BTreeSet<GroupId>>,
}

impl Net {
    pub(crate) fn new(
        node_id: u64,
        peers: BTreeMap<u64, SocketAddr>,
        down_after: Duration,
        replace_after: Option<Duration>,
    ) -> Arc<Self> {
        // Any value that differs from the last run's will do: the clock's.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Arc::new(Net {
            node_id,
            incarnation,
            seed: peers.clone(),
            peers: Mutex::new(peers),
            authoritative: AtomicBool::new(false),
            channels: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
            isolated: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            unhealthy: AtomicBool::new(false),
            down_after,
            down: Mutex::new(BTreeSet::new()),
            down_since: Mutex::new(BTreeMap::new()),
            replace_after,
            down_watch: tokio::sync::watch::Sender::new(BTreeSet::new()),
            topology: tokio::sync::watch::Sender::new(0),
            changed: Mutex::new(BTreeSet::new()),
        })
    }

    pub(crate) fn down_after(&self) -> Duration {
        self.down_after
    }

    /// Records the failure detector's judgement of `node`.
    pub(crate) fn set_down(&self, node: u64, down: bool) {
        let mut set = self.down.lock();
        let changed = if down {
            set.insert(node)
        } else {
            set.remove(&node)
        };
        if changed {
            let mut since = self.down_since.lock();
            if down {
                since.insert(node, std::time::Instant::now());
            } else {
                since.remove(&node);
            }
            self.down_watch.send_replace(set.clone());
            self.topology.send_modify(|n| *n += 1);
        }
    }

    /// Follows the changes of the peers' health and of the peer table.
    pub(crate) fn topology_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.topology.subscribe()
    }

    /// Records that `group`'s view (leader, vote, state, membership)
    /// changed on this node.
    pub(crate) fn view_changed(&self, group: GroupId) {
        self.changed.lock().insert(group);
    }

    /// The groups whose view changed since the last call.
    pub(crate) fn take_changed(&self) -> BTreeSet<GroupId> {
        std::mem::take(&mut *self.changed.lock())
    }

    /// How long `node` has been judged down (`None`: it is not).
    pub(crate) fn down_for(&self, node: u64) -> Option<Duration> {
        self.down_since.lock().get(&node).map(|t| t.elapsed())
    }

    /// After how long down a member's replicas are replaced elsewhere.
    pub(crate) fn replace_after(&self) -> Option<Duration> {
        self.replace_after
    }

    /// Follows the set of peers judged down.
    pub(crate) fn down_changes(&self) -> tokio::sync::watch::Receiver<BTreeSet<u64>> {
        self.down_watch.subscribe()
    }

    /// Whether the failure detector judges `node` down (a node not judged
    /// yet, or this one, is not). A node outside the peer table (removed
    /// from the cluster) counts as down: the groups it led elect anew.
    pub(crate) fn is_down(&self, node: u64) -> bool {
        node != self.node_id && (self.down.lock().contains(&node) || self.addr(node).is_none())
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Cuts this node off the network, or reconnects it (tests).
    pub(crate) fn set_isolated(&self, on: bool) {
        self.isolated.store(on, Ordering::Relaxed);
    }

    /// From now on the server refuses every request (the node stops).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Marks the node unhealthy (its pings are refused) or healthy again.
    pub(crate) fn set_unhealthy(&self, on: bool) {
        self.unhealthy.store(on, Ordering::Relaxed);
    }

    pub(crate) fn unhealthy(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed)
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    pub(crate) fn isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    pub(crate) fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Every node of the peer table (this one included), ascending.
    pub(crate) fn members(&self) -> Vec<u64> {
        self.peers.lock().keys().copied().collect()
    }

    pub(crate) fn addr(&self, node: u64) -> Option<SocketAddr> {
        self.peers.lock().get(&node).copied()
    }

    /// The peer table now.
    pub(crate) fn table(&self) -> BTreeMap<u64, SocketAddr> {
        self.peers.lock().clone()
    }

    /// The `--peers` table the node was started with.
    pub(crate) fn seed(&self) -> BTreeMap<u64, SocketAddr> {
        self.seed.clone()
    }

    /// Whether Raft requests from `node` are taken: once the table follows
    /// the metadata membership, only from nodes in it (a node removed from
    /// the cluster that comes back with its old data must not disturb the
    /// groups it was removed from).
    pub(crate) fn admits(&self, node: u64) -> bool {
        !self.authoritative.load(Ordering::Relaxed) || self.addr(node).is_some()
    }

    /// Adds `node` at `addr` to the peer table (or moves it there).
    pub(crate) fn set_peer(&self, node: u64, addr: SocketAddr) {
        let old = self.peers.lock().insert(node, addr);
        if old.is_some_and(|a| a != addr) {
            self.channels.lock().remove(&node);
        }
        if old != Some(addr) {
            self.topology.send_modify(|n| *n += 1);
        }
    }

    /// Replaces the peer table with `table`, as the metadata membership
    /// now has it (see `node::members`); returns the nodes added and the
    /// nodes removed. A node removed loses its channel and its place in
    /// the down set; this node always stays.
    pub(crate) fn set_table(&self, mut table: BTreeMap<u64, SocketAddr>) -> (Vec<u64>, Vec<u64>) {
        if let Some(me) = self.addr(self.node_id) {
            table.entry(self.node_id).or_insert(me);
        }
        self.authoritative.store(true, Ordering::Relaxed);
        let (added, removed, moved) = {
            let mut peers = self.peers.lock();
            let added: Vec<u64> = table
                .keys()
                .filter(|n| !peers.contains_key(n))
                .copied()
                .collect();
            let removed: Vec<u64> = peers
                .keys()
                .filter(|n| !table.contains_key(n))
                .copied()
                .collect();
            let moved: Vec<u64> = table
                .iter()
                .filter(|(n, a)| peers.get(n).is_some_and(|old| old != *a))
                .map(|(n, _)| *n)
                .collect();
            *peers = table;
            (added, removed, moved)
        };
        {
            let mut channels = self.channels.lock();
            for n in removed.iter().chain(&moved) {
                channels.remove(n);
            }
        }
        for n in &removed {
            self.set_down(*n, false);
        }
        if !(added.is_empty() && removed.is_empty() && moved.is_empty()) {
            self.topology.send_modify(|n| *n += 1);
        }
        (added, removed)
    }

    /// A client over the peer's shared channel (created, unconnected, on
    /// first use; tonic dials and redials it as requests need).
    pub(crate) fn client(&self, node: u64) -> Result<RaftClient<Channel>, NetError> {
        Ok(RaftClient::new(self.channel(node)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// The peer's shared channel (created, unconnected, on first use;
    /// tonic dials and redials it as requests need).
    pub(crate) fn channel(&self, node: u64) -> Result<Channel, NetError> {
        if self.isolated() {
            return Err(NetError::Rpc {
                node,
                status: Status::unavailable("this node is isolated (fault injection)"),
            });
        }
        let channel = {
            let mut channels = self.channels.lock();
            match channels.get(&node) {
                Some(c) => c.clone(),
                None => {
                    let addr = self.addr(node).ok_or(NetError::UnknownPeer(node))?;
                    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                        .map_err(|e| NetError::Address {
                            node,
                            addr,
                            error: e.to_string(),
                        })?
                        .connect_timeout(CONNECT_TIMEOUT)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(KEEPALIVE)
                        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                        .keep_alive_while_idle(true);
                    let c = endpoint.connect_lazy();
                    channels.insert(node, c.clone());
                    c
                }
            }
        };
        Ok(channel)
    }

    pub(crate) fn register(&self, group: GroupId, rpc: Arc<dyn GroupRpc>) {
        self.groups.lock().insert(group, rpc);
    }

    pub(crate) fn unregister(&self, group: GroupId) {
        self.groups.lock().remove(&group);
    }

    pub(crate) fn group(&self, group: GroupId) -> Option<Arc<dyn GroupRpc>> {
        self.groups.lock().get(&group).cloned()
    }

    /// Every registered group, ascending (a copy: the caller may await).
    pub(crate) fn groups(&self) -> Vec<(GroupId, Arc<dyn GroupRpc>)> {
        self.groups
            .lock()
            .iter()
            .map(|(g, rpc)| (*g, rpc.clone()))
            .collect()
    }

    /// Forgets every group and channel (the node is stopping).
    pub(crate) fn clear(&self) {
        self.groups.lock().clear();
        self.channels.lock().clear();
    }

    /// Asks `node` what it knows of the cluster.
    pub(crate) async fn cluster_info(
        &self,
        node: u64,
        timeout: Duration,
    ) -> Result<rpc::ClusterInfoResponse, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::ClusterInfoRequest {});
        req.set_timeout(timeout);
        client
            .cluster_info(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` to start an empty replica of `group` (idempotent, so
    /// any failure but a refusal may be retried).
    pub(crate) async fn start_replica(
        &self,
        node: u64,
        group: GroupId,
        vhost: &str,
        name: &str,
        timeout: Duration,
        repair: bool,
    ) -> Result<bool, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::StartReplicaRequest {
            group_id: group,
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            repair,
        });
        req.set_timeout(timeout);
        client
            .start_replica(req)
            .await
            .map(|r| r.into_inner().created)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` which of its queue groups holds `vhost`/`name`.
    pub(crate) async fn find_queue(
        &self,
        node: u64,
        vhost: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<rpc::FindQueueResponse, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::FindQueueRequest {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        });
        req.set_timeout(timeout);
        client
            .find_queue(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` (the leader of `group`, as far as this node knows) to
    /// add this node to the group as a reader (or with `leave`, to take
    /// this node, a reader, out of it).
    pub(crate) async fn add_reader(
        &self,
        node: u64,
        group: GroupId,
        timeout: Duration,
        how: Joining,
    ) -> Result<rpc::AddReaderResponse, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::AddReaderRequest {
            group_id: group,
            node: self.node_id,
            leave: how == Joining::Leave,
            replica: how == Joining::Replica,
        });
        req.set_timeout(timeout);
        client
            .add_reader(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Asks `node` whether it is alive (the failure detector's probe).
    pub(crate) async fn ping(
        &self,
        node: u64,
        timeout: Duration,
    ) -> Result<rpc::PingResponse, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::PingRequest { from: self.node_id });
        req.set_timeout(timeout);
        client
            .ping(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| NetError::Rpc { node, status })
    }

    /// Forwards `proposals` of `group` to `node` (its leader, as far as
    /// this node knows).
    pub(crate) async fn propose(
        &self,
        node: u64,
        group: GroupId,
        proposals: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<rpc::ProposeResponse, NetError> {
        let mut client = self.client(node)?;
        let mut req = tonic::Request::new(rpc::ProposeRequest {
            group_id: group,
            proposals,
        });
        req.set_timeout(timeout);
        client
            .propose(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| NetError::Rpc { node, status })
    }
}
