//! One AMQP channel: its consumers, unacked deliveries, publisher confirms,
//! transaction and the publish being assembled from content frames. A channel
//! lives inside its connection's task; methods are handled one at a time.
//!
//! Split by operation: `declare` (exchange.* and queue.*), `publish` (content
//! assembly, routing, mandatory returns), `consume` (qos, consume, cancel,
//! deliveries), `settle` (get, ack, nack, reject, recover), `confirm` and `tx`.

mod confirm;
mod consume;
mod declare;
mod publish;
mod settle;
mod tx;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use warren_codec::{AMQPClass, spec};
use warren_core::queue::{MsgId, OwnerId};

use crate::broker::Broker;
use crate::broker::events::{ConnSender, Delivery, OwnerLink};
use crate::broker::limiter::Limiter;
use crate::broker::queue::{QueueHandle, QueueRequest};
use crate::error::{AmqpError, code};

pub use confirm::Confirms;
pub use publish::PendingPublish;
pub use tx::Tx;

/// What a channel needs from its connection while it handles a method.
pub struct Ctx<'a> {
    pub broker: &'a Arc<Broker>,
    pub conn_id: u64,
    pub user: &'a str,
    pub vhost: &'a str,
    pub events: &'a ConnSender,
    pub out: &'a mut BytesMut,
    pub frame_max: u32,
}

impl Ctx<'_> {
    /// Queues a method frame for the client.
    pub fn send(&mut self, channel: u16, method: AMQPClass) {
        warren_codec::encode_method(channel, &method, self.out);
    }
}

/// A consumer on this channel.
#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    pub queue: QueueHandle,
    pub no_ack: bool,
    /// Under the channel's global prefetch: its deliveries hold limiter permits.
    pub limited: bool,
    /// No-ack deliveries written since the queue was last told (credit to return).
    pub written: u32,
}

/// A delivery the client has not settled yet.
#[derive(Debug, Clone)]
pub struct Unacked {
    pub queue: QueueHandle,
    pub msg_id: MsgId,
    /// Holds a permit of the channel's limiter until settled.
    pub limited: bool,
}

/// State of one open channel.
pub struct Channel {
    pub id: u16,
    pub owner: OwnerId,
    /// We sent channel.close and wait for close-ok: everything else is dropped.
    pub closing: bool,
    pub publish: Option<PendingPublish>,
    next_tag: u64,
    unacked: BTreeMap<u64, Unacked>,
    consumers: BTreeMap<String, ConsumerInfo>,
    /// Queues this channel has consumed from or got from: they hear OwnerDown at close.
    touched: Vec<QueueHandle>,
    prefetch_consumer: u16,
    prefetch_global: u16,
    limiter: Option<Arc<Limiter>>,
    pub confirms: Option<Confirms>,
    pub tx: Option<Tx>,
    /// The most recently declared queue (an empty queue name in later methods means it).
    last_queue: Option<String>,
    publish_cache: publish::Cache,
    /// The direct reply-to consumer: (consumer tag, reply address).
    reply: Option<(String, String)>,
    /// Settlements not yet sent to their queues (see `flush_settles`).
    settle_buf: Vec<(QueueHandle, settle::Outcome, Vec<MsgId>)>,
}

impl Channel {
    pub fn new(id: u16, owner: OwnerId) -> Self {
        Channel {
            id,
            owner,
            closing: false,
            publish: None,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: BTreeMap::new(),
            touched: Vec::new(),
            prefetch_consumer: 0,
            prefetch_global: 0,
            limiter: None,
            confirms: None,
            tx: None,
            last_queue: None,
            publish_cache: publish::Cache::default(),
            reply: None,
            settle_buf: Vec::new(),
        }
    }

    fn link(&self, ctx: &Ctx<'_>) -> OwnerLink {
        OwnerLink {
            tx: ctx.events.clone(),
            channel: self.id,
        }
    }

    fn touch(&mut self, q: &QueueHandle) {
        if !self.touched.iter().any(|t| t.same(q)) {
            self.touched.push(q.clone());
        }
    }

    /// Resolves an empty queue name to the channel's last declared queue.
    fn queue_name(&self, name: &str) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::new(code::NOT_FOUND, "no previously declared queue"))
    }

    /// Handles one method (not channel.open/close, which the connection does).
    pub async fn handle(&mut self, ctx: &mut Ctx<'_>, method: AMQPClass) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        self.dispatch(ctx, method)
            .await
            .map_err(|e| e.on(class_id, method_id))
    }

    async fn dispatch(&mut self, ctx: &mut Ctx<'_>, method: AMQPClass) -> Result<(), AmqpError> {
        use spec::{basic, channel, confirm, exchange, queue, tx};
        let settling = matches!(
            method,
            AMQPClass::Basic(
                basic::AMQPMethod::Ack(_)
                    | basic::AMQPMethod::Nack(_)
                    | basic::AMQPMethod::Reject(_)
            )
        );
        if !settling && !self.settle_buf.is_empty() {
            self.flush_settles().await;
        }
        match method {
            AMQPClass::Basic(m) => match m {
                basic::AMQPMethod::Publish(p) => self.start_publish(ctx, p),
                basic::AMQPMethod::Qos(q) => self.qos(ctx, q),
                basic::AMQPMethod::Consume(c) => self.consume(ctx, c).await,
                basic::AMQPMethod::Cancel(c) => self.cancel(ctx, c).await,
                basic::AMQPMethod::Get(g) => self.get(ctx, g).await,
                basic::AMQPMethod::Ack(a) => self.ack(ctx, a.delivery_tag, a.multiple).await,
                basic::AMQPMethod::Nack(n) => {
                    self.nack(ctx, n.delivery_tag, n.multiple, n.requeue).await
                }
                basic::AMQPMethod::Reject(r) => {
                    self.nack(ctx, r.delivery_tag, false, r.requeue).await
                }
                basic::AMQPMethod::Recover(r) => self.recover(ctx, r.requeue, true).await,
                basic::AMQPMethod::RecoverAsync(r) => self.recover(ctx, r.requeue, false).await,
                _ => Err(unexpected("basic")),
            },
            AMQPClass::Exchange(m) => match m {
                exchange::AMQPMethod::Declare(d) => self.exchange_declare(ctx, d).await,
                exchange::AMQPMethod::Delete(d) => self.exchange_delete(ctx, d).await,
                exchange::AMQPMethod::Bind(b) => self.exchange_bind(ctx, b).await,
                exchange::AMQPMethod::Unbind(u) => self.exchange_unbind(ctx, u).await,
                _ => Err(unexpected("exchange")),
            },
            AMQPClass::Queue(m) => match m {
                queue::AMQPMethod::Declare(d) => self.queue_declare(ctx, d).await,
                queue::AMQPMethod::Bind(b) => self.queue_bind(ctx, b).await,
                queue::AMQPMethod::Unbind(u) => self.queue_unbind(ctx, u).await,
                queue::AMQPMethod::Purge(p) => self.queue_purge(ctx, p).await,
                queue::AMQPMethod::Delete(d) => self.queue_delete(ctx, d).await,
                _ => Err(unexpected("queue")),
            },
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm_select(ctx, s.nowait)
            }
            AMQPClass::Tx(m) => match m {
                tx::AMQPMethod::Select(_) => self.tx_select(ctx),
                tx::AMQPMethod::Commit(_) => self.tx_commit(ctx).await,
                tx::AMQPMethod::Rollback(_) => self.tx_rollback(ctx),
                _ => Err(unexpected("tx")),
            },
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                if !f.active {
                    return Err(AmqpError::new(code::NOT_IMPLEMENTED, "active=false"));
                }
                ctx.send(
                    self.id,
                    AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            AMQPClass::Access(spec::access::AMQPMethod::Request(_)) => {
                ctx.send(
                    self.id,
                    AMQPClass::Access(spec::access::AMQPMethod::RequestOk(
                        spec::access::RequestOk {},
                    )),
                );
                Ok(())
            }
            _ => Err(AmqpError::new(
                code::COMMAND_INVALID,
                "unexpected method on a channel",
            )),
        }
    }

    /// The channel is going away (closed by either side, or its connection
    /// died): cancel its consumers and give back everything unacked.
    pub async fn teardown(&mut self, broker: &Broker) {
        // Settlements first: an ack must not be undone by the requeue below.
        self.flush_settles().await;
        if let Some((_, address)) = self.reply.take() {
            broker.reply_to().unregister(&address);
        }
        for q in self.touched.drain(..) {
            q.send(QueueRequest::OwnerDown { owner: self.owner }).await;
        }
        let limited = self.unacked.values().filter(|u| u.limited).count();
        if let Some(l) = &self.limiter {
            l.release(u32::try_from(limited).unwrap_or(u32::MAX));
        }
        self.unacked.clear();
        self.consumers.clear();
        self.publish = None;
    }

    /// A delivery for this channel arrived from a queue.
    pub fn on_delivery(&mut self, ctx: &mut Ctx<'_>, d: Delivery) {
        consume::deliver(self, ctx, d);
    }

    /// After the connection wrote its buffer: gives the queues of no-ack
    /// consumers credit for what went out, so they send more.
    pub async fn report_written(&mut self) {
        for (tag, info) in self.consumers.iter_mut() {
            if info.written == 0 {
                continue;
            }
            let count = std::mem::take(&mut info.written);
            let consumer = warren_core::queue::ConsumerKey {
                owner: self.owner,
                tag: tag.clone(),
            };
            info.queue
                .send(QueueRequest::Written { consumer, count })
                .await;
        }
    }

    /// The server cancelled a consumer (its queue was deleted).
    pub fn on_cancelled(&mut self, ctx: &mut Ctx<'_>, tag: String, notify: bool) {
        if self.consumers.remove(&tag).is_some() && notify && !self.closing {
            ctx.send(
                self.id,
                AMQPClass::Basic(spec::basic::AMQPMethod::Cancel(spec::basic::Cancel {
                    consumer_tag: tag.as_str().into(),
                    nowait: true,
                })),
            );
        }
    }
}

fn unexpected(class: &str) -> AmqpError {
    AmqpError::new(
        code::COMMAND_INVALID,
        format!("unexpected {class} method from the client"),
    )
}
