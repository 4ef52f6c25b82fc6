//! basic.qos, basic.consume, basic.cancel and deliveries to consumers.

use warren_codec::{AMQPClass, spec::basic};
use warren_core::meta::{Access, ResourceKind};
use warren_core::queue::ConsumerKey;

use super::{Channel, ConsumerInfo, Ctx, Unacked};
use crate::broker::events::Delivery;
use crate::broker::queue::QueueRequest;
use crate::error::{AmqpError, code};

impl Channel {
    pub(super) fn qos(&mut self, ctx: &mut Ctx<'_>, q: basic::Qos) -> Result<(), AmqpError> {
        // RabbitMQ's reading of 0-9-1: global=false limits each new consumer,
        // global=true limits the channel as a whole.
        if q.global {
            self.prefetch_global = q.prefetch_count;
        } else {
            self.prefetch_consumer = q.prefetch_count;
        }
        ctx.send(self.id, AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
        Ok(())
    }

    /// The prefetch a new consumer gets. A channel-wide limit is applied as
    /// the consumer's own limit when it is tighter (see the crate notes).
    fn consumer_prefetch(&self) -> u32 {
        let per = u32::from(self.prefetch_consumer);
        let global = u32::from(self.prefetch_global);
        match (per, global) {
            (0, g) => g,
            (p, 0) => p,
            (p, g) => p.min(g),
        }
    }

    pub(super) async fn consume(&mut self, ctx: &mut Ctx<'_>, c: basic::Consume) -> Result<(), AmqpError> {
        let name = self.queue_name(c.queue.as_str())?;
        ctx.broker
            .check_permission(ctx.user, ctx.vhost, Access::Read, ResourceKind::Queue, &name)?;
        let queue = ctx.broker.queue_for(ctx.vhost, &name, ctx.conn_id)?;
        let tag = if c.consumer_tag.as_str().is_empty() {
            crate::connection::names::consumer_tag()
        } else {
            c.consumer_tag.as_str().to_string()
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::new(
                code::NOT_ALLOWED,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let key = ConsumerKey {
            owner: self.owner,
            tag: tag.clone(),
        };
        let prefetch = self.consumer_prefetch();
        let link = self.link(ctx);
        self.touch(&queue);
        queue
            .call(|reply| QueueRequest::Subscribe {
                consumer: key,
                prefetch,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                link,
                reply,
            })
            .await??;
        self.consumers.insert(
            tag.clone(),
            ConsumerInfo {
                queue,
                no_ack: c.no_ack,
            },
        );
        if !c.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: tag.as_str().into(),
            };
            ctx.send(self.id, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        Ok(())
    }

    pub(super) async fn cancel(&mut self, ctx: &mut Ctx<'_>, c: basic::Cancel) -> Result<(), AmqpError> {
        let tag = c.consumer_tag.as_str().to_string();
        if let Some(info) = self.consumers.remove(&tag) {
            info.queue
                .send(QueueRequest::Cancel {
                    consumer: ConsumerKey {
                        owner: self.owner,
                        tag: tag.clone(),
                    },
                })
                .await;
        }
        if !c.nowait {
            let ok = basic::CancelOk {
                consumer_tag: tag.as_str().into(),
            };
            ctx.send(self.id, AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
        }
        Ok(())
    }
}

/// Writes a delivery to the client and tracks it until it is settled. A
/// delivery for a consumer this channel no longer has goes back to its queue.
pub(super) fn deliver(ch: &mut Channel, ctx: &mut Ctx<'_>, d: Delivery) {
    if ch.closing || !ch.consumers.contains_key(&d.consumer_tag) {
        if !d.no_ack {
            d.queue.send_now(QueueRequest::Return {
                owner: ch.owner,
                ids: vec![d.msg_id],
            });
        }
        return;
    }
    let tag = ch.next_tag;
    ch.next_tag += 1;
    if !d.no_ack {
        ch.unacked.insert(
            tag,
            Unacked {
                queue: d.queue.clone(),
                msg_id: d.msg_id,
            },
        );
    }
    warren_codec::encode_deliver(
        ctx.out,
        ch.id,
        ctx.frame_max,
        &d.consumer_tag,
        tag,
        d.redelivered,
        &d.msg.exchange,
        &d.msg.routing_key,
        &d.msg.properties,
        &d.msg.body,
    );
}
