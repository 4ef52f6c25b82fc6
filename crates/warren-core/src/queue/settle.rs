//! Ending a checkout: settle (ack), return (requeue), discard (reject
//! without requeue), and the owner going down.

use std::collections::BTreeSet;

use super::error::QueueError;
use super::state::{Msg, QueueState};
use super::types::{DeadLetterReason, Effect, Meta, MsgId, OwnerId, Reply};

impl<M: Clone> QueueState<M> {
    pub(super) fn settle(
        &mut self,
        meta: &Meta,
        owner: OwnerId,
        ids: &[MsgId],
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        match self.take_checked_out(owner, ids) {
            Ok(_) => {
                self.dispatch(meta, fx);
                Reply::Ok
            }
            Err(e) => Reply::Error(e),
        }
    }

    pub(super) fn return_msgs(
        &mut self,
        meta: &Meta,
        owner: OwnerId,
        ids: &[MsgId],
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        match self.take_checked_out(owner, ids) {
            Ok(msgs) => {
                for msg in msgs {
                    self.requeue(msg, fx);
                }
                self.dispatch(meta, fx);
                Reply::Ok
            }
            Err(e) => Reply::Error(e),
        }
    }

    pub(super) fn discard(
        &mut self,
        meta: &Meta,
        owner: OwnerId,
        ids: &[MsgId],
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        match self.take_checked_out(owner, ids) {
            Ok(msgs) => {
                for msg in msgs {
                    self.dead_letter(msg, DeadLetterReason::Rejected, fx);
                }
                self.dispatch(meta, fx);
                Reply::Ok
            }
            Err(e) => Reply::Error(e),
        }
    }

    /// The channel is gone: its consumers are cancelled and everything it
    /// held goes back to the queue (in id order), as if returned.
    pub(super) fn owner_down(
        &mut self,
        meta: &Meta,
        owner: OwnerId,
        fx: &mut Vec<Effect<M>>,
    ) -> Reply<M> {
        let before = self.active_seq();
        let gone: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.key.owner == owner)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in gone {
            if let Some(c) = self.consumers.remove(&seq) {
                self.consumer_seqs.remove(&c.key);
            }
        }
        let held = self.checked_out_ids(owner);
        if let Ok(msgs) = self.take_checked_out(owner, &held) {
            for msg in msgs {
                self.requeue(msg, fx);
            }
        }
        self.note_activation(before, fx);
        self.dispatch(meta, fx);
        Reply::Cancelled {
            consumer_count: self.consumer_count(),
        }
    }

    /// Puts a message back as ready, unless it has now gone back more often
    /// than the delivery limit allows.
    fn requeue(&mut self, mut msg: Msg<M>, fx: &mut Vec<Effect<M>>) {
        msg.delivery_count = msg.delivery_count.saturating_add(1);
        match self.config.delivery_limit {
            Some(limit) if msg.delivery_count > limit => {
                self.dead_letter(msg, DeadLetterReason::DeliveryLimit, fx);
            }
            _ => self.push_return(msg),
        }
    }

    /// Removes the given messages from `owner`'s checkouts, all or none: an
    /// id not checked out to `owner` (or repeated) fails the whole command.
    fn take_checked_out(
        &mut self,
        owner: OwnerId,
        ids: &[MsgId],
    ) -> Result<Vec<Msg<M>>, QueueError> {
        let mut seen = BTreeSet::new();
        for &id in ids {
            let mine = self.checked_out.get(&id).is_some_and(|c| c.owner == owner);
            if !mine || !seen.insert(id) {
                return Err(QueueError::UnknownDeliveryTag { msg_id: id });
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(entry) = self.checked_out.remove(id) else {
                continue;
            };
            self.unacked_bytes -= entry.msg.size;
            let consumer = entry.consumer.and_then(|seq| self.consumers.get_mut(&seq));
            if let Some(c) = consumer {
                c.unacked = c.unacked.saturating_sub(1);
            }
            out.push(entry.msg);
        }
        Ok(out)
    }
}
