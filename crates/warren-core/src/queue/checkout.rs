//! Consumers and dispatch: subscribe, cancel, credit, basic.get, and the
//! assignment of ready messages to consumers.
//!
//! Dispatch runs inside `apply` whenever a message becomes ready or a
//! consumer gains capacity, so every replica makes the same assignment.
//! After every command either no message is ready or no consumer has
//! capacity; enqueue relies on that to hand a message straight over.

use super::error::QueueError;
use super::state::{CheckedOut, Consumer, Limit, Msg, QueueState};
use super::types::{ConsumerKey, Effect, Meta, OwnerId, Reply};

impl<M: Clone> QueueState<M> {
    pub(super) fn subscribe(
        &mut self,
        meta: &Meta,
        consumer: ConsumerKey,
        limit: Limit,
        no_ack: bool,
        exclusive: bool,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        if self.consumer_seqs.contains_key(&consumer) {
            let tag = consumer.tag;
            return Reply::Error(QueueError::ConsumerTagInUse { tag });
        }
        let locked = self.consumers.values().any(|c| c.exclusive);
        if locked || (exclusive && !self.consumers.is_empty()) {
            let resource = self.resource.clone();
            return Reply::Error(QueueError::ExclusiveConsumer { resource });
        }
        let before = self.active_seq();
        let seq = self.next_consumer_seq;
        self.next_consumer_seq += 1;
        self.consumer_seqs.insert(consumer.clone(), seq);
        let entry = Consumer {
            key: consumer,
            no_ack,
            exclusive,
            limit,
            unacked: 0,
        };
        self.consumers.insert(seq, entry);
        self.note_activation(before, fx);
        self.dispatch(meta, fx);
        Reply::Ok
    }

    /// basic.cancel: the consumer stops receiving; what it holds stays
    /// checked out to its owner until settled or returned.
    pub(super) fn cancel(
        &mut self,
        meta: &Meta,
        consumer: &ConsumerKey,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        let before = self.active_seq();
        if let Some(seq) = self.consumer_seqs.remove(consumer) {
            self.consumers.remove(&seq);
        }
        self.note_activation(before, fx);
        self.dispatch(meta, fx);
        Reply::Cancelled {
            consumer_count: self.consumer_count(),
        }
    }

    pub(super) fn credit(
        &mut self,
        meta: &Meta,
        consumer: &ConsumerKey,
        credit: u32,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        let tag = || consumer.tag.clone();
        let Some(seq) = self.consumer_seqs.get(consumer) else {
            return Reply::Error(QueueError::UnknownConsumer { tag: tag() });
        };
        let Some(c) = self.consumers.get_mut(seq) else {
            return Reply::Error(QueueError::UnknownConsumer { tag: tag() });
        };
        match &mut c.limit {
            Limit::Credit(n) => *n = n.saturating_add(credit),
            Limit::Prefetch(_) => return Reply::Error(QueueError::NotCreditMode { tag: tag() }),
        }
        self.dispatch(meta, fx);
        Reply::Ok
    }

    /// basic.get: the head message goes to `owner` as a pseudo-consumer.
    pub(super) fn get(
        &mut self,
        meta: &Meta,
        owner: OwnerId,
        no_ack: bool,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        self.expire_heads(meta.now_ms, fx);
        let Some(msg) = self.pop_head() else {
            return Reply::GetEmpty;
        };
        let reply = Reply::GetOk {
            msg_id: msg.id,
            msg: msg.payload.clone(),
            redelivered: msg.delivery_count > 0,
            message_count: self.message_count(),
        };
        if !no_ack {
            self.check_out(owner, None, msg);
        }
        reply
    }

    /// Hands ready messages to consumers with capacity, round-robin in
    /// subscription order (or only to the active one under SAC).
    pub(super) fn dispatch(&mut self, meta: &Meta, fx: &mut Vec<Effect<M>>) {
        while self.message_count() > 0 {
            let Some(seq) = self.next_consumer() else {
                return;
            };
            self.expire_heads(meta.now_ms, fx);
            let Some(msg) = self.pop_head() else {
                return;
            };
            self.deliver(seq, msg, fx);
        }
    }

    /// The consumer the next message goes to, if any has capacity.
    pub(super) fn next_consumer(&self) -> Option<u64> {
        if self.config.single_active_consumer {
            let (seq, c) = self.consumers.iter().next()?;
            return c.has_capacity().then_some(*seq);
        }
        let after = self.consumers.range(self.cursor..);
        let wrapped = self.consumers.range(..self.cursor);
        let mut order = after.chain(wrapped);
        order.find(|(_, c)| c.has_capacity()).map(|(seq, _)| *seq)
    }

    /// Sends `msg` to consumer `seq` (which must exist).
    pub(super) fn deliver(&mut self, seq: u64, msg: Msg<M>, fx: &mut Vec<Effect<M>>) {
        let Some(c) = self.consumers.get_mut(&seq) else {
            // Callers pass a seq from `next_consumer`; keep the message
            // rather than lose it if that ever stops holding.
            self.push_return(msg);
            return;
        };
        if let Limit::Credit(n) = &mut c.limit {
            *n = n.saturating_sub(1);
        }
        self.cursor = seq + 1;
        fx.push(Effect::Deliver {
            consumer: c.key.clone(),
            msg_id: msg.id,
            msg: msg.payload.clone(),
            redelivered: msg.delivery_count > 0,
            delivery_count: msg.delivery_count,
        });
        if !c.no_ack {
            c.unacked += 1;
            let owner = c.key.owner;
            self.check_out(owner, Some(seq), msg);
        }
    }

    pub(super) fn check_out(&mut self, owner: OwnerId, consumer: Option<u64>, msg: Msg<M>) {
        self.unacked_bytes += msg.size;
        let entry = CheckedOut {
            owner,
            consumer,
            msg,
        };
        self.checked_out.insert(entry.msg.id, entry);
    }

    /// Under single-active-consumer, announces a change of active consumer.
    pub(super) fn note_activation(&self, before: Option<u64>, fx: &mut Vec<Effect<M>>) {
        let after = self.active_seq();
        if after == before {
            return;
        }
        if let Some(c) = after.and_then(|s| self.consumers.get(&s)) {
            fx.push(Effect::ConsumerActivated {
                consumer: c.key.clone(),
            });
        }
    }
}
