//! basic.get, and settling deliveries: ack, nack, reject, recover.

use warren_codec::{AMQPClass, spec::basic};
use warren_core::meta::{Access, ResourceKind};

use super::tx::TxSettle;
use super::{Channel, Ctx, Unacked};
use crate::broker::queue::{GetResult, QueueRequest};
use crate::error::{AmqpError, code};

/// What to do with settled deliveries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Ack,
    Requeue,
    Discard,
}

impl Channel {
    pub(super) async fn get(&mut self, ctx: &mut Ctx<'_>, g: basic::Get) -> Result<(), AmqpError> {
        let name = self.queue_name(g.queue.as_str())?;
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
        self.touch(&queue);
        let link = self.link(ctx);
        let owner = self.owner;
        let r = queue
            .call(|reply| QueueRequest::Get {
                owner,
                no_ack: g.no_ack,
                link,
                reply,
            })
            .await??;
        match r {
            GetResult::Empty => {
                ctx.send(
                    self.id,
                    AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                );
            }
            GetResult::Ok {
                msg_id,
                msg,
                redelivered,
                message_count,
            } => {
                let tag = self.next_tag;
                self.next_tag += 1;
                if !g.no_ack {
                    self.unacked.insert(
                        tag,
                        Unacked {
                            queue,
                            msg_id,
                            limited: false,
                        },
                    );
                }
                warren_codec::encode_get_ok(
                    ctx.out,
                    self.id,
                    ctx.frame_max,
                    tag,
                    redelivered,
                    &msg.exchange,
                    &msg.routing_key,
                    u32::try_from(message_count).unwrap_or(u32::MAX),
                    &msg.properties,
                    &msg.body,
                );
            }
        }
        Ok(())
    }

    pub(super) async fn ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
    ) -> Result<(), AmqpError> {
        if self.tx.is_some() {
            self.check_tag(tag, multiple)?;
            if let Some(t) = self.tx.as_mut() {
                t.settles.push(TxSettle::Ack { tag, multiple });
            }
            return Ok(());
        }
        self.apply_ack(ctx, tag, multiple).await
    }

    pub(super) async fn nack(
        &mut self,
        ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        if self.tx.is_some() {
            self.check_tag(tag, multiple)?;
            if let Some(t) = self.tx.as_mut() {
                t.settles.push(TxSettle::Nack {
                    tag,
                    multiple,
                    requeue,
                });
            }
            return Ok(());
        }
        self.apply_nack(ctx, tag, multiple, requeue).await
    }

    pub(super) async fn apply_ack(
        &mut self,
        _ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
    ) -> Result<(), AmqpError> {
        let settled = self.take_tags(tag, multiple)?;
        self.settle(settled, Outcome::Ack).await;
        Ok(())
    }

    pub(super) async fn apply_nack(
        &mut self,
        _ctx: &mut Ctx<'_>,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let settled = self.take_tags(tag, multiple)?;
        let outcome = if requeue {
            Outcome::Requeue
        } else {
            Outcome::Discard
        };
        self.settle(settled, outcome).await;
        Ok(())
    }

    pub(super) async fn recover(
        &mut self,
        ctx: &mut Ctx<'_>,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::new(code::NOT_IMPLEMENTED, "requeue=false"));
        }
        let all: Vec<Unacked> = std::mem::take(&mut self.unacked).into_values().collect();
        self.settle(all, Outcome::Requeue).await;
        if reply {
            ctx.send(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
            );
        }
        Ok(())
    }

    /// Validates a tag without settling it (transactions settle at commit).
    fn check_tag(&self, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        if (multiple && tag == 0) || self.unacked.contains_key(&tag) {
            return Ok(());
        }
        if multiple && self.unacked.range(..=tag).next().is_some() {
            return Ok(());
        }
        Err(unknown_tag(tag))
    }

    /// Removes the settled tags: one, or (multiple) all up to `tag`; with
    /// multiple, tag 0 means every outstanding delivery.
    fn take_tags(&mut self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, AmqpError> {
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            if tag != 0 && !self.unacked.contains_key(&tag) {
                return Err(unknown_tag(tag));
            }
            let rest = self.unacked.split_off(&upto.saturating_add(1));
            let done = std::mem::replace(&mut self.unacked, rest);
            return Ok(done.into_values().collect());
        }
        self.unacked
            .remove(&tag)
            .map(|u| vec![u])
            .ok_or_else(|| unknown_tag(tag))
    }

    /// Sends the settlements to their queues, one request per queue.
    async fn settle(&mut self, settled: Vec<Unacked>, outcome: Outcome) {
        let limited = settled.iter().filter(|u| u.limited).count();
        if let Some(l) = &self.limiter {
            l.release(u32::try_from(limited).unwrap_or(u32::MAX));
        }
        // Consecutive settlements of one kind for one queue travel as one
        // request: a run of acks read in one batch costs one queue message.
        for u in settled {
            match self.settle_buf.last_mut() {
                Some((q, o, ids)) if *o == outcome && q.same(&u.queue) => ids.push(u.msg_id),
                _ => self.settle_buf.push((u.queue, outcome, vec![u.msg_id])),
            }
        }
    }

    /// Sends the buffered settlements to their queues, in order. Called
    /// before any other method of the channel is handled, at the end of each
    /// batch of frames read, and before the channel is torn down.
    pub async fn flush_settles(&mut self) {
        let owner = self.owner;
        for (q, outcome, ids) in std::mem::take(&mut self.settle_buf) {
            let req = match outcome {
                Outcome::Ack => QueueRequest::Settle { owner, ids },
                Outcome::Requeue => QueueRequest::Return { owner, ids },
                Outcome::Discard => QueueRequest::Discard { owner, ids },
            };
            q.send(req).await;
        }
    }
}

fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::new(
        code::PRECONDITION_FAILED,
        format!("unknown delivery tag {tag}"),
    )
}
