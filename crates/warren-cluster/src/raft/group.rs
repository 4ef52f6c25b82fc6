//! Starting one group's `Raft` and driving it: the only place that calls
//! openraft's runtime API. A group runs either alone (no transport: one
//! member, this node, as on a single node) or over the node's gRPC
//! transport, where its members may be other nodes.
//!
//! Proposals go to the leader: a member that is not it forwards them over
//! gRPC (one hop; the leader proposes locally and answers with the state
//! machine's reply), retrying across a leader change for up to
//! [`FORWARD_WAIT`]. A proposal is retried only when it surely was not
//! appended (the receiver said "not leader", or could not be reached);
//! a connection lost while the leader held it is retried too, so such a
//! proposal may be applied twice (at least once, as an unconfirmed AMQP
//! publish is).
//!
//! A queue group with peers runs no timer at all (openraft's tick, hence
//! its heartbeats and election timeouts, is off): an idle one costs
//! nothing. The node's failure detector (`node::detector`) stands in for
//! them: it elects when a group's leader is judged down or when a group
//! knows no leader. The metadata group keeps openraft's own timers.
//! openraft lets a leader write only while a quorum acknowledged it within
//! its lease; an idle leader without heartbeats lets it lapse, so such a
//! leader renews it (one heartbeat round) before it writes after a pause
//! ([`renew_lease`]). The same rule keeps a leader that was cut off or
//! paused from writing: it cannot renew without a quorum.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, Config, Instant as _, Raft, SnapshotPolicy};
use warren_rpc::raft as rpc;
use warren_storage::{GroupId, LogStore};

use super::grpc::{GrpcNetworkFactory, SnapshotPrep};
use super::network::NoNetworkFactory;
use super::rpc_host::RaftRpc;
use super::{LogAdapter, QueueShared, Request, Response, TypeConfig};
use crate::ClusterError;
use crate::net::Net;

type C = TypeConfig;

/// How long a group may take to elect itself after a start.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// How long a proposal keeps looking for a leader to take it.
pub(crate) const FORWARD_WAIT: Duration = Duration::from_secs(10);

/// Pause between two attempts to find the leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long a forwarded proposal may wait for its commit.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Snapshot (and then compact the log) after this many entries.
const SNAPSHOT_EVERY: u64 = 1024;

/// Entries a group with peers keeps behind its snapshot, so that a
/// follower a little behind catches up from the log, not a snapshot.
const KEEP_FOR_LAGGARDS: u64 = 1024;

/// How far behind its snapshot a leader keeps its log for a member that is
/// up but slow (see [`GroupHandle::purge_point`]): about 64 MiB of 1 KiB
/// messages.
const MAX_KEEP_FOR_LAGGARDS: u64 = 65_536;

/// Shortest leader lease of a detector-driven queue group (see `config`).
const MIN_LEASE_MS: u64 = 200;

/// What one proposal answered.
pub(crate) type Answer = Result<(u64, Response), ClusterError>;

/// The transport of a group that has (or may get) members on other nodes.
pub(crate) struct GroupNet {
    pub(crate) net: Arc<Net>,
    /// For a queue group: adds the message bodies to a snapshot sent out.
    pub(crate) prep: Option<SnapshotPrep>,
    /// For a queue group: its queue (vhost, name), to replace the replica
    /// of a member that lost it (`repair`).
    pub(crate) identity: Option<(String, String)>,
    /// For a queue group: how many voters it should have (see `repair`).
    pub(crate) target: Option<super::TargetFn>,
}

/// How a group finds out that it needs a new leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timers {
    /// None: a group alone, which stands once at start (`start_group`).
    Alone,
    /// openraft's own heartbeats and election timeouts (the metadata group).
    Own,
    /// None: the node's failure detector, which judges a peer down after
    /// `down_after`, triggers the elections (queue groups with peers).
    Detector { down_after: Duration },
}

/// One running group. Clones share it.
pub(crate) struct GroupHandle<SM: RaftStateMachine<C>> {
    pub(super) raft: Raft<C, SM>,
    pub(crate) group: GroupId,
    node_id: u64,
    net: Option<Arc<Net>>,
    /// The leader lease of a group without heartbeats (see [`renew_lease`]).
    lease: Option<Duration>,
}

impl<SM: RaftStateMachine<C>> Clone for GroupHandle<SM> {
    fn clone(&self) -> Self {
        GroupHandle {
            raft: self.raft.clone(),
            group: self.group,
            node_id: self.node_id,
            net: self.net.clone(),
            lease: self.lease,
        }
    }
}

/// Before a leader of a group without heartbeats writes: if no quorum
/// acknowledged it within half its `lease`, one heartbeat round renews
/// it (openraft refuses writes on a lapsed lease, answering
/// `ForwardToLeader` to nobody). Costs one round trip after an idle
/// spell, nothing while writes keep flowing (their acknowledgements renew
/// the lease). False if it is still not renewed after `lease` (no quorum
/// answers: cut off, or superseded): then this node may not write, and
/// the proposal should look for another leader.
pub(crate) async fn renew_lease<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    lease: Duration,
) -> bool {
    let fresh = |m: &openraft::RaftMetrics<C>| {
        // A leader that is the group's only voter is a quorum by itself
        // (openraft's own lease check says so too); nobody acknowledges
        // it, so its acknowledged time would never be recent.
        let alone = {
            let mut voters = m.membership_config.membership().voter_ids();
            voters.next() == Some(m.id) && voters.next().is_none()
        };
        m.state == openraft::ServerState::Leader
            && (alone
                || m.last_quorum_acked
                    .as_ref()
                    .is_some_and(|a| a.elapsed() < lease / 2))
    };
    if fresh(&raft.metrics().borrow_watched()) {
        return true;
    }
    if raft.trigger().heartbeat().await.is_err() {
        return false;
    }
    raft.wait(Some(lease))
        .metrics(
            |m| fresh(m) || m.state != openraft::ServerState::Leader,
            "lease renewed",
        )
        .await
        .is_ok_and(|m| fresh(&m))
}

pub(super) fn raft_err(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Raft(e.to_string())
}

/// See `log_stage_capacity` in [`config`].
const LOG_STAGE_CAPACITY: u64 = 16;

fn config(group: GroupId, queue: bool, timers: Timers) -> Result<Config, ClusterError> {
    let mut c = Config {
        cluster_name: format!("warren-g{group}"),
        // A queue group decides itself when to snapshot (its snapshot's
        // size follows its backlog: `QueueGroup` snapshots after a number
        // of entries proportional to it, so the cost per entry stays flat).
        snapshot_policy: if queue {
            SnapshotPolicy::Never
        } else {
            SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY)
        },
        // With one member nobody lags behind, so nothing needs the entries a
        // snapshot covers: compact right away. (Keeping them until the
        // compaction's own purge was tried, and a kill -9 test lost bodies
        // three times in a row with it, then never again under either
        // setting: cause not known, see BENCHMARKS.md.)
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 256,
        // openraft's per-entry stage timings (diagnostics we never read)
        // preallocate six maps of this many slots per group: 22 KB of RSS
        // per idle queue at openraft's 1024 (measured, 1 000 queues).
        log_stage_capacity: Some(LOG_STAGE_CAPACITY),
        ..Config::default()
    };
    if timers != Timers::Alone {
        // Over a network (and a disk shared by every group of the node),
        // openraft's defaults (50 ms heartbeats, 150-300 ms elections) make
        // a busy node lose its leaderships. Failover takes about the
        // election timeout plus openraft's leader lease (= the maximum
        // election timeout, during which voters refuse candidates): with
        // these, 1-2 s (measured in tests/cluster.rs), the target.
        c.heartbeat_interval = 100;
        c.election_timeout_min = 500;
        c.election_timeout_max = 1000;
        c.max_in_snapshot_log_to_keep = if queue {
            // A queue group purges only where `GroupHandle::snapshot`
            // says, after its own copy of the bodies still queued (see
            // `purge_point` and `QueueGroup`'s compaction): openraft's own
            // purge after each snapshot would drop what a slow follower
            // still needs, and copy inside the Raft core.
            u64::MAX
        } else {
            KEEP_FOR_LAGGARDS
        };
        // A rejoining node asks first whether it could win, rather than
        // bumping the term and unseating a healthy leader.
        c.enable_pre_vote = Some(true);
        c.install_snapshot_timeout = 5_000;
        // A member that came back with an emptied data directory has a
        // shorter log than the leader last matched: start its replication
        // over from nothing instead of panicking the leader's core (what
        // openraft does without this). Its vote is taken away meanwhile
        // (`repair`).
        c.allow_log_reversion = Some(true);
    }
    if timers != Timers::Own {
        // No tick: no heartbeats, no election timer, no wakeup while idle
        // (with it, every group woke every 50-100 ms: measured, debug
        // build, 600 idle queues on one node made each further declare
        // take 0.4 s). A lone voter stands once at start (`start_group`)
        // and nobody can take its vote; a group with peers elects when the
        // failure detector says so.
        c.enable_tick = false;
        c.enable_heartbeat = false;
    }
    if let Timers::Detector { down_after } = timers {
        c.enable_elect = false;
        // What remains of the election timeout is the lease, both ways: a
        // follower refuses to vote (and to pre-vote) for that long after it
        // last heard from its leader, and a leader writes only while a
        // quorum acknowledged it within that long. Short, a failover is
        // not refused by lingering follower leases (the detector judges a
        // leader down `down_after` after its last answer to a ping); long,
        // a leader whose acknowledgements come late under load keeps its
        // right to write (measured: with half of `down_after`, 1000 groups
        // in a debug build had writes refused mid-burst). `down_after`
        // itself: an election the detector triggers at once may be
        // refused by up to the last ping interval, and is retried.
        let lease = (down_after.as_millis() as u64).max(MIN_LEASE_MS);
        c.election_timeout_max = lease;
        c.election_timeout_min = lease / 2 + 1;
        // With heartbeats off, the interval is only the timeout of an
        // append (and of a renewal's heartbeat). 100 ms timed out appends
        // a follower was still writing under full load (3 nodes on one
        // disk: hundreds of timeouts in 30 s), so acknowledgements came
        // late, the lease lapsed, and the leader refused writes (nacks).
        c.heartbeat_interval = lease / 3;
    }
    c.validate().map_err(raft_err)
}

/// Waits until this node leads the group (which has no other voter) and
/// has re-applied its log.
async fn wait_leading<SM: RaftStateMachine<C>>(
    raft: &Raft<C, SM>,
    node_id: u64,
) -> Result<(), ClusterError> {
    raft.wait(Some(LEADER_WAIT))
        .current_leader(node_id, "single-member group elects itself")
        .await
        .map_err(raft_err)?;
    // Leading means the new term's first entry is in the log; once it is
    // applied, so is everything before it: the state is back.
    raft.wait(Some(LEADER_WAIT))
        .metrics(
            |m| m.last_log_index.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index,
            "log replayed",
        )
        .await
        .map_err(raft_err)?;
    Ok(())
}

/// Starts the group's Raft over `store`.
///
/// Without `net`, a pristine group is initialised with this node as its
/// only voter, and the call returns once this node leads it. With `net`,
/// the group is registered with the node's gRPC service and a pristine
/// group stays uninitialised (a leader elsewhere will fill it, or the
/// caller initialises it); a group whose only voter is this node is waited
/// for as above, any other returns at once (its election needs peers).
pub(crate) async fn start_group<S, SM>(
    node_id: u64,
    group: GroupId,
    store: S,
    sm: SM,
    queue: Option<Arc<QueueShared>>,
    net: Option<GroupNet>,
) -> Result<GroupHandle<SM>, ClusterError>
where
    S: LogStore,
    SM: RaftStateMachine<C, SnapshotData = Bytes>,
{
    let timers = match &net {
        None => Timers::Alone,
        Some(_) if queue.is_none() => Timers::Own,
        Some(n) => Timers::Detector {
            down_after: n.net.down_after(),
        },
    };
    let detected = matches!(timers, Timers::Detector { .. });
    let cfg = Arc::new(config(group, queue.is_some(), timers)?);
    let lease = detected.then(|| Duration::from_millis(cfg.election_timeout_max));
    let log = LogAdapter::new(store, group, queue);
    let Some(GroupNet {
        net,
        prep,
        identity,
        target,
    }) = net
    else {
        let raft = Raft::new(node_id, cfg, NoNetworkFactory, log, sm)
            .await
            .map_err(raft_err)?;
        if !raft.is_initialized().await.map_err(raft_err)? {
            let members = BTreeMap::from([(node_id, BasicNode::default())]);
            raft.initialize(members).await.map_err(raft_err)?;
        }
        // Initialising elects at once, and a restart restores a leader's
        // committed vote; otherwise (no tick, see `config`) stand now.
        let standing = raft
            .wait(Some(Duration::from_millis(300)))
            .current_leader(node_id, "leading after start")
            .await;
        if standing.is_err() {
            raft.trigger().elect(false).await.map_err(raft_err)?;
        }
        wait_leading(&raft, node_id).await?;
        return Ok(GroupHandle {
            raft,
            group,
            node_id,
            net: None,
            lease: None,
        });
    };
    let (missing_tx, missing_rx) = tokio::sync::mpsc::unbounded_channel();
    let factory = GrpcNetworkFactory {
        group,
        net: net.clone(),
        prep,
        missing: identity.is_some().then_some(missing_tx),
    };
    let raft = Raft::new(node_id, cfg, factory, log, sm)
        .await
        .map_err(raft_err)?;
    if let Some(identity) = identity {
        super::repair::spawn(
            raft.clone(),
            net.clone(),
            group,
            identity,
            target,
            lease,
            missing_rx,
        );
    }
    net.register(
        group,
        Arc::new(RaftRpc {
            group,
            raft: raft.clone(),
            lease,
            net: net.clone(),
        }),
    );
    if detected {
        tokio::spawn(report_view_changes(
            view_changes(&raft),
            Arc::downgrade(&net),
            group,
        ));
    }
    let handle = GroupHandle {
        raft,
        group,
        node_id,
        net: Some(net),
        lease,
    };
    if handle.voters_now().await? == [node_id] {
        if detected {
            // No election timer would ever fire: stand now (alone, the
            // vote is this node's own).
            handle.raft.trigger().elect(false).await.map_err(raft_err)?;
        }
        wait_leading(&handle.raft, node_id).await?;
    }
    Ok(handle)
}

/// Yields each time the group's leader, vote, state or membership changes
/// on this node (openraft's server metrics); ends when the group stops.
fn view_changes<SM: RaftStateMachine<C>>(raft: &Raft<C, SM>) -> BoxStream<'static, ()> {
    futures::stream::unfold(raft.server_metrics(), |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
    .boxed()
}

/// Tells the failure detector each time the group's leader, vote, state
/// or membership changes on this node (it re-examines only those groups:
/// see `node::detector`); ends with the group.
async fn report_view_changes(
    mut changes: BoxStream<'static, ()>,
    net: std::sync::Weak<Net>,
    group: GroupId,
) {
    while changes.next().await.is_some() {
        let Some(net) = net.upgrade() else { return };
        net.view_changed(group);
    }
}

impl<SM: RaftStateMachine<C>> GroupHandle<SM> {
    /// This node's id.
    pub(crate) fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Whether the group runs over the transport (may have other members).
    pub(crate) fn has_peers(&self) -> bool {
        self.net.is_some()
    }

    /// The leader this node knows of.
    pub(crate) fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// Yields each time the group's leader, vote, state or membership
    /// changes on this node; ends when the group stops.
    pub(crate) fn view_changes(&self) -> BoxStream<'static, ()> {
        view_changes(&self.raft)
    }

    /// Follows the replica's log and apply progress (closes when the group
    /// stops).
    pub(crate) fn data_changes(
        &self,
    ) -> openraft::type_config::alias::WatchReceiverOf<C, openraft::metrics::RaftDataMetrics<C>>
    {
        self.raft.data_metrics()
    }

    /// The voters of the group's effective membership (as last reported).
    pub(crate) fn voters(&self) -> Vec<u64> {
        self.reported_membership()
            .membership()
            .voter_ids()
            .collect()
    }

    /// Learners that are not readers: replaced members on their way back.
    pub(crate) fn learners(&self) -> Vec<u64> {
        self.learners_where(false)
    }

    /// Readers: learners of nodes that hold no replica of the queue but
    /// serve its consumers (see [`super::is_reader`]).
    pub(crate) fn readers(&self) -> Vec<u64> {
        self.learners_where(true)
    }

    fn learners_where(&self, readers: bool) -> Vec<u64> {
        let m = self.reported_membership();
        let m = m.membership();
        m.learner_ids()
            .filter(|id| m.get_node(id).is_some_and(super::is_reader) == readers)
            .collect()
    }

    /// Whether `node` is in the group's membership (voter, learner or reader).
    pub(crate) fn has_member(&self, node: u64) -> bool {
        self.reported_membership()
            .membership()
            .get_node(&node)
            .is_some()
    }

    /// Waits up to `timeout` until this replica holds a membership naming
    /// this node and has applied the log up to it (a reader that just
    /// joined then shows what the queue held when it joined).
    pub(crate) async fn wait_member(&self, timeout: Duration) -> Result<(), ClusterError> {
        let me = self.node_id;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    let c = &m.membership_config;
                    c.membership().get_node(&me).is_some()
                        && m.last_applied.map(|l| l.index) >= c.log_id().map(|l| l.index)
                },
                "a member, caught up to its joining",
            )
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Raft(format!("group {}: {e}", self.group)))
    }

    /// A membership change is under way: the configuration is joint (old
    /// and new voters both count), or a learner waits to be promoted.
    /// Readers stay learners for good: they change nothing.
    pub(crate) fn membership_changing(&self) -> bool {
        let m = self.reported_membership();
        m.membership().get_joint_config().len() > 1 || !self.learners().is_empty()
    }

    fn reported_membership(&self) -> Arc<openraft::alias::StoredMembershipOf<C>> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone()
    }

    /// The voters as Raft's core holds them right now (metrics may lag
    /// just after a start).
    async fn voters_now(&self) -> Result<Vec<u64>, ClusterError> {
        self.raft
            .with_raft_state(|st| {
                st.membership_state
                    .effective()
                    .membership()
                    .voter_ids()
                    .collect()
            })
            .await
            .map_err(raft_err)
    }

    pub(crate) async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft.is_initialized().await.map_err(raft_err)
    }

    /// Gives a pristine group its first membership: `voters`, each with
    /// its address from the peer table. This node then stands for election.
    pub(crate) async fn initialize(&self, voters: &[u64]) -> Result<(), ClusterError> {
        let members: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|id| {
                let addr = self
                    .net
                    .as_ref()
                    .and_then(|n| n.addr(*id))
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                (*id, BasicNode { addr })
            })
            .collect();
        self.raft.initialize(members).await.map_err(raft_err)
    }

    /// As the leader, hands the leadership to the voter `to` (it stands
    /// once it holds this node's log); ignored on a follower.
    pub(crate) async fn transfer_to(&self, to: u64) {
        if let Err(e) = self.raft.trigger().transfer_leader(to).await {
            tracing::debug!(group = self.group, to, error = %e, "leadership not handed over");
        }
    }

    /// Waits up to `timeout` until this replica has applied `index`.
    pub(crate) async fn wait_applied(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "applied here")
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Raft(format!("group {}: {e}", self.group)))
    }

    /// Calls `f` each time this replica's applied index moves, until `f`
    /// returns false or the group stops.
    pub(crate) fn on_applied(&self, f: impl Fn() -> bool + Send + 'static) {
        let mut metrics = self.raft.metrics();
        tokio::spawn(async move {
            let mut last = metrics.borrow_watched().last_applied.map(|l| l.index);
            while metrics.changed().await.is_ok() {
                let now = metrics.borrow_watched().last_applied.map(|l| l.index);
                if now != last {
                    last = now;
                    if !f() {
                        return;
                    }
                }
            }
        });
    }

    /// Waits up to `timeout` for the group to have a leader.
    pub(crate) async fn wait_leader(&self, timeout: Duration) -> Result<u64, ClusterError> {
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| ClusterError::NotLeader {
                group: self.group,
                leader: None,
            })?;
        m.current_leader.ok_or(ClusterError::NotLeader {
            group: self.group,
            leader: None,
        })
    }

    /// See [`renew_lease`]; true on a group with heartbeats, or not leading.
    async fn renew_lease(&self) -> bool {
        match self.lease {
            Some(lease) if self.raft.is_leader() => renew_lease(&self.raft, lease).await,
            _ => true,
        }
    }

    fn not_leader(&self, leader: Option<u64>) -> ClusterError {
        ClusterError::NotLeader {
            group: self.group,
            leader,
        }
    }

    /// Proposes `req` (forwarded to the leader if this node is not it);
    /// after it is committed (durable) and applied, the log index it got
    /// and the state machine's answer.
    pub(crate) async fn propose(&self, req: Request) -> Answer {
        let deadline = Instant::now() + FORWARD_WAIT;
        loop {
            self.renew_lease().await;
            let hint = match self.raft.client_write(req.clone()).await {
                Ok(resp) => return Ok((resp.log_id.index, resp.data)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_id,
                Err(e) => return Err(raft_err(e)),
            };
            let Some(net) = &self.net else {
                return Err(self.not_leader(hint));
            };
            if let Some(leader) = hint.filter(|l| *l != self.node_id) {
                match net
                    .propose(leader, self.group, vec![req.0.clone()], FORWARD_TIMEOUT)
                    .await
                {
                    Ok(resp) => {
                        if let Some(answer) = forwarded(self.group, resp).pop().flatten() {
                            return answer;
                        }
                    }
                    Err(e) if e.unreachable() => {}
                    Err(e) => return Err(ClusterError::Transport(e.to_string())),
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_leader(self.leader()));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Proposes `reqs` as one batch, behind everything proposed before.
    /// On the leader it returns once the batch is handed to Raft (not
    /// committed), and the stream yields each entry's index and answer, in
    /// order, as they are committed and applied. On another member the
    /// batch is forwarded and this returns once the leader answered all
    /// of it (one forwarded batch at a time keeps the order). An entry the
    /// leader refused because it lost its leadership meanwhile answers
    /// [`ClusterError::NotLeader`] (nothing after it was reordered).
    pub(crate) async fn propose_many(
        &self,
        reqs: Vec<Request>,
    ) -> Result<BoxStream<'static, Answer>, ClusterError> {
        let deadline = Instant::now() + FORWARD_WAIT;
        loop {
            // A leader that cannot renew its lease may not write: it looks
            // for another leader like a follower does.
            if self.net.is_none() || (self.raft.is_leader() && self.renew_lease().await) {
                return self.propose_many_here(reqs).await;
            }
            let Some(net) = &self.net else {
                return Err(self.not_leader(None));
            };
            if let Some(leader) = self.leader().filter(|l| *l != self.node_id) {
                let raw: Vec<Bytes> = reqs.iter().map(|r| r.0.clone()).collect();
                match net.propose(leader, self.group, raw, FORWARD_TIMEOUT).await {
                    Ok(resp) => {
                        let n = reqs.len();
                        let answers = forwarded(self.group, resp);
                        if !answers.is_empty() {
                            let mut all: Vec<Answer> = answers
                                .into_iter()
                                .map(|a| a.unwrap_or_else(|| Err(self.not_leader(None))))
                                .collect();
                            while all.len() < n {
                                all.push(Err(ClusterError::Raft(format!(
                                    "group {}: forwarded answer missing",
                                    self.group
                                ))));
                            }
                            return Ok(futures::stream::iter(all).boxed());
                        }
                    }
                    Err(e) if e.unreachable() => {}
                    Err(e) => return Err(ClusterError::Transport(e.to_string())),
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_leader(self.leader()));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn propose_many_here(
        &self,
        reqs: Vec<Request>,
    ) -> Result<BoxStream<'static, Answer>, ClusterError> {
        let stream = self.raft.client_write_many(reqs).await.map_err(raft_err)?;
        let group = self.group;
        // Fused: the stream ends early when the group stops, and callers
        // may poll it again for answers that will not come.
        Ok(stream
            .fuse()
            .map(move |r| match r {
                Ok(Ok(resp)) => Ok((resp.log_id.index, resp.response)),
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(ClusterError::NotLeader {
                    group,
                    leader: f.leader_id,
                }),
                Ok(Err(e)) => Err(raft_err(e)),
                Err(fatal) => Err(raft_err(fatal)),
            })
            .boxed())
    }

    /// Snapshots now and compacts the log up to the snapshot; returns when
    /// both are done.
    pub(crate) async fn snapshot(&self) -> Result<(), ClusterError> {
        match self.build_snapshot().await? {
            Some(upto) => self.purge(upto).await,
            None => Ok(()),
        }
    }

    /// Snapshots now; returns once the snapshot covers what was applied
    /// when asked, with the index up to which the log may then be purged
    /// (`None`: nothing to purge).
    pub(crate) async fn build_snapshot(&self) -> Result<Option<u64>, ClusterError> {
        self.raft.trigger().snapshot().await.map_err(raft_err)?;
        let applied = self.raft.metrics().borrow_watched().last_applied;
        let Some(want) = applied else {
            return Ok(None);
        };
        // Trigger only queues the request: wait until the snapshot covers
        // what was applied when we asked.
        self.raft
            .wait(Some(LEADER_WAIT))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= want.index),
                "snapshot built",
            )
            .await
            .map_err(raft_err)?;
        // Alone, nobody needs the entries the snapshot covers; with
        // peers, the last ones stay for a follower a little behind.
        let upto = if self.net.is_some() {
            self.purge_point(want.index)
        } else {
            want.index
        };
        Ok((upto > 0).then_some(upto))
    }

    /// Where the log was last purged (`None`: never).
    pub(crate) fn purged(&self) -> Option<u64> {
        self.raft
            .metrics()
            .borrow_watched()
            .purged
            .as_ref()
            .map(|l| l.index)
    }

    /// Purges the log up to `upto` (covered by a snapshot); returns once done.
    pub(crate) async fn purge(&self, upto: u64) -> Result<(), ClusterError> {
        self.raft
            .trigger()
            .purge_log(upto)
            .await
            .map_err(raft_err)?;
        self.raft
            .wait(Some(LEADER_WAIT))
            .metrics(|m| m.purged.is_some_and(|p| p.index >= upto), "log purged")
            .await
            .map_err(raft_err)?;
        Ok(())
    }

    /// Up to where a replica with peers purges its log after a snapshot at
    /// `index`: [`KEEP_FOR_LAGGARDS`] behind it, and as a leader no further
    /// than what every member judged up has matched, down to
    /// [`MAX_KEEP_FOR_LAGGARDS`] behind. A follower that is slow but up (a
    /// loaded node serving the queue's consumers) then catches up from the
    /// log: a purged entry it still needs would be replaced by a snapshot,
    /// which for a deep queue carries every queued body and, sent again and
    /// again, keeps it from ever catching up. A member judged down gets a
    /// snapshot when it is back.
    fn purge_point(&self, index: u64) -> u64 {
        let mut upto = index.saturating_sub(KEEP_FOR_LAGGARDS);
        let floor = index.saturating_sub(MAX_KEEP_FOR_LAGGARDS);
        let Some(net) = &self.net else {
            return index;
        };
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        if let Some(replication) = &m.replication {
            for (node, matched) in replication.iter() {
                if *node == self.node_id || net.is_down(*node) {
                    continue;
                }
                upto = upto.min(matched.as_ref().map_or(0, |l| l.index));
            }
        }
        upto.max(floor)
    }

    /// Entries applied since the last snapshot (what its log still holds).
    pub(crate) fn unsnapshotted(&self) -> u64 {
        let m = self.raft.metrics().borrow_watched().clone();
        let applied = m.last_applied.map_or(0, |l| l.index);
        let covered = m.snapshot.map_or(0, |s| s.index);
        applied.saturating_sub(covered)
    }

    /// Stops the group (and takes it out of the node's gRPC service).
    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        if let Some(net) = &self.net {
            net.unregister(self.group);
        }
        self.raft.shutdown().await.map_err(raft_err)
    }
}

/// The answers of a forwarded batch: empty if the receiver was not the
/// leader (nothing was proposed, ask again); else one per proposal, `None`
/// for one refused before it was appended.
fn forwarded(group: GroupId, resp: rpc::ProposeResponse) -> Vec<Option<Answer>> {
    if resp.not_leader.is_some() {
        return Vec::new();
    }
    use rpc::propose_result::Result as R;
    resp.results
        .into_iter()
        .map(|r| match r.result {
            Some(R::Applied(a)) => Some(Ok((a.index, Response(a.response)))),
            Some(R::NotLeader(_)) => None,
            Some(R::Error(e)) => Some(Err(ClusterError::Raft(format!("group {group}: {e}")))),
            None => Some(Err(ClusterError::Raft(format!(
                "group {group}: empty forwarded answer"
            )))),
        })
        .collect()
}
