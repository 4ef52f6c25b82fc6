//! Message TTL. As in RabbitMQ, messages expire only when they reach the
//! head of the queue: a Tick, a dispatch or a get removes expired heads, so
//! a message with a short per-message TTL behind a long-lived one waits for
//! it (the price of never scanning the whole queue), and in a priority
//! queue an expired low-priority message waits behind live higher ones. The driver asks
//! `next_expiry` when to send the next Tick.

use super::state::QueueState;
use super::types::{DeadLetterReason, Effect, Reply};

impl<M: Clone> QueueState<M> {
    /// Absolute expiry of a message enqueued at `now_ms`: the shorter of the
    /// queue TTL and the message's own expiration.
    pub(super) fn expiry_for(&self, now_ms: u64, expiration_ms: Option<u64>) -> Option<u64> {
        let ttl = match (self.config.message_ttl_ms, expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ttl.map(|t| now_ms.saturating_add(t))
    }

    /// Removes expired messages from the heads (see `Ready::expire_heads`
    /// for which heads count under priorities), dead-lettering them.
    pub(super) fn expire_heads(&mut self, now_ms: u64, fx: &mut Vec<Effect<M>>) {
        for msg in self.ready.expire_heads(now_ms) {
            self.dead_letter(msg, DeadLetterReason::Expired, fx);
        }
    }

    pub(super) fn tick(&mut self, now_ms: u64, fx: &mut Vec<Effect<M>>) -> Reply<M> {
        self.expire_heads(now_ms, fx);
        Reply::Ok
    }
}
