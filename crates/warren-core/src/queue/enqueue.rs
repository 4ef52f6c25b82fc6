//! Enqueue with length limits (x-max-length, x-max-length-bytes, x-overflow),
//! and purge.

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
            .is_some_and(|max| self.ready_bytes.saturating_add(size) > max);
        count || bytes
    }

    /// Drop-head overflow: dead-letter the oldest ready messages until the
    /// queue is within its limits.
    pub(super) fn drop_heads_over_limit(&mut self, fx: &mut Vec<Effect<M>>) {
        loop {
            let count = self
                .config
                .max_length
                .is_some_and(|max| self.message_count() > max);
            let bytes = self
                .config
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes > max);
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
        self.returns.clear();
        self.messages.clear();
        self.ready_bytes = 0;
        Reply::Purged { count }
    }
}
