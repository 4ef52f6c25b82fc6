//! `Node`: this node's groups — the metadata group and one group per
//! durable queue — over one store. What the binary drives.
//!
//! A node runs alone ([`Node::open`], [`Node::with_store`]: every group has
//! one member, no transport) or as a member of a cluster ([`Node::start`],
//! [`Node::open_cluster`]): then it serves the cluster gRPC service, its
//! metadata group spans the peer table (bootstrapped once, see
//! `bootstrap`), and a queue group may have members on other nodes.
//! Proposals made on a member that does not lead are forwarded to the
//! leader (see `raft::group`). Queue groups with peers run no timers of
//! their own: the node's failure detector (`detector`) elects for them.

mod balance;
mod bootstrap;
mod detector;
mod grow;
mod host;
mod members;
mod reader;
mod stall;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use warren_core::meta::{MetaCommand, MetaError, MetaReply, MetaState};
use warren_core::queue::QueueConfig;
use warren_rpc::log as pb;
use warren_storage::{
    GroupId, LogStore, METADATA_GROUP, MemStore, RocksOptions, RocksStore, StoreStats,
};

use crate::ClusterError;

/// How long creating a queue group keeps asking a member to start its replica.
const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const REPLICA_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a peer may take to answer the ping of a status report.
const REPORT_PING: std::time::Duration = std::time::Duration::from_secs(1);
/// How long handing a message to another node's queue may take.
const PUBLISH_TO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a metadata change decided on the leader may take to be applied here.
const META_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::convert::{DecodeError, FromProto, IntoProto};
use crate::net::{Net, ServerTask};
use crate::queue_group::{QueueGroup, proposal, read_identity, save_identity};
use crate::raft::{
    GroupHandle, GroupNet, MetaCore, MetaMachine, QueueMachine, snapshot_prep, start_group,
};

pub use bootstrap::Bootstrap;
pub use reader::FoundQueue;

/// A change made on this node, in the order made, for a follower (see
/// [`Node::follow`]): applying the `Meta` commands to a copy of the
/// metadata taken when following began keeps it equal to the node's.
#[derive(Debug, Clone)]
pub enum NodeChange {
    /// A committed metadata command, applied here (whatever it answered).
    Meta(MetaCommand),
    /// The metadata replaced as a whole (a snapshot from the leader).
    MetaReplaced(Box<MetaState>),
    /// A queue group started on this node (a replica, or a reader).
    QueueHere(GroupId),
    /// The queue group `group` of `vhost`/`name` left this node.
    QueueGone {
        group: GroupId,
        vhost: String,
        name: String,
    },
}

/// One Warren node: its store and its running groups. Clones share the node.
pub struct Node<S: LogStore = RocksStore> {
    inner: Arc<Inner<S>>,
}

impl<S: LogStore> Clone for Node<S> {
    fn clone(&self) -> Self {
        Node {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S: LogStore> {
    node_id: u64,
    store: S,
    meta: GroupHandle<MetaMachine<S>>,
    meta_core: Arc<Mutex<MetaCore>>,
    queues: Mutex<BTreeMap<GroupId, QueueGroup<S>>>,
    /// The transport, for a member of a cluster.
    net: Option<Arc<Net>>,
    server: Mutex<Option<ServerTask>>,
    bootstrap: Mutex<Option<JoinHandle<()>>>,
    bootstrap_state: Arc<Mutex<Bootstrap>>,
    detector: Mutex<Option<detector::DetectorTask>>,
    balancer: Mutex<Option<balance::BalanceTask>>,
    stall_watch: Mutex<Option<stall::StallTask>>,
    members: Mutex<Option<members::MembersTask>>,
    /// Serialises the starts of queue replicas asked for by peers (an
    /// async lock: the start awaits the group's opening).
    starting: tokio::sync::Mutex<()>,
    /// Bumped when the applied metadata moves or a queue replica starts or
    /// goes (see [`Node::changes`]).
    changes: tokio::sync::watch::Sender<u64>,
    /// The broker running on this node, for its peers' brokers.
    broker: crate::net::BrokerSlot,
}

/// How a node joins a cluster.
pub struct ClusterConfig {
    pub node_id: u64,
    /// The bound listener of the node's cluster gRPC service (tests bind
    /// port 0 and put the address in `peers`).
    pub listener: TcpListener,
    /// Every member of the cluster, this node included: node id → the
    /// address peers dial. The same table on every node.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// After how long without an answer to its pings a peer is judged
    /// down (and the queue groups it led elect new leaders); `None`: 1 s.
    pub down_after: Option<std::time::Duration>,
    /// After how long judged down a node's queue replicas are replaced on
    /// live nodes (by each queue's leader); `None`: never.
    pub replace_after: Option<std::time::Duration>,
    /// How often the node hands some of its queue leaderships to voters
    /// that lead fewer (see `balance`); `None`: never.
    pub rebalance_every: Option<std::time::Duration>,
}

/// The default of [`ClusterConfig::rebalance_every`].
pub const DEFAULT_REBALANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// The default of [`ClusterConfig::replace_after`].
pub const DEFAULT_REPLACE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

impl ClusterConfig {
    /// A config with the defaults for everything but what must be given.
    pub fn new(node_id: u64, listener: TcpListener, peers: BTreeMap<u64, SocketAddr>) -> Self {
        ClusterConfig {
            node_id,
            listener,
            peers,
            down_after: None,
            replace_after: Some(DEFAULT_REPLACE_AFTER),
            rebalance_every: Some(DEFAULT_REBALANCE_EVERY),
        }
    }
}

/// What one node knows of its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    pub node_id: u64,
    pub meta_leader: Option<u64>,
    pub meta_voters: Vec<u64>,
    pub meta_learners: Vec<u64>,
    pub bootstrap: Bootstrap,
}

impl Node<RocksStore> {
    /// Opens (or creates) the node's RocksDB under `dir` and brings back
    /// every group found there.
    pub async fn open(dir: &Path, node_id: u64) -> Result<Self, ClusterError> {
        let store = RocksStore::open(dir, RocksOptions::default())?;
        Self::with_store(store, node_id).await
    }

    /// Opens (or creates) the node's RocksDB under `dir` and starts it as
    /// a member of a cluster (see [`Node::start`]).
    pub async fn open_cluster(dir: &Path, config: ClusterConfig) -> Result<Self, ClusterError> {
        let store = RocksStore::open(dir, RocksOptions::default())?;
        Self::start(store, config).await
    }
}

impl<S: LogStore> Inner<S> {
    fn new(
        node_id: u64,
        store: S,
        meta: GroupHandle<MetaMachine<S>>,
        meta_core: Arc<Mutex<MetaCore>>,
        queues: BTreeMap<GroupId, QueueGroup<S>>,
        net: Option<Arc<Net>>,
    ) -> Self {
        Inner {
            node_id,
            store,
            meta,
            meta_core,
            queues: Mutex::new(queues),
            net,
            server: Mutex::new(None),
            bootstrap: Mutex::new(None),
            bootstrap_state: Arc::new(Mutex::new(Bootstrap::Pending)),
            detector: Mutex::new(None),
            balancer: Mutex::new(None),
            stall_watch: Mutex::new(None),
            members: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            broker: Arc::new(Mutex::new(None)),
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// The queue group `group` started here: followers are told.
    fn queue_here(&self, group: GroupId) {
        self.meta_core.lock().notify(NodeChange::QueueHere(group));
        self.changed();
    }

    /// The queue group `q` left this node: followers are told.
    fn queue_gone(&self, q: &QueueGroup<S>) {
        let (vhost, name) = q.identity();
        self.meta_core.lock().notify(NodeChange::QueueGone {
            group: q.group(),
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        });
        self.changed();
    }
}

/// Bumps the node's change counter whenever the applied metadata moves
/// (commands proposed on any node), until the node is gone.
fn watch_meta_applied<S: LogStore>(inner: &Arc<Inner<S>>) {
    let weak = Arc::downgrade(inner);
    inner.meta.on_applied(move || match weak.upgrade() {
        Some(inner) => {
            inner.changed();
            true
        }
        None => false,
    });
}

impl Node<MemStore> {
    /// A node whose store is memory only (tests; nothing survives a drop).
    pub async fn open_in_memory(node_id: u64) -> Result<Self, ClusterError> {
        Self::with_store(MemStore::new(), node_id).await
    }
}

async fn open_queue<S: LogStore>(
    store: &S,
    node_id: u64,
    group: GroupId,
    net: Option<&Arc<Net>>,
    meta: &Arc<Mutex<MetaCore>>,
) -> Result<QueueGroup<S>, ClusterError> {
    let identity = read_identity(store, group)?;
    let sm = QueueMachine::open(store.clone(), group)?;
    let shared = sm.shared.clone();
    let net = net.map(|n| GroupNet {
        net: n.clone(),
        prep: Some(snapshot_prep(store.clone(), group)),
        identity: Some(identity.clone()),
        target: Some(replica_target(meta, &identity, n)),
    });
    let handle = start_group(node_id, group, store.clone(), sm, Some(shared.clone()), net).await?;
    Ok(QueueGroup::new(store.clone(), handle, shared, identity))
}

/// How many voters the queue's group should have: as declared (see
/// `QueueDef::replicas`), at most the cluster's size; `None` once the
/// queue is gone from the metadata.
fn replica_target(
    meta: &Arc<Mutex<MetaCore>>,
    identity: &(String, String),
    net: &Arc<Net>,
) -> crate::raft::TargetFn {
    let meta = meta.clone();
    let net = Arc::downgrade(net);
    let (vhost, name) = identity.clone();
    Arc::new(move || {
        let nodes = net.upgrade().map_or(1, |n| n.members().len());
        meta.lock()
            .state
            .queue(&vhost, &name)
            .map(|d| (d.replicas() as usize).clamp(1, nodes.max(1)))
    })
}

/// Opens every queue group `store` holds, all at once: each waits for its
/// own election, which need not queue behind the others' (a node with
/// many queues restarts in about the time of one).
async fn open_queues<S: LogStore>(
    store: &S,
    node_id: u64,
    net: Option<&Arc<Net>>,
    meta: &Arc<Mutex<MetaCore>>,
) -> Result<BTreeMap<GroupId, QueueGroup<S>>, ClusterError> {
    let opening = store
        .groups()?
        .into_iter()
        .filter(|g| *g != METADATA_GROUP)
        .map(|group| async move {
            let q = open_queue(store, node_id, group, net, meta).await?;
            Ok::<_, ClusterError>((group, q))
        });
    Ok(futures::future::try_join_all(opening)
        .await?
        .into_iter()
        .collect())
}

impl<S: LogStore> Node<S> {
    /// Starts the metadata group and every queue group `store` holds.
    pub async fn with_store(store: S, node_id: u64) -> Result<Self, ClusterError> {
        let sm = MetaMachine::open(store.clone(), METADATA_GROUP)?;
        let meta_core = sm.core.clone();
        let meta = start_group(node_id, METADATA_GROUP, store.clone(), sm, None, None).await?;
        let queues = open_queues(&store, node_id, None, &meta_core).await?;
        Ok(Node {
            inner: Arc::new(Inner::new(node_id, store, meta, meta_core, queues, None)),
        })
    }

    /// Starts this node as a member of the cluster `config` describes:
    /// its groups from `store`, the gRPC service on `config.listener`, and
    /// (on the lowest id of a cluster nobody founded yet) the bootstrap.
    /// Returns without waiting for peers: the metadata group gets a leader
    /// once a majority of the peer table runs (see [`Self::wait_for_meta_leader`]).
    pub async fn start(store: S, config: ClusterConfig) -> Result<Self, ClusterError> {
        let ClusterConfig {
            node_id,
            listener,
            peers,
            down_after,
            replace_after,
            rebalance_every,
        } = config;
        if !peers.contains_key(&node_id) {
            return Err(ClusterError::Config(format!(
                "node {node_id} is not in its own peer table"
            )));
        }
        let down_after = down_after.unwrap_or(detector::DOWN_AFTER);
        if down_after.is_zero() {
            return Err(ClusterError::Config("down_after must not be zero".into()));
        }
        let net = Net::new(node_id, peers, down_after, replace_after);
        let sm = MetaMachine::open(store.clone(), METADATA_GROUP)?;
        let meta_core = sm.core.clone();
        let group_net = GroupNet {
            net: net.clone(),
            prep: None,
            identity: None,
            target: None,
        };
        let meta = start_group(
            node_id,
            METADATA_GROUP,
            store.clone(),
            sm,
            None,
            Some(group_net),
        )
        .await?;
        let member = meta.is_initialized().await?;
        let queues = open_queues(&store, node_id, Some(&net), &meta_core).await?;
        let inner = Arc::new(Inner::new(
            node_id,
            store,
            meta,
            meta_core,
            queues,
            Some(net.clone()),
        ));
        watch_meta_applied(&inner);
        let host = Arc::new(host::NodeHost::new(Arc::downgrade(&inner)));
        *inner.server.lock() = Some(crate::net::serve(
            listener,
            net.clone(),
            host.clone(),
            inner.broker.clone(),
            host,
        ));
        *inner.detector.lock() = Some(detector::spawn(net.clone()));
        *inner.stall_watch.lock() = Some(stall::spawn(Arc::downgrade(&inner), net.clone()));
        *inner.members.lock() = Some(members::spawn(Arc::downgrade(&inner)));
        if let Some(every) = rebalance_every {
            *inner.balancer.lock() = Some(balance::spawn(net, every));
        }
        if member {
            // A member coming back: nothing to decide.
            *inner.bootstrap_state.lock() = Bootstrap::Member;
        } else {
            let task = tokio::spawn(bootstrap::run(Arc::downgrade(&inner)));
            *inner.bootstrap.lock() = Some(task);
        }
        Ok(Node { inner })
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The nodes of the cluster (the peer table: the metadata membership
    /// once this node is a member), this one included, ascending; just
    /// this one for a node on its own.
    pub fn nodes(&self) -> Vec<u64> {
        match &self.inner.net {
            Some(net) => net.members(),
            None => vec![self.inner.node_id],
        }
    }

    /// In a cluster: the peers the failure detector judges down, as that
    /// changes (`None` for a node on its own).
    pub fn nodes_down(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<std::collections::BTreeSet<u64>>> {
        self.inner.net.as_ref().map(|n| n.down_changes())
    }

    /// Whether the node runs as a member of a cluster (with a transport).
    pub fn clustered(&self) -> bool {
        self.inner.net.is_some()
    }

    /// Applies `cmd` through the metadata group: the outer error is the
    /// cluster's (nothing was decided), the inner one the machine's answer.
    pub async fn meta_apply(
        &self,
        cmd: MetaCommand,
    ) -> Result<Result<MetaReply, MetaError>, ClusterError> {
        let req = proposal(pb::proposal::Command::Meta(cmd.into_proto()));
        let (index, resp) = self.inner.meta.propose(req).await?;
        let result = pb::MetaResult::decode(resp.0).map_err(DecodeError::from)?;
        if self.inner.net.is_some() {
            // Decided on the leader: [`Self::meta`] here shows it once
            // this replica has applied it too.
            self.inner.meta.wait_applied(index, META_APPLY_WAIT).await?;
        }
        Ok(FromProto::from_proto(result)?)
    }

    /// What this node sees of the cluster: the metadata group, whether
    /// each node of the peer table answers it now, and every queue group
    /// it holds a replica of.
    pub async fn report(&self) -> crate::ClusterReport {
        let status = self.cluster_status();
        let nodes = match &self.inner.net {
            Some(net) => {
                let asks = net.members().into_iter().map(|id| {
                    let net = net.clone();
                    async move {
                        let address = net.addr(id).map(|a| a.to_string()).unwrap_or_default();
                        let info = net.cluster_info(id, REPORT_PING).await;
                        crate::NodeReport {
                            node_id: id,
                            address,
                            reachable: info.is_ok(),
                            down: net.is_down(id),
                            member: info.is_ok_and(|i| i.meta_initialized),
                        }
                    }
                });
                futures::future::join_all(asks).await
            }
            None => vec![crate::NodeReport {
                node_id: self.inner.node_id,
                address: String::new(),
                reachable: true,
                member: true,
                down: false,
            }],
        };
        let groups: Vec<QueueGroup<S>> = self.inner.queues.lock().values().cloned().collect();
        let queues = groups
            .iter()
            .map(|q| {
                let (vhost, name) = q.identity();
                let (messages, unacked) = q
                    .with_state(|s| (s.message_count() + s.unacked_count(), s.unacked_count()))
                    .unwrap_or_default();
                crate::QueueReport {
                    group: q.group(),
                    vhost: vhost.to_owned(),
                    name: name.to_owned(),
                    leader: q.leader(),
                    members: q.members(),
                    applied_index: q.applied_index(),
                    messages,
                    unacked,
                    learners: q.learners(),
                    readers: q.readers(),
                }
            })
            .collect();
        crate::ClusterReport {
            node_id: status.node_id,
            meta_leader: status.meta_leader,
            meta_voters: status.meta_voters,
            meta_learners: status.meta_learners,
            nodes,
            queues,
        }
    }

    /// Serves this node's broker to its peers' (see [`Self::publish_to`]).
    pub fn set_broker(&self, host: Arc<dyn crate::BrokerHost>) {
        *self.inner.broker.lock() = Some(host);
    }

    /// Hands `msgs` to the queue `vhost`/`queue` that node `node` holds
    /// (a transient queue lives on one node; a durable one on its
    /// replicas), in order and in one call; for each, true once that
    /// queue took it. `None`: the node could not be reached, so nothing
    /// was handed over (trying another node cannot duplicate anything).
    pub async fn publish_to(
        &self,
        node: u64,
        vhost: &str,
        queue: &str,
        msgs: Vec<warren_core::message::Message>,
    ) -> Result<Option<Vec<bool>>, ClusterError> {
        let net = self
            .inner
            .net
            .as_ref()
            .ok_or_else(|| ClusterError::Config("node runs without peers".into()))?;
        match net
            .publish_to(node, vhost, queue, msgs, PUBLISH_TO_TIMEOUT)
            .await
        {
            Ok(taken) => Ok(Some(taken)),
            Err(e) if e.unreachable() => Ok(None),
            Err(e) => Err(ClusterError::Transport(e.to_string())),
        }
    }

    /// A counter that moves whenever the applied metadata does (changes
    /// made on any node) or a queue replica starts or goes on this node.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// A copy of the applied metadata.
    pub fn meta(&self) -> MetaState {
        self.inner.meta_core.lock().state.clone()
    }

    /// A copy of the applied metadata and the queue groups running here,
    /// then every change to either, in the order made here: for a broker
    /// that keeps its own copy and follows it change by change rather than
    /// copying the whole metadata again each time.
    pub fn follow(
        &self,
    ) -> (
        MetaState,
        Vec<QueueGroup<S>>,
        tokio::sync::mpsc::UnboundedReceiver<NodeChange>,
    ) {
        // Following first, listing second: a group that starts or stops in
        // between is both listed and told of (or neither and then told),
        // which the follower takes the same way.
        let (state, changes) = self.inner.meta_core.lock().follow();
        let groups = self.inner.queues.lock().values().cloned().collect();
        (state, groups, changes)
    }

    /// Reads the applied metadata without copying it.
    pub fn with_meta<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        f(&self.inner.meta_core.lock().state)
    }

    /// Creates a queue group (one member: this node) whose queue is named
    /// `name` in `vhost` for error texts.
    pub async fn create_queue(
        &self,
        group: GroupId,
        vhost: &str,
        name: &str,
        config: QueueConfig,
    ) -> Result<QueueGroup<S>, ClusterError> {
        self.create_queue_on(group, vhost, name, config, &[self.inner.node_id])
            .await
    }

    /// Creates a queue group whose voters are `members` (node ids of the
    /// peer table, this node among them): each other member first starts
    /// an empty replica (idempotent), then this node initialises the group
    /// with all of them and proposes the queue's Create (through whichever
    /// member wins the first election). Returns once the Create is applied.
    /// On failure this node's replica is removed; replicas started on
    /// other members stay (empty, harmless) until deleted there.
    pub async fn create_queue_on(
        &self,
        group: GroupId,
        vhost: &str,
        name: &str,
        config: QueueConfig,
        members: &[u64],
    ) -> Result<QueueGroup<S>, ClusterError> {
        if group == METADATA_GROUP {
            return Err(ClusterError::ReservedGroup(group));
        }
        let members = self.check_members(members)?;
        if self.inner.queues.lock().contains_key(&group) {
            return Err(ClusterError::GroupExists(group));
        }
        save_identity(&self.inner.store, group, vhost, name).await?;
        let net = self.inner.net.as_ref();
        let q = open_queue(
            &self.inner.store,
            self.inner.node_id,
            group,
            net,
            &self.inner.meta_core,
        )
        .await?;
        let created = async {
            if let Some(net) = net {
                self.start_replicas(net, group, vhost, name, &members)
                    .await?;
                if !q.is_initialized().await? {
                    q.initialize(&members).await?;
                }
            }
            q.create(vhost, name, config).await
        };
        if let Err(e) = created.await {
            // Leave nothing behind: a group without its Create is useless.
            let _ = q.shutdown().await;
            let _ = self.inner.store.delete_group(group).await;
            return Err(e);
        }
        self.inner.queues.lock().insert(group, q.clone());
        self.inner.queue_here(group);
        Ok(q)
    }

    /// `members` sorted, deduplicated and checked against the peer table.
    fn check_members(&self, members: &[u64]) -> Result<Vec<u64>, ClusterError> {
        let mut m = members.to_vec();
        m.sort_unstable();
        m.dedup();
        let me = self.inner.node_id;
        if !m.contains(&me) {
            return Err(ClusterError::Config(format!(
                "a queue group created on node {me} must have it among its members ({m:?})"
            )));
        }
        match &self.inner.net {
            None if m.len() > 1 => Err(ClusterError::Config(format!(
                "node {me} runs without peers: a queue group can only have it as member"
            ))),
            Some(net) => match m.iter().find(|id| net.addr(**id).is_none()) {
                Some(id) => Err(ClusterError::Config(format!(
                    "node {id} is not in the peer table"
                ))),
                None => Ok(m),
            },
            None => Ok(m),
        }
    }

    /// Asks every member but this node to start an empty replica, each
    /// retried until it answers or [`REPLICA_WAIT`] passes.
    async fn start_replicas(
        &self,
        net: &Arc<Net>,
        group: GroupId,
        vhost: &str,
        name: &str,
        members: &[u64],
    ) -> Result<(), ClusterError> {
        let others = members.iter().filter(|m| **m != self.inner.node_id);
        let starts = others.map(|peer| async move {
            let deadline = tokio::time::Instant::now() + REPLICA_WAIT;
            loop {
                match net
                    .start_replica(*peer, group, vhost, name, REPLICA_WAIT, false)
                    .await
                {
                    Ok(_) => return Ok(()),
                    // Starting a replica is idempotent: retry whatever
                    // failed, except a refusal.
                    Err(e) if !e.refused() && tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(REPLICA_RETRY).await;
                    }
                    Err(e) => return Err(ClusterError::Transport(e.to_string())),
                }
            }
        });
        futures::future::try_join_all(starts).await.map(|_| ())
    }

    /// Starts an empty replica of `group` (asked by the member creating
    /// it, or by its leader repairing a lost replica); false if this node
    /// already runs the group.
    pub(crate) async fn start_replica(
        &self,
        group: GroupId,
        vhost: &str,
        name: &str,
        repair: bool,
    ) -> Result<bool, ClusterError> {
        if group == METADATA_GROUP {
            return Err(ClusterError::ReservedGroup(group));
        }
        if repair && self.with_meta(|m| m.queue(vhost, name).is_none()) {
            return Err(ClusterError::Config(format!(
                "no queue '{name}' in vhost '{vhost}' here: not repairing group {group}"
            )));
        }
        let _one_at_a_time = self.inner.starting.lock().await;
        if self.inner.queues.lock().contains_key(&group) {
            return Ok(false);
        }
        let Some(net) = self.inner.net.as_ref() else {
            return Err(ClusterError::Config("node runs without peers".into()));
        };
        save_identity(&self.inner.store, group, vhost, name).await?;
        let q = open_queue(
            &self.inner.store,
            self.inner.node_id,
            group,
            Some(net),
            &self.inner.meta_core,
        )
        .await?;
        self.inner.queues.lock().insert(group, q);
        self.inner.queue_here(group);
        Ok(true)
    }

    pub fn queue(&self, group: GroupId) -> Option<QueueGroup<S>> {
        self.inner.queues.lock().get(&group).cloned()
    }

    /// Ids of the running queue groups, ascending.
    pub fn queue_groups(&self) -> Vec<GroupId> {
        self.inner.queues.lock().keys().copied().collect()
    }

    /// Stops the group and deletes everything it stored.
    pub async fn delete_queue(&self, group: GroupId) -> Result<(), ClusterError> {
        let q = self
            .inner
            .queues
            .lock()
            .remove(&group)
            .ok_or(ClusterError::NoSuchGroup(group))?;
        self.inner.queue_gone(&q);
        q.shutdown().await?;
        self.inner.store.delete_group(group).await?;
        Ok(())
    }

    /// Snapshots the metadata now and compacts its log (normally automatic).
    pub async fn snapshot_meta(&self) -> Result<(), ClusterError> {
        self.inner.meta.snapshot().await
    }

    /// Stops every group and the cluster service; the store closes when
    /// the last clone is dropped.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        if let Some(net) = &self.inner.net {
            net.close();
        }
        if let Some(b) = self.inner.bootstrap.lock().take() {
            b.abort();
        }
        drop(self.inner.detector.lock().take());
        drop(self.inner.balancer.lock().take());
        drop(self.inner.stall_watch.lock().take());
        drop(self.inner.members.lock().take());
        let queues: Vec<QueueGroup<S>> = self.inner.queues.lock().values().cloned().collect();
        let mut result = Ok(());
        for q in queues {
            if let Err(e) = q.shutdown().await {
                result = Err(e);
            }
        }
        if let Err(e) = self.inner.meta.shutdown().await {
            result = Err(e);
        }
        let server = self.inner.server.lock().take();
        if let Some(server) = server {
            server.stop().await;
        }
        if let Some(net) = &self.inner.net {
            net.clear();
        }
        result
    }

    /// The metadata group's leader, as this node knows it.
    pub fn meta_leader(&self) -> Option<u64> {
        self.inner.meta.leader()
    }

    /// Waits up to `timeout` for the metadata group to have a leader.
    pub async fn wait_for_meta_leader(
        &self,
        timeout: std::time::Duration,
    ) -> Result<u64, ClusterError> {
        self.inner.meta.wait_leader(timeout).await
    }

    /// What this node knows of the cluster.
    pub fn cluster_status(&self) -> ClusterStatus {
        ClusterStatus {
            node_id: self.inner.node_id,
            meta_leader: self.inner.meta.leader(),
            meta_voters: self.inner.meta.voters(),
            meta_learners: self.inner.meta.learners(),
            bootstrap: self.inner.bootstrap_state.lock().clone(),
        }
    }

    pub fn store_stats(&self) -> StoreStats {
        self.inner.store.stats()
    }

    /// Fault injection for tests: cuts this node off the cluster network
    /// (every RPC in or out fails at once) or reconnects it, while it
    /// keeps running — as a partition, or a pause seen from outside.
    #[doc(hidden)]
    pub fn set_isolated(&self, on: bool) {
        if let Some(net) = &self.inner.net {
            net.set_isolated(on);
        }
    }

    /// Fault injection for tests: makes this node's replica of `group`
    /// stand for election at once, without a pre-vote (its term goes up
    /// even if it cannot win, which unseats the leader when it hears of it).
    #[doc(hidden)]
    pub async fn force_election(&self, group: GroupId) {
        if let Some(g) = self.inner.net.as_ref().and_then(|n| n.group(group)) {
            g.elect(false).await;
        }
    }
}
