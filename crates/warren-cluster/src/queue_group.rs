//! `QueueGroup`: one durable queue as a Raft group, driven through its
//! proposer API. The proposer stamps the time, the state machine decides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message as _;
use warren_core::message::Message;
use warren_core::queue::{Command, Effect, QueueState, Reply};
use warren_rpc::log as pb;
use warren_storage::{GroupId, LogStore, RocksStore};

use crate::ClusterError;
use crate::convert::{FromProto, IntoProto, QueueOp, required};
use crate::raft::{GroupHandle, QueueMachine, QueueShared, Request, read_message};

/// Bodies of the most recent enqueues kept in memory: consumers that keep up
/// are served without reading the log back.
const BODY_CACHE: usize = 1024;

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
    ) -> Self {
        QueueGroup {
            inner: Arc::new(Inner {
                store,
                handle,
                shared,
                cache: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub fn group(&self) -> GroupId {
        self.inner.handle.group
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
    /// Only this proposer sees the effects, so only it executes them.
    pub async fn apply(
        &self,
        cmd: Command<Message>,
    ) -> Result<(Reply<u64>, Vec<Effect<u64>>), ClusterError> {
        let enqueued = match &cmd {
            Command::Enqueue { msg, .. } => Some(msg.clone()),
            _ => None,
        };
        let (index, result) = self.propose(QueueOp::Command(cmd)).await?;
        let reply = Reply::from_proto(required(result.reply, "queue_result.reply")?)?;
        let effects = result
            .effects
            .into_iter()
            .map(Effect::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        if let (Some(msg), Reply::Enqueued { .. }) = (enqueued, &reply) {
            let mut cache = self.inner.cache.lock();
            cache.insert(index, msg);
            while cache.len() > BODY_CACHE {
                cache.pop_first();
            }
        }
        Ok((reply, effects))
    }

    /// The message enqueued at log `index`: from the cache of recent
    /// enqueues, else from the log, else from the store's bodies.
    pub async fn body(&self, index: u64) -> Result<Message, ClusterError> {
        if let Some(m) = self.inner.cache.lock().get(&index) {
            return Ok(m.clone());
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

    /// Snapshots the queue now and compacts its log (normally automatic).
    pub async fn snapshot(&self) -> Result<(), ClusterError> {
        self.inner.handle.snapshot().await
    }

    pub(crate) async fn shutdown(&self) -> Result<(), ClusterError> {
        self.inner.handle.shutdown().await
    }
}
