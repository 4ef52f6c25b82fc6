//! The single-node broker: metadata (a `warren_core::meta::MetaState` behind a
//! lock), the registry of queue actors, and routing from exchanges to queues.
//!
//! Every method holds the metadata lock only for synchronous work, never
//! across an `.await`. Lock order, where both are taken: `meta`, then `queues`.

pub mod deadletter;
pub mod events;
pub mod limiter;
pub mod memory;
pub mod queue;
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
use warren_core::queue::{DeadLetterReason, QueueConfig};
use warren_core::value::Table;

use crate::config::ServerConfig;
use crate::error::{AmqpError, code};
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
    me: Weak<Broker>,
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
        let watermark = config.memory_high_watermark;
        let broker = Arc::new_cyclic(|me| Broker {
            meta: RwLock::new(MetaState::new()),
            queues: RwLock::new(BTreeMap::new()),
            config,
            next_id: AtomicU64::new(1),
            reply_to: reply_to::ReplyTo::default(),
            memory: memory::MemoryAlarm::new(watermark),
            topology: AtomicU64::new(1),
            me: me.clone(),
        });
        broker.install(meta);
        broker
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
    pub fn load_definitions(&self, json: &str) -> Result<(), AmqpError> {
        let cmds = warren_core::meta::definitions_from_json(json)?;
        let mut m = self.meta_write();
        let mut queues = self.queues.write();
        for cmd in cmds {
            let queue = match &cmd {
                MetaCommand::DeclareQueue { vhost, def } => Some((vhost.clone(), def.clone())),
                _ => None,
            };
            let reply = m.apply(cmd)?;
            if let (Some((vhost, def)), MetaReply::Created) = (queue, reply) {
                let handle = self.spawn_queue(&vhost, &def);
                queues.insert((vhost, def.name), handle);
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

    pub fn declare_exchange(&self, vhost: &str, def: ExchangeDef) -> Result<(), AmqpError> {
        self.meta_write().apply(MetaCommand::DeclareExchange {
            vhost: vhost.to_string(),
            def,
        })?;
        Ok(())
    }

    pub fn delete_exchange(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<(), AmqpError> {
        let mut m = self.meta_write();
        let reply = m.apply(MetaCommand::DeleteExchange {
            vhost: vhost.to_string(),
            name: name.to_string(),
            if_unused,
        })?;
        drop(m);
        self.stop_cascaded(reply);
        Ok(())
    }

    pub fn bind(&self, vhost: &str, binding: BindingDef) -> Result<(), AmqpError> {
        self.meta_write().apply(MetaCommand::Bind {
            vhost: vhost.to_string(),
            binding,
        })?;
        Ok(())
    }

    pub fn unbind(&self, vhost: &str, binding: BindingDef) -> Result<(), AmqpError> {
        let reply = self.meta_write().apply(MetaCommand::Unbind {
            vhost: vhost.to_string(),
            binding,
        })?;
        self.stop_cascaded(reply);
        Ok(())
    }

    /// Queues a metadata change removed as a side effect stop their actors.
    fn stop_cascaded(&self, reply: MetaReply) {
        if let MetaReply::Deleted(list) = reply {
            let mut queues = self.queues.write();
            for key in list {
                queues.remove(&key);
            }
        }
    }

    /// queue.declare (non-passive); an exclusive queue names its connection in `def`.
    pub async fn declare_queue(&self, vhost: &str, def: QueueDef) -> Result<Declared, AmqpError> {
        let config = QueueConfig::from_declare(&def.arguments, vhost, &def.name)?;
        let name = def.name.clone();
        let handle = {
            let mut m = self.meta_write();
            let reply = m.apply(MetaCommand::DeclareQueue {
                vhost: vhost.to_string(),
                def: def.clone(),
            })?;
            let mut queues = self.queues.write();
            let key = (vhost.to_string(), name.clone());
            match (reply, queues.get(&key)) {
                (MetaReply::Existed, Some(h)) => h.clone(),
                _ => {
                    let h = self.spawn_queue_with(vhost, &def, config);
                    queues.insert(key, h.clone());
                    h
                }
            }
        };
        self.stats(&handle).await
    }

    /// queue.declare passive: exists and is accessible to this connection.
    pub async fn declare_queue_passive(
        &self,
        vhost: &str,
        name: &str,
        owner: u64,
    ) -> Result<Declared, AmqpError> {
        let handle = self.queue_for(vhost, name, owner)?;
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
        let handle = self.queue_for(vhost, name, conn)?;
        handle
            .call(|reply| QueueRequest::Delete { cond, reply })
            .await?
    }

    pub async fn purge_queue(&self, vhost: &str, name: &str, conn: u64) -> Result<u64, AmqpError> {
        let handle = self.queue_for(vhost, name, conn)?;
        handle.call(|reply| QueueRequest::Purge { reply }).await
    }

    /// Called by a queue actor that is going away (deleted or auto-deleted).
    pub fn forget_queue(&self, vhost: &str, name: &str, handle: &QueueHandle) {
        let mut m = self.meta_write();
        let mut queues = self.queues.write();
        let key = (vhost.to_string(), name.to_string());
        if queues.get(&key).is_some_and(|h| h.same(handle)) {
            queues.remove(&key);
            let reply = m.apply(MetaCommand::DeleteQueue {
                vhost: vhost.to_string(),
                name: name.to_string(),
            });
            drop(queues);
            drop(m);
            if let Ok(r) = reply {
                self.stop_cascaded(r);
            }
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
        self.spawn_queue_with(vhost, def, config)
    }

    fn spawn_queue_with(&self, vhost: &str, def: &QueueDef, config: QueueConfig) -> QueueHandle {
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
            },
            self.me.clone(),
        )
    }
}
