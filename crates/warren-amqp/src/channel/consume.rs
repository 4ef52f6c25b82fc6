//! basic.qos, basic.consume, basic.cancel and deliveries to consumers.

use std::sync::Arc;

use warren_codec::{AMQPClass, spec::basic};
use warren_core::meta::{Access, ResourceKind};
use warren_core::queue::ConsumerKey;

use super::{Channel, ConsumerInfo, Ctx, Unacked};
use crate::broker::events::Delivery;
use crate::broker::limiter::Limiter;
use crate::broker::queue::QueueRequest;
use crate::broker::reply_to;
use crate::error::{AmqpError, code};
use warren_core::message::Message;

impl Channel {
    pub(super) fn qos(&mut self, ctx: &mut Ctx<'_>, q: basic::Qos) -> Result<(), AmqpError> {
        // RabbitMQ's reading of 0-9-1: global=false limits each new consumer,
        // global=true limits the channel as a whole.
        if q.global {
            self.prefetch_global = q.prefetch_count;
            match &self.limiter {
                Some(l) => l.set_limit(u32::from(q.prefetch_count)),
                None if q.prefetch_count > 0 => {
                    self.limiter = Some(Arc::new(Limiter::new(u32::from(q.prefetch_count))));
                }
                None => {}
            }
        } else {
            self.prefetch_consumer = q.prefetch_count;
        }
        ctx.send(
            self.id,
            AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
        );
        Ok(())
    }

    pub(super) async fn consume(
        &mut self,
        ctx: &mut Ctx<'_>,
        c: basic::Consume,
    ) -> Result<(), AmqpError> {
        if c.queue.as_str() == reply_to::PSEUDO_QUEUE {
            return self.consume_replies(ctx, c);
        }
        let name = self.queue_name(c.queue.as_str())?;
        ctx.broker.check_permission(
            ctx.user,
            ctx.vhost,
            Access::Read,
            ResourceKind::Queue,
            &name,
        )?;
        let queue = ctx
            .broker
            .queue_to_use(ctx.vhost, &name, ctx.conn_id)
            .await?;
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
        let prefetch = u32::from(self.prefetch_consumer);
        // Under a channel-wide limit the consumer runs on limiter permits
        // (its own per-consumer limit is not applied on top: a known gap).
        let limiter = if self.prefetch_global > 0 && !c.no_ack {
            self.limiter.clone()
        } else {
            None
        };
        let limited = limiter.is_some();
        let link = self.link(ctx);
        self.touch(&queue);
        queue
            .call(|reply| QueueRequest::Subscribe {
                consumer: key,
                prefetch,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                limiter,
                link,
                reply,
            })
            .await??;
        self.consumers.insert(
            tag.clone(),
            ConsumerInfo {
                queue,
                no_ack: c.no_ack,
                limited,
                written: 0,
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

    /// basic.consume on `amq.rabbitmq.reply-to`: this channel becomes a
    /// direct reply-to consumer.
    fn consume_replies(&mut self, ctx: &mut Ctx<'_>, c: basic::Consume) -> Result<(), AmqpError> {
        if !c.no_ack {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply.is_some() {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "reply consumer already set",
            ));
        }
        let tag = if c.consumer_tag.as_str().is_empty() {
            crate::connection::names::consumer_tag()
        } else {
            c.consumer_tag.as_str().to_string()
        };
        let address = ctx.broker.reply_to().register(self.link(ctx), tag.clone());
        self.reply = Some((tag.clone(), address));
        if !c.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: tag.as_str().into(),
            };
            ctx.send(self.id, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        Ok(())
    }

    /// A direct reply for this channel's reply consumer.
    pub fn on_reply(&mut self, ctx: &mut Ctx<'_>, consumer_tag: &str, msg: &Message) {
        if self.closing || self.reply.as_ref().is_none_or(|(t, _)| t != consumer_tag) {
            return;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        warren_codec::encode_deliver(
            ctx.out,
            self.id,
            ctx.frame_max,
            consumer_tag,
            tag,
            false,
            &msg.exchange,
            &msg.routing_key,
            &msg.properties,
            &msg.body,
        );
    }

    pub(super) async fn cancel(
        &mut self,
        ctx: &mut Ctx<'_>,
        c: basic::Cancel,
    ) -> Result<(), AmqpError> {
        let tag = c.consumer_tag.as_str().to_string();
        if self.reply.as_ref().is_some_and(|(t, _)| *t == tag)
            && let Some((_, address)) = self.reply.take()
        {
            ctx.broker.reply_to().unregister(&address);
        }
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
    let Some(info) = ch
        .consumers
        .get_mut(&d.consumer_tag)
        .filter(|_| !ch.closing)
    else {
        if !d.no_ack {
            d.queue.send_now(QueueRequest::Return {
                owner: ch.owner,
                ids: vec![d.msg_id],
            });
        }
        if d.limited
            && let Some(l) = &ch.limiter
        {
            l.release(1);
        }
        return;
    };
    let limited = info.limited;
    if d.no_ack {
        info.written += 1;
    }
    let tag = ch.next_tag;
    ch.next_tag += 1;
    if !d.no_ack {
        ch.unacked.insert(
            tag,
            Unacked {
                queue: d.queue.clone(),
                msg_id: d.msg_id,
                limited,
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
