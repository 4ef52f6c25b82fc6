//! `QueueGroup`: one durable queue as a Raft group, driven through its
//! proposer API. The proposer stamps the time, the state machine decides.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt as _;
use openraft::async_runtime::WatchReceiver as _;
use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use warren_core::message::Message;
use warren_core::queue::{Command, Effect, QueueState, Reply};
use warren_rpc::log as pb;
use warren_storage::{GroupId, LogStore, MetaKey, RocksStore};

use crate::ClusterError;
use crate::convert::{FromProto, IntoProto, QueueOp, required};
use crate::raft::{
    GroupHandle, LocalEffects, QueueMachine, QueueShared, Request, effect_owner, read_message,
};

/// Bodies of the most recent enqueues kept in memory: consumers that keep up
/// are served without reading the log back.
const BODY_CACHE: usize = 4096;

/// How long an answer naming messages waits for this replica to apply
/// its entry (see [`Inner::readable_here`]).
const READABLE_WAIT: Duration = Duration::from_secs(10);

/// Most commands handed to Raft as one batch by [`QueueGroup::submit`].
const MAX_BATCH: usize = 1024;

/// A drained queue's log is compacted at most this often (see
/// [`Inner::compact`]).
const DRAINED_COMPACTION_EVERY: Duration = Duration::from_secs(1);

/// Fewest entries between two snapshots of a queue holding messages; a
/// queue holding more snapshots after a quarter of what it holds.
const SNAPSHOT_MIN_ENTRIES: u64 = 1024;

/// The group's record of which queue it holds (vhost, name).
pub(crate) const IDENTITY_KEY: MetaKey = MetaKey::Custom(1);

/// What a committed command answers: the machine's reply and effects.
pub type Applied = Result<(Reply<u64>, Vec<Effect<u64>>), ClusterError>;

type Submitted = (Command<Message>, oneshot::Sender<Applied>);

/// A handle to one queue group. Clones share the group.
pub struct QueueGroup<S: LogStore = RocksStore> {
    inner: Arc<Inner<S>>,
}

impl<S: LogStore> Clone for QueueGroup<S> {
    fn clone(&self) -> Self {
        QueueGroup {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S: LogStore> {
    store: S,
    handle: GroupHandle<QueueMachine<S>>,
    shared: Arc<QueueShared>,
    cache: Mutex<BTreeMap<u64, Message>>,
    /// In a cluster: bodies of entries applied here with a delivery to
    /// this node's consumers, until that delivery reads them.
    local_bodies: Arc<Mutex<BTreeMap<u64, Message>>>,
    identity: (String, String),
    /// Commands waiting for [`proposer`] to hand them to Raft.
    submitted: mpsc::UnboundedSender<Submitted>,
    compaction: Mutex<Compaction>,
}

/// When the drained queue's log was last compacted, and whether a
/// compaction is already on its way.
#[derive(Default)]
struct Compaction {
    last: Option<Instant>,
    scheduled: bool,
}

/// Reads the group's identity record (vhost, name); empty if it has none.
pub(crate) fn read_identity<S: LogStore>(
    store: &S,
    group: GroupId,
) -> Result<(String, String), ClusterError> {
    match store.read_meta(group, IDENTITY_KEY)? {
        Some(raw) => {
            let id = pb::VhostQueue::decode(raw).map_err(crate::convert::DecodeError::from)?;
            Ok((id.vhost, id.name))
        }
        None => Ok((String::new(), String::new())),
    }
}

/// Writes the group's identity record.
pub(crate) async fn save_identity<S: LogStore>(
    store: &S,
    group: GroupId,
    vhost: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let id = pb::VhostQueue {
        vhost: vhost.to_owned(),
        name: name.to_owned(),
    };
    store
        .save_meta(group, IDENTITY_KEY, Bytes::from(id.encode_to_vec()))
        .await?;
    Ok(())
}

/// The leader's clock, stamped into each proposal (replicas never read theirs).
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn proposal(command: pb::proposal::Command) -> Request {
    let p = pb::Proposal {
        now_ms: now_ms(),
        command: Some(command),
    };
    Request(Bytes::from(p.encode_to_vec()))
}

impl<S: LogStore> QueueGroup<S> {
    pub(crate) fn new(
        store: S,
        handle: GroupHandle<QueueMachine<S>>,
        shared: Arc<QueueShared>,
        identity: (String, String),
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            handle,
            shared,
            cache: Mutex::new(BTreeMap::new()),
            local_bodies: Arc::new(Mutex::new(BTreeMap::new())),
            identity,
            submitted: tx,
            compaction: Mutex::new(Compaction::default()),
        });
        tokio::spawn(proposer(Arc::downgrade(&inner), rx));
        if inner.handle.has_peers() {
            tokio::spawn(follower_compaction(Arc::downgrade(&inner)));
        }
        QueueGroup { inner }
    }

    /// The member leading the group, as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.inner.handle.leader()
    }

    /// Whether this node leads the group.
    pub fn is_leader(&self) -> bool {
        self.inner.handle.is_leader()
    }

    /// Yields whenever this node may have begun or ceased to lead the
    /// group (any change of its leader, vote, state or membership here);
    /// ends when the group stops.
    pub fn leader_changes(&self) -> futures::stream::BoxStream<'static, ()> {
        self.inner.handle.view_changes()
    }

    /// Whether the group runs in a cluster (its members may be on other
    /// nodes). Then the effects addressed to an owner are not in the
    /// answers of [`Self::submit`]: each replica hands those addressed to
    /// its own node's owners to [`Self::local_effects`] as it applies the
    /// log, whoever proposed the command.
    pub fn clustered(&self) -> bool {
        self.inner.handle.has_peers()
    }

    /// In a cluster, the effects addressed to this node's owners
    /// (`OwnerId::node`), in log order, from now on; a second call takes
    /// the stream over from the first. `None` for a group of one node,
    /// whose answers carry every effect.
    pub fn local_effects(&self) -> Option<mpsc::UnboundedReceiver<Vec<Effect<u64>>>> {
        if !self.clustered() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        *self.inner.shared.local.lock() = Some(LocalEffects {
            node_id: self.inner.handle.node_id(),
            tx,
            bodies: self.inner.local_bodies.clone(),
        });
        Some(rx)
    }

    /// The group's voters (node ids), ascending. During a membership
    /// change these are the old and the new voters together.
    pub fn members(&self) -> Vec<u64> {
        self.inner.handle.voters()
    }

    /// Members that replicate without voting on their way to voting again
    /// (a replaced replica catching up), ascending; readers are not among
    /// them.
    pub fn learners(&self) -> Vec<u64> {
        self.inner.handle.learners()
    }

    /// Nodes that hold no replica of the queue's log as voters but read it
    /// to serve consumers there, ascending.
    pub fn readers(&self) -> Vec<u64> {
        self.inner.handle.readers()
    }

    /// Whether this node only reads the group's log (see [`Self::readers`]).
    pub fn reads_only(&self) -> bool {
        self.readers().contains(&self.inner.handle.node_id())
    }

    /// Whether `node` is a voter, learner or reader of the group.
    pub fn has_member(&self, node: u64) -> bool {
        self.inner.handle.has_member(node)
    }

    /// As the leader, hands the leadership to the voter `to`.
    pub(crate) async fn transfer_to(&self, to: u64) {
        self.inner.handle.transfer_to(to).await;
    }

    pub(crate) async fn wait_member(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(), ClusterError> {
        self.inner.handle.wait_member(timeout).await
    }

    /// A membership change is under way (a joint configuration, or a
    /// replaced member still a learner: see the repair in `raft`).
    pub fn membership_changing(&self) -> bool {
        self.inner.handle.membership_changing()
    }

    pub(crate) async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.inner.handle.is_initialized().await
    }

    pub(crate) async fn initialize(&self, members: &[u64]) -> Result<(), ClusterError> {
        self.inner.handle.initialize(members).await
    }

    pub fn group(&self) -> GroupId {
        self.inner.handle.group
    }

    /// The queue this group holds: (vhost, name).
    pub fn identity(&self) -> (&str, &str) {
        (&self.inner.identity.0, &self.inner.identity.1)
    }

    /// Submits `cmd` behind every command submitted before it and returns
    /// at once; the answer (as [`Self::apply`] gives it) arrives once the
    /// command is committed and applied. Answers come in submission order.
    /// Commands submitted while earlier ones are being written go to Raft
    /// together, so one fsync carries many of them.
    ///
    /// On a member that does not lead, the batch is forwarded to the
    /// leader, which answers (reply and effects) to this node; if no
    /// leader takes it in time the answer is [`ClusterError::NotLeader`]
    /// with the last leader known, and nothing was applied. The same holds
    /// for [`Self::apply`].
    pub fn submit(&self, cmd: Command<Message>) -> oneshot::Receiver<Applied> {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError((_, tx))) = self.inner.submitted.send((cmd, tx)) {
            let _ = tx.send(Err(ClusterError::Raft("queue group stopped".into())));
        }
        rx
    }

    async fn propose(&self, op: QueueOp<Message>) -> Result<(u64, pb::QueueResult), ClusterError> {
        let req = proposal(pb::proposal::Command::Queue(op.into_proto()));
        let (index, resp) = self.inner.handle.propose(req).await?;
        Ok((
            index,
            pb::QueueResult::decode(resp.0).map_err(crate::convert::DecodeError::from)?,
        ))
    }

    /// The group's first entry: names the queue and sets its configuration.
    pub(crate) async fn create(
        &self,
        vhost: &str,
        name: &str,
        config: warren_core::queue::QueueConfig,
    ) -> Result<(), ClusterError> {
        let op = QueueOp::Create {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            config,
        };
        self.propose(op).await.map(|_| ())
    }

    /// Proposes `cmd`; once it is committed (fsynced) and applied, the
    /// machine's reply and effects. Payloads in them are log indexes: the
    /// index of the `Enqueue` entry holding the message (see [`Self::body`]).
    /// Only this proposer sees the effects, so only it executes them (in a
    /// cluster, only those addressed to no owner: see [`Self::clustered`]).
    pub async fn apply(
        &self,
        cmd: Command<Message>,
    ) -> Result<(Reply<u64>, Vec<Effect<u64>>), ClusterError> {
        let enqueued = match &cmd {
            Command::Enqueue { msg, .. } => Some(msg.clone()),
            _ => None,
        };
        let (index, result) = self.propose(QueueOp::Command(cmd)).await?;
        let answer = self.inner.answer(index, result, enqueued);
        let answer = self.inner.readable_here(index, answer).await;
        self.inner.compact();
        answer
    }

    /// The message enqueued at log `index`: from the cache of recent
    /// enqueues, else from the log, else from the store's bodies.
    pub async fn body(&self, index: u64) -> Result<Message, ClusterError> {
        self.read_body(index)
    }

    /// [`Self::body`] without the future: reads memory or the store, never
    /// waits on anything else.
    pub fn read_body(&self, index: u64) -> Result<Message, ClusterError> {
        if let Some(m) = self.inner.cache.lock().get(&index) {
            return Ok(m.clone());
        }
        if let Some(m) = self.inner.local_bodies.lock().remove(&index) {
            return Ok(m);
        }
        let group = self.group();
        let m = read_message(&self.inner.store, group, index)?
            .ok_or(ClusterError::NoMessage { group, index })?;
        Ok(Message::from_proto(m)?)
    }

    /// Reads the applied queue state (`None` before the group's creation is applied).
    pub fn with_state<R>(&self, f: impl FnOnce(&QueueState<u64>) -> R) -> Option<R> {
        self.inner.shared.core.lock().state.as_ref().map(f)
    }

    /// The index of the last log entry this replica applied (`None` before any).
    pub fn applied_index(&self) -> Option<u64> {
        self.inner.shared.core.lock().applied_index()
    }

    /// The state shared with the group's state machine and log adapter.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<QueueShared> {
        &self.inner.shared
    }

    /// Snapshots the queue now and compacts its log (normally automatic).
    pub async fn snapshot(&self) -> Result<(), ClusterError> {
        self.inner.snapshot_and_purge().await
    }

    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        self.inner.handle.shutdown().await
    }
}

impl<S: LogStore> Inner<S> {
    /// Snapshots the queue and purges its log when that is due: once the
    /// log holds a quarter of the queue's live messages (at least
    /// [`SNAPSHOT_MIN_ENTRIES`]) beyond the last snapshot, so the snapshot
    /// (the size of the backlog) costs a bounded amount per entry and a
    /// restart replays at most that much; and once the queue holds nothing
    /// (every message settled), at most every [`DRAINED_COMPACTION_EVERY`],
    /// so a drained queue does not keep its last bodies on disk until more
    /// traffic comes. The snapshot of an empty queue is a few bytes.
    fn compact(self: &Arc<Self>) {
        let unsnapshotted = self.handle.unsnapshotted();
        if unsnapshotted == 0 {
            return;
        }
        let (drained, live) = self.live();
        let due = unsnapshotted >= SNAPSHOT_MIN_ENTRIES.max(live / 4);
        if !drained && !due {
            return;
        }
        let wait = {
            let mut c = self.compaction.lock();
            if c.scheduled {
                return;
            }
            c.scheduled = true;
            match c.last {
                Some(t) if !due => DRAINED_COMPACTION_EVERY.saturating_sub(t.elapsed()),
                _ => Duration::ZERO,
            }
        };
        let group = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(inner) = group.upgrade() else { return };
            let r = if inner.handle.unsnapshotted() > 0 {
                inner.snapshot_and_purge().await
            } else {
                Ok(())
            };
            {
                let mut c = inner.compaction.lock();
                c.scheduled = false;
                c.last = Some(Instant::now());
            }
            match r {
                // Entries appended while it ran may be due too (an idle
                // leader proposes nothing that would look again).
                Ok(()) => inner.compact(),
                Err(e) => {
                    tracing::debug!(group = inner.handle.group, error = %e, "queue log compaction");
                }
            }
        });
    }

    /// Snapshots the queue and purges its log as far as
    /// `GroupHandle::build_snapshot` says. The bodies of messages still
    /// queued in the purged range are copied out of the log here first,
    /// outside the Raft core, which runs the purge itself (see
    /// `QueueShared::keep_live_bodies`).
    async fn snapshot_and_purge(&self) -> Result<(), ClusterError> {
        let Some(upto) = self.handle.build_snapshot().await? else {
            return Ok(());
        };
        let group = self.handle.group;
        self.shared
            .keep_live_bodies(&self.store, group, self.handle.purged(), upto, true)
            .await
            .map_err(|e| ClusterError::Raft(format!("group {group}: keeping bodies: {e}")))?;
        self.handle.purge(upto).await
    }

    /// Whether the queue holds nothing, and how many messages it holds.
    fn live(&self) -> (bool, u64) {
        let core = self.shared.core.lock();
        match core.state.as_ref() {
            Some(s) => {
                let live = s.message_count() + s.unacked_count();
                (live == 0, live)
            }
            None => (false, 0),
        }
    }

    /// An answer naming messages (a basic.get's, a dead-lettering effect)
    /// is handed over once this replica has applied the command's entry
    /// (`index`), so the bodies it names are in the log here: the leader
    /// answers once a majority has the entry, which need not include this
    /// node. Other answers go at once.
    async fn readable_here(&self, index: u64, answer: Applied) -> Applied {
        let names_messages = match &answer {
            Ok((reply, effects)) => matches!(reply, Reply::GetOk { .. }) || !effects.is_empty(),
            Err(_) => false,
        };
        if names_messages && self.handle.has_peers() {
            self.handle.wait_applied(index, READABLE_WAIT).await?;
        }
        answer
    }

    /// Decodes a committed command's result; an enqueued message goes to
    /// the body cache first, so its delivery finds it there.
    fn answer(
        &self,
        index: u64,
        result: pb::QueueResult,
        enqueued: Option<Message>,
    ) -> Result<(Reply<u64>, Vec<Effect<u64>>), ClusterError> {
        let reply = Reply::from_proto(required(result.reply, "queue_result.reply")?)?;
        let mut effects = result
            .effects
            .into_iter()
            .map(Effect::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        if self.handle.has_peers() {
            // Each replica executes those of its own owners (LocalEffects).
            effects.retain(|e| effect_owner(e).is_none());
        }
        if let (Some(msg), Reply::Enqueued { .. }) = (enqueued, &reply) {
            let mut cache = self.cache.lock();
            cache.insert(index, msg);
            while cache.len() > BODY_CACHE {
                cache.pop_first();
            }
        }
        Ok((reply, effects))
    }
}

/// How often at most a replica that does not lead checks whether its log
/// is due for compaction (the leader checks after each of its proposals).
const FOLLOWER_COMPACTION_EVERY: Duration = Duration::from_secs(1);

/// Compacts a replica's log while it follows: nothing it proposes
/// triggers [`Inner::compact`] there. Woken by the replica's progress
/// (appends, applies), at most every [`FOLLOWER_COMPACTION_EVERY`]: an
/// idle replica costs nothing.
async fn follower_compaction<S: LogStore>(group: Weak<Inner<S>>) {
    let Some(mut progress) = group.upgrade().map(|g| g.handle.data_changes()) else {
        return;
    };
    while progress.changed().await.is_ok() {
        let Some(inner) = group.upgrade() else { return };
        if !inner.handle.is_leader() {
            inner.compact();
        }
        drop(inner);
        tokio::time::sleep(FOLLOWER_COMPACTION_EVERY).await;
    }
}

/// Hands submitted commands to Raft in batches, in order: everything
/// submitted while the previous batch was being handed over goes next.
/// Answers are collected by one task per batch, so batches pipeline.
async fn proposer<S: LogStore>(group: Weak<Inner<S>>, mut rx: mpsc::UnboundedReceiver<Submitted>) {
    let mut batch: Vec<Submitted> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(inner) = group.upgrade() else { return };
        let mut reqs = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for (cmd, tx) in batch.drain(..) {
            let enqueued = match &cmd {
                Command::Enqueue { msg, .. } => Some(msg.clone()),
                _ => None,
            };
            let op = QueueOp::Command(cmd);
            reqs.push(proposal(pb::proposal::Command::Queue(op.into_proto())));
            waiting.push((enqueued, tx));
        }
        let mut answers = match inner.handle.propose_many(reqs).await {
            Ok(stream) => stream,
            Err(e) => {
                for (_, tx) in waiting {
                    let _ = tx.send(Err(ClusterError::Raft(e.to_string())));
                }
                continue;
            }
        };
        tokio::spawn(async move {
            for (enqueued, tx) in waiting {
                let answer = match answers.next().await {
                    Some(Ok((index, resp))) => {
                        let answer = pb::QueueResult::decode(resp.0)
                            .map_err(|e| crate::convert::DecodeError::from(e).into())
                            .and_then(|result| inner.answer(index, result, enqueued));
                        inner.readable_here(index, answer).await
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(ClusterError::Raft("batch answer missing".into())),
                };
                let _ = tx.send(answer);
            }
            inner.compact();
        });
    }
}
