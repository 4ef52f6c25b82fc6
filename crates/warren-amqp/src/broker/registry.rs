//! The registry of queue actors: declaring queues (and starting their
//! actors), finding the one a connection may use, purging and deleting
//! them, and forgetting those that went.

use std::sync::Arc;

use warren_core::meta::{MetaCommand, MetaReply, QueueDef};
use warren_core::queue::QueueConfig;

use super::backend::QueueLog;
use super::deadletter::DeadLetterTarget;
use super::queue::{self, DeleteIf, QueueHandle, QueueRequest, QueueSpawn};
use super::{Broker, Declared, store_error};
use crate::error::{AmqpError, code};

impl Broker {
    /// queue.declare (non-passive); an exclusive queue names its connection in `def`.
    pub async fn declare_queue(
        &self,
        vhost: &str,
        mut def: QueueDef,
    ) -> Result<Declared, AmqpError> {
        if self.clustered() && !def.durable && def.exclusive_owner.is_none() {
            // Held by this node (a group of one here): gone with it.
            def.home = Some(self.config().node_id);
        }
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
                let mut serial = self.meta_serial.lock().await;
                let reply = self.commit_serialised(backend, &mut serial, cmd).await?;
                let existing = self.queues.read().get(&key).cloned();
                match (reply, existing) {
                    (MetaReply::Existed, Some(h)) if h.is_remote() && self.logged(&def) => {
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
                        let log = if self.logged(&def) {
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
                                    let _ =
                                        self.commit_serialised(backend, &mut serial, undo).await;
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
                let mut serial = self.meta_serial.lock().await;
                let registered = self.queues.read().get(&key).is_some_and(|h| h.same(handle));
                if registered {
                    let reply = self.commit_serialised(backend, &mut serial, cmd).await;
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

    pub(super) fn spawn_queue(&self, vhost: &str, def: &QueueDef) -> QueueHandle {
        // Arguments were validated when the queue was declared.
        let config = QueueConfig::from_arguments(&def.arguments).unwrap_or_default();
        self.spawn_queue_with(vhost, def, config, None)
    }

    pub(super) fn spawn_queue_with(
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
