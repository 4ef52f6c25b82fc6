//! The queue's state: ready messages, checked-out messages, consumers.
//!
//! Per message the state keeps only (id, size, expiry, delivery count,
//! priority, payload); the payload is an `Arc<Message>` in memory or a log
//! index in the replicated driver. All collections are ordered (BTreeMap,
//! VecDeque) so that iteration, and hence dispatch, is the same on every
//! replica.

use std::collections::BTreeMap;

use super::config::QueueConfig;
use super::error::{UNNAMED, resource_name};
use super::ready::Ready;
use super::types::{ConsumerKey, DeadLetterReason, Effect, MsgId, OwnerId};

/// One message held by the queue.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Msg<M> {
    pub(super) id: MsgId,
    pub(super) size: u64,
    /// Absolute ms at which it expires (enqueue time + effective TTL).
    pub(super) expiry: Option<u64>,
    /// Times it went back to the queue; > 0 means "redelivered".
    pub(super) delivery_count: u32,
    /// Its priority level: the `priority` property capped at the queue's
    /// `x-max-priority` when it arrived, 0 in a queue without priorities.
    /// (Fits in the padding after `delivery_count`: costs no space.)
    pub(super) priority: u8,
    pub(super) payload: M,
}

impl<M> Msg<M> {
    pub(super) fn is_expired(&self, now_ms: u64) -> bool {
        self.expiry.is_some_and(|at| at <= now_ms)
    }
}

/// A message delivered (or got) and not yet settled.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct CheckedOut<M> {
    pub(super) owner: OwnerId,
    /// Subscription sequence number of the consumer that received it;
    /// `None` for basic.get. A sequence number rather than the key, so that
    /// a consumer tag reused after a cancel does not inherit the old one's
    /// unacked messages in its prefetch count.
    pub(super) consumer: Option<u64>,
    pub(super) msg: Msg<M>,
}

/// How a consumer is limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many unacked messages (0 = unlimited).
    Prefetch(u32),
    /// Remaining deliveries granted by `Credit`.
    Credit(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Consumer {
    pub(super) key: ConsumerKey,
    pub(super) no_ack: bool,
    pub(super) exclusive: bool,
    pub(super) limit: Limit,
    pub(super) unacked: u32,
}

impl Consumer {
    /// Whether the consumer may receive one more message now.
    pub(super) fn has_capacity(&self) -> bool {
        match self.limit {
            Limit::Credit(n) => n > 0,
            Limit::Prefetch(_) if self.no_ack => true,
            Limit::Prefetch(0) => true,
            Limit::Prefetch(n) => self.unacked < n,
        }
    }
}

/// The state of one queue. Cloneable and comparable so that tests can check
/// "snapshot + replayed suffix == full replay".
#[derive(Clone, Debug, PartialEq)]
pub struct QueueState<M> {
    pub(super) config: QueueConfig,
    /// How errors name this queue ("queue 'q' in vhost '/'").
    pub(super) resource: String,
    pub(super) next_msg_id: MsgId,
    /// Ready messages, by priority, in delivery order.
    pub(super) ready: Ready<M>,
    pub(super) checked_out: BTreeMap<MsgId, CheckedOut<M>>,
    pub(super) unacked_bytes: u64,
    /// Consumers by subscription sequence number (= subscription order).
    pub(super) consumers: BTreeMap<u64, Consumer>,
    pub(super) consumer_seqs: BTreeMap<ConsumerKey, u64>,
    pub(super) next_consumer_seq: u64,
    /// Round-robin position: the next delivery goes to the first consumer
    /// with capacity whose sequence number is >= this, wrapping around.
    pub(super) cursor: u64,
}

impl<M: Clone> QueueState<M> {
    pub fn new(config: QueueConfig) -> Self {
        QueueState {
            config,
            resource: UNNAMED.to_owned(),
            next_msg_id: 1,
            ready: Ready::new(),
            checked_out: BTreeMap::new(),
            unacked_bytes: 0,
            consumers: BTreeMap::new(),
            consumer_seqs: BTreeMap::new(),
            next_consumer_seq: 0,
            cursor: 0,
        }
    }

    /// Names the queue in error texts, as RabbitMQ does.
    pub fn with_name(mut self, vhost: &str, queue: &str) -> Self {
        self.resource = resource_name(vhost, queue);
        self
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Ready messages (what queue.declare-ok reports).
    pub fn message_count(&self) -> u64 {
        self.ready.len()
    }

    /// Subscribed consumers (what queue.declare-ok reports).
    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    pub fn unacked_count(&self) -> u64 {
        self.checked_out.len() as u64
    }

    /// Bytes of ready and unacked messages.
    pub fn total_bytes(&self) -> u64 {
        self.ready.bytes() + self.unacked_bytes
    }

    /// Bytes of ready messages (what x-max-length-bytes limits).
    pub fn ready_bytes(&self) -> u64 {
        self.ready.bytes()
    }

    /// No consumers (queue.delete if-unused).
    pub fn is_unused(&self) -> bool {
        self.consumers.is_empty()
    }

    /// Earliest absolute ms at which a `Tick` would expire something. Only
    /// queue heads expire (as in RabbitMQ), so only heads are looked at.
    pub fn next_expiry(&self) -> Option<u64> {
        self.ready.next_expiry()
    }

    /// Ids of ready messages in delivery order (highest priority first).
    pub fn ready_ids(&self) -> Vec<MsgId> {
        self.ready.iter().map(|m| m.id).collect()
    }

    /// Ids of the messages checked out to `owner`, ascending.
    pub fn checked_out_ids(&self, owner: OwnerId) -> Vec<MsgId> {
        let mine = self.checked_out.iter().filter(|(_, c)| c.owner == owner);
        mine.map(|(id, _)| *id).collect()
    }

    /// The deliveries of every message checked out to a subscribed
    /// consumer, as `Deliver` effects (in message id order). A replica that
    /// catches up from a snapshot instead of applying each entry uses them
    /// to hand its own consumers what they were given meanwhile.
    pub fn held_deliveries(&self) -> Vec<super::Effect<M>> {
        self.checked_out
            .iter()
            .filter_map(|(id, c)| {
                let seq = c.consumer?;
                let consumer = self.consumers.get(&seq)?;
                Some(super::Effect::Deliver {
                    consumer: consumer.key.clone(),
                    msg_id: *id,
                    msg: c.msg.payload.clone(),
                    redelivered: c.msg.delivery_count > 0,
                    delivery_count: c.msg.delivery_count,
                })
            })
            .collect()
    }

    /// Every owner holding a consumer or an unsettled message, ascending
    /// (after a restart these are all gone: the driver sends `OwnerDown`).
    pub fn owners(&self) -> Vec<OwnerId> {
        let from_consumers = self.consumers.values().map(|c| c.key.owner);
        let from_checked_out = self.checked_out.values().map(|c| c.owner);
        let set: std::collections::BTreeSet<OwnerId> =
            from_consumers.chain(from_checked_out).collect();
        set.into_iter().collect()
    }

    /// Every payload the queue still holds (ready or unacked), in no
    /// particular order. Under Raft the payload is the `Enqueue` entry's log
    /// index, so these are the "live indexes": log entries not listed here
    /// can be compacted away even when acks arrive out of order.
    pub fn payloads(&self) -> impl Iterator<Item = &M> {
        let ready = self.ready.iter();
        let out = self.checked_out.values().map(|c| &c.msg);
        ready.chain(out).map(|m| &m.payload)
    }

    /// Subscribed consumers in subscription order.
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerKey> {
        self.consumers.values().map(|c| &c.key)
    }

    /// Unacked messages a subscribed consumer holds (its prefetch usage).
    pub fn consumer_unacked(&self, key: &ConsumerKey) -> Option<u32> {
        let seq = self.consumer_seqs.get(key)?;
        self.consumers.get(seq).map(|c| c.unacked)
    }

    /// The consumer that receives messages under single-active-consumer.
    pub fn active_consumer(&self) -> Option<&ConsumerKey> {
        self.active_seq()
            .and_then(|s| self.consumers.get(&s))
            .map(|c| &c.key)
    }

    pub(super) fn active_seq(&self) -> Option<u64> {
        if !self.config.single_active_consumer {
            return None;
        }
        self.consumers.keys().next().copied()
    }

    pub(super) fn push_ready(&mut self, msg: Msg<M>) {
        self.ready.push_fresh(msg);
    }

    pub(super) fn push_return(&mut self, msg: Msg<M>) {
        self.ready.push_return(msg);
    }

    /// Removes the next message to deliver: highest priority first, and
    /// within it requeued ones first, then fresh ones.
    pub(super) fn pop_head(&mut self) -> Option<Msg<M>> {
        self.ready.pop_head()
    }

    /// Drops a message, telling the driver to dead-letter it if the queue
    /// has a dead-letter exchange.
    pub(super) fn dead_letter(
        &self,
        msg: Msg<M>,
        reason: DeadLetterReason,
        fx: &mut Vec<Effect<M>>,
    ) {
        if self.config.dead_letter {
            fx.push(Effect::DeadLetter {
                msg: msg.payload,
                reason,
            });
        }
    }
}
