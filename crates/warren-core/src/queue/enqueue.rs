//! Enqueue with priorities (x-max-priority) and length limits
//! (x-max-length, x-max-length-bytes, x-overflow), and purge.

use super::config::Overflow;
use super::state::{Msg, QueueState};
use super::types::{DeadLetterReason, Effect, Meta, Reply};

impl<M: Clone> QueueState<M> {
    pub(super) fn enqueue(
        &mut self,
        meta: &Meta,
        payload: M,
        size: u64,
        expiration_ms: Option<u64>,
        priority: u8,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        if self.config.overflow != Overflow::DropHead && self.would_overflow(size) {
            if self.config.overflow == Overflow::RejectPublishDlx && self.config.dead_letter {
                fx.push(Effect::DeadLetter {
                    msg: payload,
                    reason: DeadLetterReason::MaxLen,
                });
            }
            return Reply::Rejected;
        }
        let msg = Msg {
            id: self.next_msg_id,
            size,
            expiry: self.expiry_for(meta.now_ms, expiration_ms),
            delivery_count: 0,
            priority: self.level_for(priority),
            payload,
        };
        self.next_msg_id += 1;
        let msg_id = msg.id;
        // Nothing is ready whenever a consumer has capacity (dispatch runs
        // after every change), so a waiting consumer gets the message at
        // once, even with a TTL of 0 — RabbitMQ's "deliver now or expire".
        match self.next_consumer() {
            Some(seq) if self.message_count() == 0 => self.deliver(seq, msg, fx),
            _ => {
                self.push_ready(msg);
                self.expire_heads(meta.now_ms, fx);
                self.drop_heads_over_limit(fx);
            }
        }
        Reply::Enqueued { msg_id }
    }

    /// Whether one more ready message of `size` bytes exceeds a limit.
    fn would_overflow(&self, size: u64) -> bool {
        let count = self
            .config
            .max_length
            .is_some_and(|max| self.message_count() + 1 > max);
        let bytes = self
            .config
            .max_length_bytes
            .is_some_and(|max| self.ready.bytes().saturating_add(size) > max);
        count || bytes
    }

    /// The level a message with this `priority` property is kept at: capped
    /// at `x-max-priority` (RabbitMQ treats a higher one as the maximum); all
    /// messages share level 0 in a queue without priorities.
    fn level_for(&self, priority: u8) -> u8 {
        self.config.max_priority.map_or(0, |max| priority.min(max))
    }

    /// Drop-head overflow: dead-letter ready messages from the head of the
    /// delivery order until the queue is within its limits. Under
    /// priorities that is the highest priority's oldest message, as in
    /// RabbitMQ (`rabbit_priority_queue:drop/2` takes the first non-empty
    /// sub-queue; its docs warn that high-priority messages may be dropped
    /// to make way for lower ones).
    pub(super) fn drop_heads_over_limit(&mut self, fx: &mut Vec<Effect<M>>) {
        loop {
            let count = self
                .config
                .max_length
                .is_some_and(|max| self.message_count() > max);
            let bytes = self
                .config
                .max_length_bytes
                .is_some_and(|max| self.ready.bytes() > max);
            if !(count || bytes) {
                return;
            }
            let Some(msg) = self.pop_head() else {
                return;
            };
            self.dead_letter(msg, DeadLetterReason::MaxLen, fx);
        }
    }

    /// queue.purge: ready messages go (without dead-lettering, as in
    /// RabbitMQ); unacked ones stay with their consumers.
    pub(super) fn purge(&mut self) -> Reply<M> {
        let count = self.message_count();
        self.ready.clear();
        Reply::Purged { count }
    }
}
