//! exchange.* and queue.* methods: declarations, bindings, purge, delete.

use warren_codec::{AMQPClass, spec::exchange, spec::queue};
use warren_core::meta::{
    Access, BindingDef, Destination, ExchangeDef, ExchangeKind, QueueDef, ResourceKind,
};

use super::{Channel, Ctx};
use crate::broker::queue::DeleteIf;
use crate::broker::reply_to;
use crate::convert::table_from_wire;
use crate::error::{AmqpError, code};

impl Channel {
    pub(super) async fn exchange_declare(
        &mut self,
        ctx: &mut Ctx<'_>,
        d: exchange::Declare,
    ) -> Result<(), AmqpError> {
        let name = d.exchange.as_str();
        if d.passive {
            if ctx.broker.exchange(ctx.vhost, name).is_none() {
                return Err(AmqpError::new(
                    code::NOT_FOUND,
                    format!("no exchange '{name}' in vhost '{}'", ctx.vhost),
                ));
            }
        } else {
            if name.is_empty() {
                return Err(AmqpError::new(
                    code::ACCESS_REFUSED,
                    "operation not permitted on the default exchange",
                ));
            }
            let kind = ExchangeKind::parse(d.kind.as_str()).ok_or_else(|| {
                AmqpError::new(
                    code::COMMAND_INVALID,
                    format!("unknown exchange type '{}'", d.kind.as_str()),
                )
            })?;
            ctx.broker.check_permission(
                ctx.user,
                ctx.vhost,
                Access::Configure,
                ResourceKind::Exchange,
                name,
            )?;
            ctx.broker
                .declare_exchange(
                    ctx.vhost,
                    ExchangeDef {
                        name: name.to_string(),
                        kind,
                        durable: d.durable,
                        auto_delete: d.auto_delete,
                        internal: d.internal,
                        arguments: table_from_wire(&d.arguments),
                    },
                )
                .await?;
        }
        if !d.nowait {
            ctx.send(
                self.id,
                AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_delete(
        &mut self,
        ctx: &mut Ctx<'_>,
        d: exchange::Delete,
    ) -> Result<(), AmqpError> {
        let name = d.exchange.as_str();
        if name.is_empty() {
            return Err(AmqpError::new(
                code::ACCESS_REFUSED,
                "operation not permitted on the default exchange",
            ));
        }
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Configure,
            ResourceKind::Exchange,
            name,
        )?;
        ctx.broker
            .delete_exchange(ctx.vhost, name, d.if_unused)
            .await?;
        if !d.nowait {
            ctx.send(
                self.id,
                AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_bind(
        &mut self,
        ctx: &mut Ctx<'_>,
        b: exchange::Bind,
    ) -> Result<(), AmqpError> {
        let binding = e2e_binding(
            ctx,
            b.source.as_str(),
            b.destination.as_str(),
            b.routing_key.as_str(),
            &b.arguments,
        )?;
        ctx.broker.bind(ctx.vhost, binding).await?;
        if !b.nowait {
            ctx.send(
                self.id,
                AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn exchange_unbind(
        &mut self,
        ctx: &mut Ctx<'_>,
        u: exchange::Unbind,
    ) -> Result<(), AmqpError> {
        let binding = e2e_binding(
            ctx,
            u.source.as_str(),
            u.destination.as_str(),
            u.routing_key.as_str(),
            &u.arguments,
        )?;
        ctx.broker.unbind(ctx.vhost, binding).await?;
        if !u.nowait {
            ctx.send(
                self.id,
                AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn queue_declare(
        &mut self,
        ctx: &mut Ctx<'_>,
        d: queue::Declare,
    ) -> Result<(), AmqpError> {
        let requested = d.queue.as_str();
        let declared = if d.passive && requested.starts_with(reply_to::PSEUDO_QUEUE) {
            // The pseudo-queue always "exists"; a reply address while its consumer does.
            if requested != reply_to::PSEUDO_QUEUE && !ctx.broker.reply_to().exists(requested) {
                return Err(AmqpError::new(
                    code::NOT_FOUND,
                    format!("no queue '{requested}' in vhost '{}'", ctx.vhost),
                ));
            }
            crate::broker::Declared {
                name: requested.to_string(),
                message_count: 0,
                consumer_count: 0,
            }
        } else if d.passive {
            let name = self.queue_name(requested)?;
            ctx.broker
                .declare_queue_passive(ctx.vhost, &name, ctx.conn_id)
                .await?
        } else {
            let name = if requested.is_empty() {
                crate::connection::names::queue_name()
            } else {
                requested.to_string()
            };
            ctx.broker.check_permission(
                ctx.user,
                ctx.vhost,
                Access::Configure,
                ResourceKind::Queue,
                &name,
            )?;
            let def = QueueDef {
                name,
                durable: d.durable,
                exclusive_owner: d.exclusive.then_some(ctx.conn_id),
                auto_delete: d.auto_delete,
                arguments: table_from_wire(&d.arguments),
                home: None,
            };
            ctx.broker.declare_queue(ctx.vhost, def).await?
        };
        self.last_queue = Some(declared.name.clone());
        if !d.nowait {
            let ok = queue::DeclareOk {
                queue: declared.name.as_str().into(),
                message_count: u32::try_from(declared.message_count).unwrap_or(u32::MAX),
                consumer_count: declared.consumer_count,
            };
            ctx.send(self.id, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)));
        }
        Ok(())
    }

    /// queue.bind / queue.unbind share their checks.
    fn queue_binding(
        &self,
        ctx: &Ctx<'_>,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        args: &warren_codec::FieldTable,
    ) -> Result<BindingDef, AmqpError> {
        let queue_name = self.queue_name(queue)?;
        // An empty routing key with an empty queue name binds with the queue's name.
        let routing_key = if queue.is_empty() && routing_key.is_empty() {
            queue_name.clone()
        } else {
            routing_key.to_string()
        };
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Write,
            ResourceKind::Queue,
            &queue_name,
        )?;
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Read,
            ResourceKind::Exchange,
            exchange,
        )?;
        ctx.broker.queue_for(ctx.vhost, &queue_name, ctx.conn_id)?;
        Ok(BindingDef {
            source: exchange.to_string(),
            destination: Destination::Queue(queue_name),
            routing_key,
            arguments: table_from_wire(args),
        })
    }

    pub(super) async fn queue_bind(
        &mut self,
        ctx: &mut Ctx<'_>,
        b: queue::Bind,
    ) -> Result<(), AmqpError> {
        let binding = self.queue_binding(
            ctx,
            b.queue.as_str(),
            b.exchange.as_str(),
            b.routing_key.as_str(),
            &b.arguments,
        )?;
        ctx.broker.bind(ctx.vhost, binding).await?;
        if !b.nowait {
            ctx.send(
                self.id,
                AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
            );
        }
        Ok(())
    }

    pub(super) async fn queue_unbind(
        &mut self,
        ctx: &mut Ctx<'_>,
        u: queue::Unbind,
    ) -> Result<(), AmqpError> {
        let binding = self.queue_binding(
            ctx,
            u.queue.as_str(),
            u.exchange.as_str(),
            u.routing_key.as_str(),
            &u.arguments,
        )?;
        ctx.broker.unbind(ctx.vhost, binding).await?;
        ctx.send(
            self.id,
            AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        );
        Ok(())
    }

    pub(super) async fn queue_purge(
        &mut self,
        ctx: &mut Ctx<'_>,
        p: queue::Purge,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(p.queue.as_str())?;
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Read,
            ResourceKind::Queue,
            &name,
        )?;
        let n = ctx
            .broker
            .purge_queue(ctx.vhost, &name, ctx.conn_id)
            .await?;
        if !p.nowait {
            let ok = queue::PurgeOk {
                message_count: u32::try_from(n).unwrap_or(u32::MAX),
            };
            ctx.send(self.id, AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)));
        }
        Ok(())
    }

    pub(super) async fn queue_delete(
        &mut self,
        ctx: &mut Ctx<'_>,
        d: queue::Delete,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(d.queue.as_str())?;
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Configure,
            ResourceKind::Queue,
            &name,
        )?;
        let cond = DeleteIf {
            unused: d.if_unused,
            empty: d.if_empty,
        };
        // Deleting a queue that does not exist succeeds with a count of 0 (RabbitMQ).
        let n = match ctx
            .broker
            .delete_queue(ctx.vhost, &name, ctx.conn_id, cond)
            .await
        {
            Ok(n) => n,
            Err(e) if e.code == code::NOT_FOUND => 0,
            Err(e) => return Err(e),
        };
        if !d.nowait {
            let ok = queue::DeleteOk {
                message_count: u32::try_from(n).unwrap_or(u32::MAX),
            };
            ctx.send(self.id, AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)));
        }
        Ok(())
    }
}

/// Checks and builds an exchange-to-exchange binding.
fn e2e_binding(
    ctx: &Ctx<'_>,
    source: &str,
    destination: &str,
    routing_key: &str,
    args: &warren_codec::FieldTable,
) -> Result<BindingDef, AmqpError> {
    ctx.broker.check_permission(
        ctx.user,
        ctx.vhost,
        Access::Write,
        ResourceKind::Exchange,
        destination,
    )?;
    ctx.broker.check_permission(
        ctx.user,
        ctx.vhost,
        Access::Read,
        ResourceKind::Exchange,
        source,
    )?;
    Ok(BindingDef {
        source: source.to_string(),
        destination: Destination::Exchange(destination.to_string()),
        routing_key: routing_key.to_string(),
        arguments: table_from_wire(args),
    })
}
