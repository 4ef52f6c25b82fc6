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

pub mod backend;
pub mod deadletter;
pub mod events;
pub mod limiter;
pub mod memory;
pub mod queue;
mod remote;
pub mod reply_to;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use warren_core::message::Message;
use warren_core::meta::{
    Access, BindingDef, ExchangeDef, MetaCommand, MetaReply, MetaState, QueueDef, ResourceKind,
    User,
};
use warren_core::queue::{DeadLetterReason, OwnerId, QueueConfig};
use warren_core::value::Table;

use crate::config::ServerConfig;
use crate::error::{AmqpError, code};
use backend::{Backend, QueueLog, StoreError};
use deadletter::DeadLetterTarget;
use queue::{DeleteIf, QueueHandle, QueueRequest, QueueSpawn};

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
    /// Serialises metadata changes (see the module doc).
    meta_serial: tokio::sync::Mutex<()>,
    /// The backend is a cluster: other nodes change the metadata too.
    clustered: bool,
    me: Weak<Broker>,
}

fn store_error(e: StoreError) -> AmqpError {
    tracing::error!(error = %e, "the store refused a change");
    AmqpError::new(code::INTERNAL_ERROR, format!("store failure: {e}"))
}

/// Whether a queue lives in a durable log: durable and not exclusive
/// (quorum by default, or classic: a group of one either way).
fn is_durable_queue(def: &QueueDef) -> bool {
    def.durable && def.exclusive_owner.is_none()
}

/// The queue logs the backend holds, by the queue each one holds.
fn logs_by_queue(backend: &dyn Backend) -> BTreeMap<QueueKey, Arc<dyn QueueLog>> {
    backend
        .queues()
        .into_iter()
        .map(|log| (log.identity(), log))
        .collect()
}

/// Follows the backend's changes (a cluster's metadata, this node's logs)
/// until the broker is gone.
async fn follow(broker: Weak<Broker>, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        {
            let Some(b) = broker.upgrade() else { return };
            b.sync_with_backend().await;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Tells every queue which nodes are down, each time that changes (and
/// again every [`NODES_DOWN_REPEAT`] while any is, for queues whose
/// replica arrived later).
async fn watch_nodes_down(
    broker: Weak<Broker>,
    mut down: tokio::sync::watch::Receiver<std::collections::BTreeSet<u64>>,
) {
    loop {
        let nodes = Arc::new(down.borrow_and_update().clone());
        if !nodes.is_empty() {
            let Some(b) = broker.upgrade() else { return };
            b.drop_exclusive_queues_of(&nodes).await;
            let queues: Vec<QueueHandle> = b.queues.read().values().cloned().collect();
            drop(b);
            for q in queues {
                q.send_now(QueueRequest::NodesDown {
                    nodes: nodes.clone(),
                });
            }
        }
        let repeat = tokio::time::sleep(NODES_DOWN_REPEAT);
        tokio::select! {
            changed = down.changed() => if changed.is_err() { return },
            () = repeat, if !nodes.is_empty() => {}
        }
    }
}

/// See [`watch_nodes_down`].
const NODES_DOWN_REPEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a declaration of a queue made on another node waits for the
/// queue's log to appear on this one.
const REMOTE_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a node may take to start reading a durable queue held by
/// other nodes (see `Broker::attach`).
const ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

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
        let broker = Self::empty(config, None);
        broker.install(meta);
        broker
    }

    fn empty(config: ServerConfig, backend: Option<Arc<dyn Backend>>) -> Arc<Broker> {
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
            meta_serial: tokio::sync::Mutex::new(()),
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
        // In a cluster only this node's exclusive queues died with it;
        // other nodes' transient queues and exchanges live on.
        let gone_with_node = |d: &QueueDef| {
            !clustered || d.exclusive_owner.is_some_and(|o| OwnerId(o).node() == node)
        };
        let mut transient = Vec::new();
        for vhost in meta.vhosts() {
            for def in meta
                .queues(vhost)
                .filter(|d| !is_durable_queue(d) && gone_with_node(d))
            {
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
        let meta = backend.meta();
        let mut logs = logs_by_queue(backend.as_ref());
        let broker = Self::empty(config, Some(backend.clone()));
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
            if clustered {
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

    /// In a cluster: brings this broker up to the committed metadata (made
    /// on any node) and the queue logs this node holds. Queues that
    /// appeared with a log here get an actor; queues that went have theirs
    /// stopped (which deletes the log here).
    async fn sync_with_backend(&self) {
        let Some(backend) = &self.backend else { return };
        let stopped: Vec<QueueHandle> = {
            let _serial = self.meta_serial.lock().await;
            let meta = backend.meta();
            let mut logs = logs_by_queue(backend.as_ref());
            let mut stopped = Vec::new();
            {
                let mut queues = self.queues.write();
                queues.retain(|(vhost, name), h| {
                    let keep = meta.queue(vhost, name).is_some();
                    if !keep {
                        stopped.push(h.clone());
                    }
                    keep
                });
                for vhost in meta.vhosts() {
                    for def in meta.queues(vhost) {
                        let key = (vhost.to_string(), def.name.clone());
                        let proxy = match queues.get(&key) {
                            Some(h) if !h.is_remote() => continue,
                            Some(_) => true,
                            None => false,
                        };
                        if let Some(owner) = def.exclusive_owner {
                            let node = OwnerId(owner).node();
                            if node != self.config.node_id && !proxy {
                                let h = remote::spawn(
                                    backend.clone(),
                                    remote::Holder::Node(node),
                                    vhost,
                                    &def.name,
                                    self.config.queue_mailbox,
                                );
                                queues.insert(key, h);
                            }
                            continue;
                        }
                        if !is_durable_queue(def) {
                            // A transient queue of another node: not
                            // reachable from here yet.
                            continue;
                        }
                        if let Some(log) = logs.remove(&key) {
                            // The log is here (a replica, or this node
                            // reads it): an actor, in place of the proxy.
                            let config =
                                QueueConfig::from_arguments(&def.arguments).unwrap_or_default();
                            let h = self.spawn_queue_with(vhost, def, config, Some(log));
                            if let Some(old) = queues.insert(key, h) {
                                stopped.push(old);
                            }
                        } else if !proxy && self.clustered() {
                            // Held by other nodes only: publishes are handed
                            // to one of them.
                            let h = remote::spawn(
                                backend.clone(),
                                remote::Holder::Replica,
                                vhost,
                                &def.name,
                                self.config.queue_mailbox,
                            );
                            queues.insert(key, h);
                        }
                    }
                }
            }
            *self.meta_write() = meta;
            stopped
        };
        for h in stopped {
            // Out of the registry: the actor only stops and deletes its log
            // here (the queue went on another node); a proxy just stops.
            let (reply, _) = tokio::sync::oneshot::channel();
            h.send_now(QueueRequest::Delete {
                cond: DeleteIf::default(),
                reply,
            });
        }
    }

    /// Applies a metadata change: committed to the backend first (if any),
    /// then to the copy here. Returns the machine's answer.
    async fn commit(&self, cmd: MetaCommand) -> Result<MetaReply, AmqpError> {
        let Some(backend) = &self.backend else {
            return Ok(self.meta_write().apply(cmd)?);
        };
        let _serial = self.meta_serial.lock().await;
        self.commit_serialised(backend, cmd).await
    }

    /// [`Self::commit`] with `meta_serial` already held.
    async fn commit_serialised(
        &self,
        backend: &Arc<dyn Backend>,
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
            // Other nodes change it too: the committed state is the copy.
            *self.meta_write() = backend.meta();
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

    /// queue.declare (non-passive); an exclusive queue names its connection in `def`.
    pub async fn declare_queue(&self, vhost: &str, def: QueueDef) -> Result<Declared, AmqpError> {
        let config = QueueConfig::from_declare(&def.arguments, vhost, &def.name)?;
        let name = def.name.clone();
        let key = (vhost.to_string(), name.clone());
        let cmd = MetaCommand::DeclareQueue {
            vhost: vhost.to_string(),
            def: def.clone(),
        };
        let handle = match &self.backend {
            None => {
                let mut m = self.meta_write();
                let reply = m.apply(cmd)?;
                let mut queues = self.queues.write();
                match (reply, queues.get(&key)) {
                    (MetaReply::Existed, Some(h)) => h.clone(),
                    _ => {
                        let h = self.spawn_queue_with(vhost, &def, config, None);
                        queues.insert(key, h.clone());
                        h
                    }
                }
            }
            Some(backend) => {
                let serial = self.meta_serial.lock().await;
                let reply = self.commit_serialised(backend, cmd).await?;
                let existing = self.queues.read().get(&key).cloned();
                match (reply, existing) {
                    (MetaReply::Existed, Some(h)) if h.is_remote() && is_durable_queue(&def) => {
                        drop(serial);
                        self.attach(vhost, &name).await?
                    }
                    (MetaReply::Existed, Some(h)) => h,
                    (MetaReply::Existed, None) if self.clustered() => {
                        // Declared on another node: its log reaches this
                        // one a moment later (or lives elsewhere only).
                        drop(serial);
                        self.wait_for_local_queue(vhost, &def).await?
                    }
                    _ => {
                        let log = if is_durable_queue(&def) {
                            let replicas = def.declared_replicas();
                            match backend
                                .create_queue(vhost, &name, config.clone(), replicas)
                                .await
                            {
                                Ok(log) => Some(log),
                                Err(e) => {
                                    // Undo the declaration: no queue without its log.
                                    let undo = MetaCommand::DeleteQueue {
                                        vhost: vhost.to_string(),
                                        name: name.clone(),
                                    };
                                    let _ = self.commit_serialised(backend, undo).await;
                                    return Err(store_error(e));
                                }
                            }
                        } else {
                            None
                        };
                        let h = self.spawn_queue_with(vhost, &def, config, log);
                        self.queues.write().insert(key, h.clone());
                        self.topology_changed();
                        h
                    }
                }
            }
        };
        self.stats(&handle).await
    }

    /// In a cluster: the actor of a queue declared on another node, once
    /// its log is here. A durable queue this node holds no replica of is
    /// read here (see [`Self::attach`]). A transient queue of another node
    /// cannot be used from here yet: that is refused rather than shadowed.
    async fn wait_for_local_queue(
        &self,
        vhost: &str,
        def: &QueueDef,
    ) -> Result<QueueHandle, AmqpError> {
        let key = (vhost.to_string(), def.name.clone());
        let deadline = tokio::time::Instant::now() + REMOTE_QUEUE_WAIT;
        loop {
            let found = self.queues.read().get(&key).cloned();
            if let Some(h) = found {
                if !h.is_remote() {
                    return Ok(h);
                }
                if is_durable_queue(def) && def.exclusive_owner.is_none() {
                    return self.attach(vhost, &def.name).await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AmqpError::new(
                    code::NOT_IMPLEMENTED,
                    format!(
                        "queue '{}' in vhost '{vhost}' is a transient queue of another node \
                         of the cluster: connect to that node",
                        def.name
                    ),
                ));
            }
            if is_durable_queue(def) {
                self.sync_with_backend().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// In a cluster: makes this node read the log of the durable queue
    /// `vhost`/`name` that it holds no replica of (it joins the queue's
    /// group as a reader; see the backend), and returns the local actor
    /// that then takes the place of the proxy. Consumers and gets are
    /// served here from then on, exactly as on a replica.
    async fn attach(&self, vhost: &str, name: &str) -> Result<QueueHandle, AmqpError> {
        let unavailable = |why: String| {
            AmqpError::new(
                code::NOT_FOUND,
                format!(
                    "queue '{name}' in vhost '{vhost}' is held by other nodes of the cluster, \
                     and none could be reached: {why}"
                ),
            )
        };
        let Some(backend) = &self.backend else {
            return Err(unavailable("no cluster".into()));
        };
        let key = (vhost.to_string(), name.to_string());
        // A queue just declared on another node may not be found at once
        // (its group starts after the declaration is committed), and one
        // whose replica here is just starting needs no reading: retried.
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        let mut attached = false;
        let mut why = String::new();
        loop {
            self.sync_with_backend().await;
            match self.queues.read().get(&key) {
                Some(h) if !h.is_remote() => return Ok(h.clone()),
                Some(_) => {}
                None => {
                    return Err(AmqpError::new(
                        code::NOT_FOUND,
                        format!("no queue '{name}' in vhost '{vhost}'"),
                    ));
                }
            }
            if !attached {
                match backend.attach_queue(vhost, name).await {
                    Ok(()) => attached = true,
                    Err(e) => why = e.to_string(),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                if attached {
                    why = "its log did not reach this node".into();
                }
                return Err(unavailable(why));
            }
            let pause = if attached { 50 } else { 250 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    /// The queue, as [`Self::queue_for`] finds it, to consume from, get
    /// from, purge or delete: a durable queue held by other nodes is read
    /// here first (see [`Self::attach`]).
    pub async fn queue_to_use(
        &self,
        vhost: &str,
        name: &str,
        conn: u64,
    ) -> Result<QueueHandle, AmqpError> {
        let h = self.queue_for(vhost, name, conn)?;
        if h.is_remote()
            && self
                .meta
                .read()
                .queue(vhost, name)
                .is_some_and(is_durable_queue)
        {
            return self.attach(vhost, name).await;
        }
        Ok(h)
    }

    /// queue.declare passive: exists and is accessible to this connection.
    pub async fn declare_queue_passive(
        &self,
        vhost: &str,
        name: &str,
        owner: u64,
    ) -> Result<Declared, AmqpError> {
        let handle = self.queue_to_use(vhost, name, owner).await?;
        self.stats(&handle).await
    }

    async fn stats(&self, handle: &QueueHandle) -> Result<Declared, AmqpError> {
        let (message_count, consumer_count) =
            handle.call(|reply| QueueRequest::Stats { reply }).await?;
        Ok(Declared {
            name: handle.name().to_string(),
            message_count,
            consumer_count,
        })
    }

    /// The queue, if it exists (404) and this connection may use it (405).
    pub fn queue_for(&self, vhost: &str, name: &str, conn: u64) -> Result<QueueHandle, AmqpError> {
        let m = self.meta.read();
        let def = m.queue(vhost, name).ok_or_else(|| {
            AmqpError::new(
                code::NOT_FOUND,
                format!("no queue '{name}' in vhost '{vhost}'"),
            )
        })?;
        if let Some(o) = def.exclusive_owner
            && o != conn
        {
            return Err(AmqpError::new(
                code::RESOURCE_LOCKED,
                format!(
                    "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. \
                     It could be originally declared on another connection or the exclusive \
                     property value does not match that of the original declaration."
                ),
            ));
        }
        let queues = self.queues.read();
        queues
            .get(&(vhost.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                AmqpError::new(
                    code::NOT_FOUND,
                    format!("no queue '{name}' in vhost '{vhost}'"),
                )
            })
    }

    pub async fn delete_queue(
        &self,
        vhost: &str,
        name: &str,
        conn: u64,
        cond: DeleteIf,
    ) -> Result<u64, AmqpError> {
        let handle = self.queue_to_use(vhost, name, conn).await?;
        handle
            .call(|reply| QueueRequest::Delete { cond, reply })
            .await?
    }

    pub async fn purge_queue(&self, vhost: &str, name: &str, conn: u64) -> Result<u64, AmqpError> {
        let handle = self.queue_to_use(vhost, name, conn).await?;
        handle.call(|reply| QueueRequest::Purge { reply }).await
    }

    /// Called by a queue actor that is going away (deleted or auto-deleted):
    /// removes it from the metadata (if it is still the registered queue of
    /// that name) and deletes its log, if it has one.
    pub async fn forget_queue(
        &self,
        vhost: &str,
        name: &str,
        handle: &QueueHandle,
        log: Option<Arc<dyn QueueLog>>,
    ) {
        let key = (vhost.to_string(), name.to_string());
        let cmd = MetaCommand::DeleteQueue {
            vhost: vhost.to_string(),
            name: name.to_string(),
        };
        let reply = match &self.backend {
            None => {
                let mut m = self.meta_write();
                let mut queues = self.queues.write();
                if !queues.get(&key).is_some_and(|h| h.same(handle)) {
                    return;
                }
                queues.remove(&key);
                m.apply(cmd).ok()
            }
            Some(backend) => {
                let _serial = self.meta_serial.lock().await;
                let registered = self.queues.read().get(&key).is_some_and(|h| h.same(handle));
                if registered {
                    let reply = self.commit_serialised(backend, cmd).await;
                    if reply.is_ok() {
                        self.queues.write().remove(&key);
                    }
                    reply.ok()
                } else {
                    None
                }
            }
        };
        if let (Some(log), Some(backend)) = (log, &self.backend)
            && let Err(e) = backend.delete_queue(log).await
        {
            tracing::error!(%vhost, queue = %name, error = %e, "deleting a queue's log failed");
        }
        if let Some(r) = reply {
            self.stop_cascaded(r).await;
        }
    }

    /// A message handed over by another node for a queue this node holds
    /// (see [`remote`]); true once the queue took it.
    pub async fn publish_here(&self, vhost: &str, queue: &str, msg: Message) -> bool {
        let Some(h) = self
            .queues
            .read()
            .get(&(vhost.to_string(), queue.to_string()))
            .cloned()
        else {
            return false;
        };
        if h.is_remote() {
            // Not held here either: never hand a message on twice.
            return false;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let confirm = events::ConfirmTo {
            tx,
            channel: 0,
            seq: 0,
        };
        let req = QueueRequest::Publish {
            msg: Arc::new(msg),
            confirm: Some(confirm),
        };
        if !h.send(req).await {
            return false;
        }
        loop {
            match rx.recv().await {
                Some(events::ConnEvent::Confirm { ok, .. }) => return ok,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Nodes judged down: their connections are gone, and with them their
    /// exclusive queues (as in RabbitMQ). Every live node asks; the first
    /// deletion wins and the others find nothing.
    async fn drop_exclusive_queues_of(&self, nodes: &std::collections::BTreeSet<u64>) {
        let orphans: Vec<(String, String)> = {
            let m = self.meta.read();
            let mut v = Vec::new();
            for vhost in m.vhosts() {
                for def in m.queues(vhost) {
                    if def
                        .exclusive_owner
                        .is_some_and(|o| nodes.contains(&OwnerId(o).node()))
                    {
                        v.push((vhost.to_string(), def.name.clone()));
                    }
                }
            }
            v
        };
        for (vhost, name) in orphans {
            tracing::info!(%vhost, queue = %name, "deleting the exclusive queue of a node judged down");
            let _ = self.commit(MetaCommand::DeleteQueue { vhost, name }).await;
        }
    }

    /// A connection closed: its exclusive queues go with it.
    pub async fn connection_closed(&self, conn: u64) {
        let owned: Vec<QueueHandle> = {
            let m = self.meta.read();
            let queues = self.queues.read();
            let mut owned = Vec::new();
            for vhost in m.vhosts() {
                for def in m.queues(vhost) {
                    if def.exclusive_owner == Some(conn)
                        && let Some(h) = queues.get(&(vhost.to_string(), def.name.clone()))
                    {
                        owned.push(h.clone());
                    }
                }
            }
            owned
        };
        for h in owned {
            let _ = h
                .call(|reply| QueueRequest::Delete {
                    cond: DeleteIf::default(),
                    reply,
                })
                .await;
        }
    }

    /// Routes a publish: appends the target queues to `out`.
    pub fn route(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: Option<&Table>,
        names: &mut Vec<String>,
        out: &mut Vec<QueueHandle>,
    ) -> Result<(), AmqpError> {
        names.clear();
        self.meta
            .read()
            .route(vhost, exchange, routing_key, headers, names)?;
        let queues = self.queues.read();
        let mut key = (vhost.to_string(), String::new());
        for n in names.drain(..) {
            key.1 = n;
            if let Some(h) = queues.get(&key) {
                out.push(h.clone());
            }
        }
        Ok(())
    }

    /// Republishes a message a queue discarded to its dead-letter exchange.
    pub fn dead_letter(
        &self,
        vhost: &str,
        queue: &str,
        target: &DeadLetterTarget,
        msg: &Message,
        reason: DeadLetterReason,
    ) {
        let dl = deadletter::dead_lettered(queue, target, msg, reason);
        let headers = warren_codec::parse_properties(&dl.properties)
            .ok()
            .and_then(|p| p.headers().as_ref().map(crate::convert::table_from_wire));
        let mut names = Vec::new();
        let mut targets = Vec::new();
        if self
            .route(
                vhost,
                &dl.exchange,
                &dl.routing_key,
                headers.as_ref(),
                &mut names,
                &mut targets,
            )
            .is_err()
        {
            return;
        }
        let dl = Arc::new(dl);
        for t in targets {
            // A message expiring back into its own queue would loop forever.
            if t.name() == queue && reason != DeadLetterReason::Rejected {
                continue;
            }
            t.send_now(QueueRequest::Publish {
                msg: dl.clone(),
                confirm: None,
            });
        }
    }

    fn spawn_queue(&self, vhost: &str, def: &QueueDef) -> QueueHandle {
        // Arguments were validated when the queue was declared.
        let config = QueueConfig::from_arguments(&def.arguments).unwrap_or_default();
        self.spawn_queue_with(vhost, def, config, None)
    }

    fn spawn_queue_with(
        &self,
        vhost: &str,
        def: &QueueDef,
        config: QueueConfig,
        log: Option<Arc<dyn QueueLog>>,
    ) -> QueueHandle {
        queue::spawn(
            QueueSpawn {
                vhost: vhost.to_string(),
                name: def.name.clone(),
                config,
                auto_delete: def.auto_delete,
                dead_letter: DeadLetterTarget::from_arguments(&def.arguments),
                expires_ms: def
                    .arguments
                    .get("x-expires")
                    .and_then(|v| v.as_i64())
                    .and_then(|v| u64::try_from(v).ok()),
                mailbox: self.config.queue_mailbox,
                log,
            },
            self.me.clone(),
        )
    }
}
