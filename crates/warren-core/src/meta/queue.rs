//! queue.declare and queue.delete (the metadata side), with RabbitMQ's
//! checks and texts, and removal of a closed connection's exclusive queues.

use std::collections::BTreeSet;

use super::args::{QUEUE_EQUIVALENCE_KEYS, assert_args, assert_field, value_type_name};
use super::command::MetaReply;
use super::error::{MetaError, rs};
use super::exchange::{reserved, reserved_prefix_refused};
use super::queue_args::validate_new_queue;
use super::state::{MetaState, Vhost};
use super::types::{Destination, QueueDef};

/// Prefix of the names the frontend generates for `queue.declare` with an
/// empty name (RabbitMQ's `amq.gen-…`); the only `amq.` queue names allowed.
pub const SERVER_NAMED_PREFIX: &str = "amq.gen-";

/// `rabbit_amqqueue:check_exclusive_access/3`.
fn locked(resource: &str) -> MetaError {
    MetaError::resource_locked(format!(
        "cannot obtain exclusive access to locked {resource}. It could be originally \
         declared on another connection or the exclusive property value does not \
         match that of the original declaration."
    ))
}

/// RabbitMQ checks the dead-letter exchange's type before creating a queue.
fn check_dead_letter_exchange(def: &QueueDef, resource: &str) -> Result<(), MetaError> {
    match def.arguments.get("x-dead-letter-exchange") {
        Some(v) if v.as_str().is_none() => Err(MetaError::precondition_failed(format!(
            "invalid type '{}' for arg 'x-dead-letter-exchange' in {resource}",
            value_type_name(v)
        ))),
        _ => Ok(()),
    }
}

impl Vhost {
    /// Removes a queue and its bindings, then cascades auto-delete exchanges.
    fn remove_queue(&mut self, name: &str) -> Option<QueueDef> {
        let q = self.queues.remove(name)?;
        let sources: BTreeSet<String> =
            self.remove_bindings_to(&Destination::Queue(q.name.clone()));
        self.auto_delete_sources(sources);
        Some(q)
    }
}

impl MetaState {
    /// Declares a queue. An exclusive queue is never durable (RabbitMQ
    /// silently clears the flag), so `durable` is normalised first.
    pub(crate) fn declare_queue(
        &mut self,
        vhost: &str,
        mut def: QueueDef,
    ) -> Result<MetaReply, MetaError> {
        if def.exclusive_owner.is_some() {
            def.durable = false;
        }
        if def.name.is_empty() {
            return Err(MetaError::precondition_failed(
                "queue name must not be empty",
            ));
        }
        if reserved(&def.name) && !def.name.starts_with(SERVER_NAMED_PREFIX) {
            return Err(reserved_prefix_refused("queue", &def.name));
        }
        let resource = rs("queue", &def.name, vhost);
        let v = self.vhost_mut(vhost)?;
        if let Some(existing) = v.queues.get(&def.name) {
            assert_field(existing.durable, def.durable, "durable", &resource)?;
            assert_field(
                existing.auto_delete,
                def.auto_delete,
                "auto_delete",
                &resource,
            )?;
            assert_args(
                &existing.arguments,
                &def.arguments,
                &resource,
                QUEUE_EQUIVALENCE_KEYS,
            )?;
            if existing.exclusive_owner != def.exclusive_owner {
                return Err(locked(&resource));
            }
            return Ok(MetaReply::Existed);
        }
        check_dead_letter_exchange(&def, &resource)?;
        validate_new_queue(&def, &resource)?;
        v.queues.insert(def.name.clone(), def);
        Ok(MetaReply::Created)
    }

    pub(crate) fn delete_queue(&mut self, vhost: &str, name: &str) -> Result<MetaReply, MetaError> {
        let v = self.vhost_mut(vhost)?;
        Ok(match v.remove_queue(name) {
            Some(_) => MetaReply::QueueDeleted {
                vhost: vhost.to_owned(),
                name: name.to_owned(),
            },
            None => MetaReply::Ok,
        })
    }

    pub(crate) fn delete_exclusive_of(&mut self, connection: u64) -> MetaReply {
        let mut deleted = Vec::new();
        for (vhost_name, v) in &mut self.vhosts {
            let owned: Vec<String> = v
                .queues
                .values()
                .filter(|q| q.exclusive_owner == Some(connection))
                .map(|q| q.name.clone())
                .collect();
            for name in owned {
                v.remove_queue(&name);
                deleted.push((vhost_name.clone(), name));
            }
        }
        MetaReply::Deleted(deleted)
    }

    /// Lax exclusivity (`rabbit_amqqueue:check_exclusive_access/2`): anyone
    /// may use a non-exclusive queue, only the owner an exclusive one. For
    /// consume, get, purge, delete and bind. A missing queue passes (the
    /// caller reports 404 its own way).
    pub fn check_exclusive_access(
        &self,
        vhost: &str,
        queue: &str,
        connection: u64,
    ) -> Result<(), MetaError> {
        match self.queue(vhost, queue) {
            Some(q) if q.exclusive_owner.is_some_and(|o| o != connection) => {
                Err(locked(&rs("queue", queue, vhost)))
            }
            _ => Ok(()),
        }
    }

    /// RabbitMQ's exact name rule for a client-supplied (non-empty) name:
    /// any `amq.` prefix is refused, `amq.gen-` included. `DeclareQueue`
    /// itself lets `amq.gen-` through because the frontend passes the names
    /// it generated through the same command.
    pub fn check_client_name(kind: super::auth::ResourceKind, name: &str) -> Result<(), MetaError> {
        if reserved(name) {
            return Err(reserved_prefix_refused(kind.as_str(), name));
        }
        Ok(())
    }
}
