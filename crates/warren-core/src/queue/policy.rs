//! Runtime changes of a queue's settings, as a RabbitMQ policy applies them
//! to a live queue.
//!
//! `max_priority` is not a policy key in RabbitMQ, so a driver keeps the
//! declared one; should it change anyway, queued messages keep the level
//! they arrived with (as they keep their expiry) and only new ones use the
//! new cap.

use super::config::{Overflow, QueueConfig};
use super::state::QueueState;
use super::types::{Effect, Meta, Reply};

impl<M: Clone> QueueState<M> {
    pub(super) fn update_config(
        &mut self,
        meta: &Meta,
        config: QueueConfig,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        let before = self.active_seq();
        self.config = config;
        self.note_activation(before, fx);
        self.expire_heads(meta.now_ms, fx);
        // A lowered limit trims the backlog now under drop-head; under
        // reject-publish RabbitMQ keeps what is there and refuses new ones.
        if self.config.overflow == Overflow::DropHead {
            self.drop_heads_over_limit(fx);
        }
        self.dispatch(meta, fx);
        Reply::Ok
    }
}
