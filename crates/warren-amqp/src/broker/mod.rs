//! The broker: metadata (a `warren_core::meta::MetaState` behind a lock), the
//! registry of queue actors, and routing from exchanges to queues.
//!
//! With a durable [`Backend`] every metadata change is first committed there
//! (serialised by `meta_serial`, so the backend and the copy here apply the
//! same sequence), and durable queues run on the backend's replicated logs.
//! Without one, everything lives in memory.
//!
//! Every method holds the metadata lock only for synchronous work, never
//! across an `.await`. Lock order, where both are taken: `meta_serial`
//! (async, may be held across the backend's commit), `meta`, then `queues`.
//! No queue actor is called while `meta_serial` is held (actors take it
//! when they delete themselves).
//!
//! Split by operation: `registry` (declaring, finding and deleting queues,
//! and starting their actors), `routing` (exchanges to queues, and
//! dead-lettering), and `cluster` (following the other nodes' changes, and
//! queues held elsewhere).

pub mod backend;
mod cluster;
pub mod deadletter;
pub mod events;
pub mod limiter;
pub mod memory;
pub mod queue;
mod registry;
mod remote;
pub mod reply_to;
mod routing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use warren_core::meta::{
    Access, BindingDef, ExchangeDef, MetaCommand, MetaReply, MetaState, QueueDef, ResourceKind,
    User,
};
use warren_core::queue::{OwnerId, QueueConfig};

use crate::config::ServerConfig;
use crate::error::{AmqpError, code};
use backend::{Backend, QueueLog, StoreError};
use cluster::{follow, watch_nodes_down};
use queue::{DeleteIf, QueueHandle, QueueRequest};

type QueueKey = (String, String);

/// A metadata write guard that bumps the topology generation when dropped.
struct MetaWrite<'a> {
    guard: parking_lot::RwLockWriteGuard<'a, MetaState>,
    broker: &'a Broker,
}

impl std::ops::Deref for MetaWrite<'_> {
    type Target = MetaState;
    fn deref(&self) -> &MetaState {
        &self.guard
    }
}

impl std::ops::DerefMut for MetaWrite<'_> {
    fn deref_mut(&mut self) -> &mut MetaState {
        &mut self.guard
    }
}

impl Drop for MetaWrite<'_> {
    fn drop(&mut self) {
        self.broker.topology_changed();
    }
}

/// The broker a node's AMQP connections share.
pub struct Broker {
    meta: RwLock<MetaState>,
    queues: RwLock<BTreeMap<QueueKey, QueueHandle>>,
    config: ServerConfig,
    next_id: AtomicU64,
    reply_to: reply_to::ReplyTo,
    memory: memory::MemoryAlarm,
    /// Bumped by every change that can change a routing result (metadata
    /// changes, queues created or removed); channels cache routes under it.
    topology: AtomicU64,
    /// Where metadata and durable queues are kept (`None`: memory only).
    backend: Option<Arc<dyn Backend>>,
    /// Serialises metadata changes (see the module doc), and holds what
    /// following a cluster's changes needs (see `cluster::Follow`).
    meta_serial: tokio::sync::Mutex<cluster::Follow>,
    /// The backend is a cluster: other nodes change the metadata too.
    clustered: bool,
    me: Weak<Broker>,
}

fn store_error(e: StoreError) -> AmqpError {
    tracing::error!(error = %e, "the store refused a change");
    AmqpError::new(code::INTERNAL_ERROR, format!("store failure: {e}"))
}

/// Whether a queue lives in a log: a durable, non-exclusive queue
/// (quorum by default, or classic: a group of one either way), and in a
/// cluster a non-durable, non-exclusive one too: a group of one on the
/// node that declared it, so that clients on every node can use it
/// (publishes are handed over, consumers read its log), deleted when that
/// node restarts. An exclusive queue lives in its connection's node's
/// memory.
fn in_log(def: &QueueDef, clustered: bool) -> bool {
    def.exclusive_owner.is_none() && (def.durable || clustered)
}

/// The queue logs the backend holds, by the queue each one holds.
fn logs_by_queue(backend: &dyn Backend) -> BTreeMap<QueueKey, Arc<dyn QueueLog>> {
    backend
        .queues()
        .into_iter()
        .map(|log| (log.identity(), log))
        .collect()
}

/// What queue.declare answers.
#[derive(Debug, Clone)]
pub struct Declared {
    pub name: String,
    pub message_count: u64,
    pub consumer_count: u32,
}

impl Broker {
    /// A broker over the given metadata; starts an actor for each queue in it.
    pub fn new(meta: MetaState, config: ServerConfig) -> Arc<Broker> {
        let broker = Self::empty(config, None, cluster::Follow::default());
        broker.install(meta);
        broker
    }

    fn empty(
        config: ServerConfig,
        backend: Option<Arc<dyn Backend>>,
        follow: cluster::Follow,
    ) -> Arc<Broker> {
        let watermark = config.memory_high_watermark;
        // Owner ids (connections, channels) start past any a previous run
        // could have left in a durable queue's state, and carry the node.
        const EPOCH_2020_S: u64 = 1_577_836_800;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64)
            .saturating_sub(EPOCH_2020_S * 1_000_000);
        let first_id = OwnerId::on_node(config.node_id, micros.max(1)).0;
        Arc::new_cyclic(|me| Broker {
            meta: RwLock::new(MetaState::new()),
            queues: RwLock::new(BTreeMap::new()),
            config,
            next_id: AtomicU64::new(first_id.max(1)),
            reply_to: reply_to::ReplyTo::default(),
            memory: memory::MemoryAlarm::new(watermark),
            topology: AtomicU64::new(1),
            clustered: backend.as_ref().is_some_and(|b| b.changes().is_some()),
            backend,
            meta_serial: tokio::sync::Mutex::new(follow),
            me: me.clone(),
        })
    }

    /// A broker over a durable backend: what it committed comes back. What
    /// does not outlive a restart in RabbitMQ is removed first (non-durable
    /// and exclusive queues, non-durable exchanges), then every durable
    /// queue's actor starts on its log (unsettled messages of the previous
    /// run go back to their queues, redelivered).
    pub async fn open(
        backend: Arc<dyn Backend>,
        config: ServerConfig,
    ) -> Result<Arc<Broker>, AmqpError> {
        let meta = backend.meta();
        let clustered = backend.changes().is_some();
        let node = config.node_id;
        // In a cluster only this node's exclusive queues, and the
        // non-durable queues whose log (a group of one) is here, died with
        // it; other nodes' transient queues and exchanges live on.
        let held_here: BTreeSet<QueueKey> = if clustered {
            logs_by_queue(backend.as_ref()).into_keys().collect()
        } else {
            BTreeSet::new()
        };
        let gone_with_node = |vhost: &str, d: &QueueDef| {
            if !clustered {
                return !in_log(d, false);
            }
            match d.exclusive_owner {
                Some(o) => OwnerId(o).node() == node,
                None => !d.durable && held_here.contains(&(vhost.to_string(), d.name.clone())),
            }
        };
        let mut transient = Vec::new();
        let mut dropped_here = BTreeSet::new();
        for vhost in meta.vhosts() {
            for def in meta.queues(vhost).filter(|d| gone_with_node(vhost, d)) {
                dropped_here.insert((vhost.to_string(), def.name.clone()));
                transient.push(MetaCommand::DeleteQueue {
                    vhost: vhost.to_string(),
                    name: def.name.clone(),
                });
            }
            for def in meta.exchanges(vhost).filter(|d| !d.durable && !clustered) {
                transient.push(MetaCommand::DeleteExchange {
                    vhost: vhost.to_string(),
                    name: def.name.clone(),
                    if_unused: false,
                });
            }
        }
        for cmd in transient {
            // An exchange already removed by a cascade answers 404: fine.
            let _ = backend.meta_apply(cmd).await.map_err(store_error)?;
        }
        // In a cluster the broker follows the node's changes from here on
        // (see `cluster::Follow`).
        let (meta, mut logs, following) = match backend.follow() {
            Some(f) => {
                let logs: BTreeMap<QueueKey, Arc<dyn QueueLog>> =
                    f.logs.into_iter().map(|l| (l.identity(), l)).collect();
                let follow = cluster::Follow::new(f.feed, logs.clone());
                (f.meta, logs, follow)
            }
            None => (
                backend.meta(),
                logs_by_queue(backend.as_ref()),
                cluster::Follow::default(),
            ),
        };
        let broker = Self::empty(config, Some(backend.clone()), following);
        {
            let mut queues = Vec::new();
            for vhost in meta.vhosts() {
                for def in meta.queues(vhost) {
                    let key = (vhost.to_string(), def.name.clone());
                    let config = QueueConfig::from_arguments(&def.arguments).unwrap_or_default();
                    if clustered {
                        // Queues whose log is elsewhere (or not here yet)
                        // are picked up as the node's changes come in.
                        if let Some(log) = logs.remove(&key) {
                            queues.push((key, def.clone(), config, log));
                        }
                        continue;
                    }
                    let log = match logs.remove(&key) {
                        Some(log) => log,
                        // Declared, then the node stopped before its log existed.
                        None => backend
                            .create_queue(vhost, &def.name, config.clone(), def.declared_replicas())
                            .await
                            .map_err(store_error)?,
                    };
                    queues.push((key, def.clone(), config, log));
                }
            }
            *broker.meta.write() = meta.clone();
            let mut registry = broker.queues.write();
            for ((vhost, name), def, config, log) in queues {
                let h = broker.spawn_queue_with(&vhost, &def, config, Some(log));
                registry.insert((vhost, name), h);
            }
            broker.topology_changed();
        }
        // Logs whose queue was deleted before the node stopped. In a
        // cluster this node's metadata may not have caught up yet: a log
        // is only removed once the queue is seen going (see `follow`).
        for (key, log) in logs {
            if clustered && !dropped_here.contains(&key) {
                tracing::info!(vhost = %key.0, queue = %key.1, "a queue log with no queue in the metadata yet");
                continue;
            }
            tracing::info!(vhost = %key.0, queue = %key.1, "removing the log of a deleted queue");
            backend.delete_queue(log).await.map_err(store_error)?;
        }
        if let Some(changes) = backend.changes() {
            tokio::spawn(follow(Arc::downgrade(&broker), changes));
        }
        if let Some(down) = backend.nodes_down() {
            tokio::spawn(watch_nodes_down(Arc::downgrade(&broker), down));
        }
        Ok(broker)
    }

    /// Applies a metadata change: committed to the backend first (if any),
    /// then to the copy here. Returns the machine's answer.
    async fn commit(&self, cmd: MetaCommand) -> Result<MetaReply, AmqpError> {
        let Some(backend) = &self.backend else {
            return Ok(self.meta_write().apply(cmd)?);
        };
        let mut serial = self.meta_serial.lock().await;
        self.commit_serialised(backend, &mut serial, cmd).await
    }

    /// [`Self::commit`] with `meta_serial` already held (`follow` is what
    /// it guards).
    async fn commit_serialised(
        &self,
        backend: &Arc<dyn Backend>,
        follow: &mut cluster::Follow,
        cmd: MetaCommand,
    ) -> Result<MetaReply, AmqpError> {
        // Redeclaring what exists changes nothing: answer it here, with no
        // round through the log.
        let exists = {
            let m = self.meta.read();
            match &cmd {
                MetaCommand::DeclareExchange { vhost, def } => {
                    m.exchange(vhost, &def.name).is_some()
                }
                MetaCommand::DeclareQueue { vhost, def } => m.queue(vhost, &def.name).is_some(),
                _ => false,
            }
        };
        if exists {
            return Ok(self.meta.write().apply(cmd)?);
        }
        let decided = backend.meta_apply(cmd.clone()).await.map_err(store_error)?;
        if self.clustered() {
            // Other nodes change it too: the copy here follows the node's
            // feed, which holds this change by now (queues it makes or
            // removes are seen to by `follow`, once this change is done).
            self.absorb(follow);
            return Ok(decided?);
        }
        let here = self.meta_write().apply(cmd);
        if here.is_ok() != decided.is_ok() {
            tracing::error!(?decided, ?here, "metadata copy diverged from the store");
        }
        Ok(decided?)
    }

    /// Replaces the metadata (at boot) and starts actors for its queues.
    fn install(&self, meta: MetaState) {
        let mut m = self.meta_write();
        *m = meta;
        let mut queues = self.queues.write();
        for vhost in m.vhosts() {
            for def in m.queues(vhost) {
                let handle = self.spawn_queue(vhost, def);
                queues.insert((vhost.to_string(), def.name.clone()), handle);
            }
        }
    }

    /// Applies RabbitMQ definitions (users, vhosts, permissions, exchanges, queues, bindings).
    pub async fn load_definitions(&self, json: &str) -> Result<(), AmqpError> {
        let cmds = warren_core::meta::definitions_from_json(json)?;
        for cmd in cmds {
            match cmd {
                MetaCommand::DeclareQueue { vhost, def } => {
                    self.declare_queue(&vhost, def).await?;
                }
                cmd => {
                    self.commit(cmd).await?;
                }
            }
        }
        Ok(())
    }

    /// Direct reply-to consumers.
    pub fn reply_to(&self) -> &reply_to::ReplyTo {
        &self.reply_to
    }

    /// Write access to the metadata; the topology generation moves on when
    /// the access ends, so cached routes are recomputed.
    fn meta_write(&self) -> MetaWrite<'_> {
        MetaWrite {
            guard: self.meta.write(),
            broker: self,
        }
    }

    /// The current topology generation (see the field).
    pub fn topology_generation(&self) -> u64 {
        self.topology.load(Ordering::Acquire)
    }

    fn topology_changed(&self) {
        self.topology.fetch_add(1, Ordering::AcqRel);
    }

    /// Bytes held by queues, and the publisher-blocking alarm.
    pub fn memory(&self) -> &memory::MemoryAlarm {
        &self.memory
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether the backend is a cluster (other nodes change the metadata).
    fn clustered(&self) -> bool {
        self.clustered
    }

    /// Whether the queue `def` lives in a log here (see [`in_log`]).
    fn logged(&self, def: &QueueDef) -> bool {
        in_log(def, self.clustered())
    }

    /// A fresh id for a connection or a channel (an `OwnerId`).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn authenticate(&self, user: &str, password: &str) -> Option<User> {
        self.meta.read().authenticate(user, password).cloned()
    }

    pub fn user_exists(&self, user: &str) -> bool {
        self.meta.read().user(user).is_some()
    }

    pub fn check_vhost_access(&self, user: &str, vhost: &str) -> Result<(), AmqpError> {
        let m = self.meta.read();
        if !m.vhost_exists(vhost) {
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format!("vhost {vhost} not found"),
            ));
        }
        Ok(m.check_vhost_access(user, vhost)?)
    }

    pub fn check_permission(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), AmqpError> {
        Ok(self
            .meta
            .read()
            .check_permission(user, vhost, access, kind, name)?)
    }

    pub fn exchange(&self, vhost: &str, name: &str) -> Option<ExchangeDef> {
        self.meta.read().exchange(vhost, name).cloned()
    }

    pub async fn declare_exchange(&self, vhost: &str, def: ExchangeDef) -> Result<(), AmqpError> {
        self.commit(MetaCommand::DeclareExchange {
            vhost: vhost.to_string(),
            def,
        })
        .await?;
        Ok(())
    }

    pub async fn delete_exchange(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<(), AmqpError> {
        let reply = self
            .commit(MetaCommand::DeleteExchange {
                vhost: vhost.to_string(),
                name: name.to_string(),
                if_unused,
            })
            .await?;
        self.stop_cascaded(reply).await;
        Ok(())
    }

    pub async fn bind(&self, vhost: &str, binding: BindingDef) -> Result<(), AmqpError> {
        self.commit(MetaCommand::Bind {
            vhost: vhost.to_string(),
            binding,
        })
        .await?;
        Ok(())
    }

    pub async fn unbind(&self, vhost: &str, binding: BindingDef) -> Result<(), AmqpError> {
        let reply = self
            .commit(MetaCommand::Unbind {
                vhost: vhost.to_string(),
                binding,
            })
            .await?;
        self.stop_cascaded(reply).await;
        Ok(())
    }

    /// Queues a metadata change removed as a side effect stop their actors
    /// (a durable one's log is deleted with it).
    async fn stop_cascaded(&self, reply: MetaReply) {
        if let MetaReply::Deleted(list) = reply {
            let removed: Vec<QueueHandle> = {
                let mut queues = self.queues.write();
                list.iter().filter_map(|key| queues.remove(key)).collect()
            };
            for h in removed {
                // The actor finds itself gone from the registry: it only
                // stops (and drops its log).
                let _ = h
                    .call(|reply| QueueRequest::Delete {
                        cond: DeleteIf::default(),
                        reply,
                    })
                    .await;
            }
        }
    }
}
