//! The actor's consumers: credit under a channel-wide prefetch, deliveries
//! (and the other effects of the machine), and consumers cancelled by the
//! server (the queue deleted, or a consumer the replicated queue lost).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;
use warren_core::message::Message;
use warren_core::queue::{Command, ConsumerKey, Effect, MsgId};

use super::{Actor, Driver, Flow, Then};
use crate::broker::backend::QueueLog;
use crate::broker::events::{ConnEvent, Delivery};

/// A consumer of this node missing from the replicated queue this long is
/// cancelled (see `Actor::cancel_lost_consumers`).
const LOST_AFTER: Duration = Duration::from_secs(5);
const LOST_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Actor {
    /// Offers credit to consumers under a channel-wide prefetch while ready
    /// messages are waiting for it, one permit at a time, round-robin.
    pub(super) async fn grant_credit(&mut self) {
        while !self.credit.is_empty() {
            let outstanding: u64 = self.credit.values().map(|c| u64::from(c.outstanding)).sum();
            if self.message_count() <= outstanding {
                return;
            }
            let mut granted = None;
            for _ in 0..self.credit_order.len() {
                let Some(key) = self.credit_order.pop_front() else {
                    break;
                };
                self.credit_order.push_back(key.clone());
                let Some(c) = self.credit.get_mut(&key) else {
                    continue;
                };
                if c.outstanding == 0 && c.limiter.try_acquire(&self.me) {
                    c.outstanding = 1;
                    granted = Some(key);
                    break;
                }
            }
            let Some(consumer) = granted else { return };
            let cmd = Command::Credit {
                consumer,
                credit: 1,
            };
            if self.apply(cmd, Then::Nothing).await == Flow::Stop {
                return;
            }
        }
    }

    /// Forgets credit consumers (cancelled or gone), giving back the permits
    /// their unused credit held.
    pub(super) fn drop_credit(&mut self, gone: impl Fn(&ConsumerKey) -> bool) {
        let keys: Vec<ConsumerKey> = self.credit.keys().filter(|k| gone(k)).cloned().collect();
        for k in keys {
            if let Some(c) = self.credit.remove(&k) {
                c.limiter.release(c.outstanding);
            }
        }
        self.credit_order.retain(|k| !gone(k));
    }

    /// In a cluster: cancels (basic.cancel to the client) this node's
    /// consumers that the replicated queue no longer has. Its peers judged
    /// this node down while it was alive (a partition, a stalled disk), and
    /// an owner-down removed its consumers and returned their messages;
    /// such a consumer would otherwise wait for deliveries that never come.
    /// A consumer is cancelled once missing from the applied state for
    /// [`LOST_AFTER`] (a subscription not yet applied here is missing for a
    /// moment). Checked at most once a second.
    pub(super) fn cancel_lost_consumers(&mut self) {
        let Driver::Log { log, .. } = &self.driver else {
            return;
        };
        if !log.clustered() || self.last_lost_check.elapsed() < LOST_CHECK_EVERY {
            return;
        }
        self.last_lost_check = Instant::now();
        if self.no_ack.is_empty() {
            self.missing.clear();
            return;
        }
        let mut present = std::collections::BTreeSet::new();
        log.with_state(&mut |s| present = s.consumers().cloned().collect());
        let now = Instant::now();
        let mut lost = Vec::new();
        for key in self.no_ack.keys() {
            if present.contains(key) {
                continue;
            }
            let since = *self.missing.entry(key.clone()).or_insert(now);
            if now.duration_since(since) >= LOST_AFTER {
                lost.push(key.clone());
            }
        }
        self.missing.retain(|k, _| !present.contains(k));
        for key in lost {
            tracing::warn!(
                queue = %self.spec.name, consumer = %key.tag,
                "the queue no longer has this consumer (this node was judged down): cancelling it"
            );
            self.missing.remove(&key);
            self.no_ack.remove(&key);
            self.drop_credit(|k| *k == key);
            if let Some(link) = self.owners.get(&key.owner) {
                let _ = link.tx.send(ConnEvent::Cancelled {
                    channel: link.channel,
                    consumer_tag: key.tag.clone(),
                });
            }
        }
    }

    /// In a cluster, on a node that only reads the queue's log (it joined
    /// the queue's group to serve consumers here): once nothing here has
    /// used the queue for `release_readers_after` (no consumer, no message
    /// held by this node's channels, no request but publishes), the node
    /// stops reading it and a proxy takes this actor's place (see
    /// `Broker::release_reader`). Checked at most once a second.
    pub(super) async fn release_if_idle(&mut self) -> Flow {
        let Driver::Log { log, in_flight, .. } = &self.driver else {
            return Flow::Continue;
        };
        if !log.clustered() || self.last_idle_check.elapsed() < LOST_CHECK_EVERY {
            return Flow::Continue;
        }
        self.last_idle_check = Instant::now();
        let Some(broker) = self.broker.upgrade() else {
            return Flow::Continue;
        };
        let Some(after) = broker.config().release_readers_after else {
            return Flow::Continue;
        };
        if self.last_used.elapsed() < after
            || !self.no_ack.is_empty()
            || !in_flight.is_empty()
            || !self.resubmit.is_empty()
            || !log.reads_only()
        {
            return Flow::Continue;
        }
        let node = broker.config().node_id;
        let mut held = false;
        log.with_state(&mut |s| held = s.owners().iter().any(|o| o.node() == node));
        if held {
            return Flow::Continue;
        }
        match broker
            .release_reader(&self.spec.vhost, &self.spec.name, &self.me)
            .await
        {
            Some(proxy) => {
                self.successor = Some(proxy);
                Flow::Stop
            }
            None => {
                // Not now: try again after another idle spell.
                self.last_used = Instant::now();
                Flow::Continue
            }
        }
    }

    /// When an idle reader's actor must wake to see whether the node can
    /// stop reading the queue (see [`Self::release_if_idle`]); `None` for a
    /// replica, or when readers are never released.
    pub(super) fn release_due(&self, log: &dyn QueueLog) -> Option<Instant> {
        if !log.reads_only() {
            return None;
        }
        let after = self.broker.upgrade()?.config().release_readers_after?;
        Some((self.last_used + after).max(self.last_idle_check + LOST_CHECK_EVERY))
    }

    /// Tells every consumer's channel that the server cancelled it.
    pub(super) fn cancel_all_consumers(&mut self) {
        for key in self.no_ack.keys() {
            if let Some(link) = self.owners.get(&key.owner) {
                let _ = link.tx.send(ConnEvent::Cancelled {
                    channel: link.channel,
                    consumer_tag: key.tag.clone(),
                });
            }
        }
    }

    pub(super) fn run_effects(&mut self, effects: Vec<Effect<Arc<Message>>>) {
        for e in effects {
            self.run_effect(e);
        }
    }

    pub(super) fn run_effect(&mut self, e: Effect<Arc<Message>>) {
        match e {
            Effect::Deliver {
                consumer,
                msg_id,
                msg,
                redelivered,
                ..
            } => self.deliver(consumer, msg_id, msg, redelivered),
            Effect::DeadLetter { msg, reason } => {
                if let (Some(target), Some(b)) = (&self.spec.dead_letter, self.broker.upgrade()) {
                    b.dead_letter(&self.spec.vhost, &self.spec.name, target, &msg, reason);
                }
            }
            Effect::ConsumerActivated { .. } => {}
        }
    }

    fn deliver(
        &mut self,
        consumer: ConsumerKey,
        msg_id: MsgId,
        msg: Arc<Message>,
        redelivered: bool,
    ) {
        let no_ack = self.no_ack.get(&consumer).copied().unwrap_or(false);
        let limited = match self.credit.get_mut(&consumer) {
            Some(c) => {
                c.outstanding = c.outstanding.saturating_sub(1);
                true
            }
            None => false,
        };
        let Some(link) = self.owners.get(&consumer.owner) else {
            return;
        };
        let d = Delivery {
            channel: link.channel,
            consumer_tag: consumer.tag,
            queue: self.me.clone(),
            msg_id,
            msg,
            redelivered,
            no_ack,
            limited,
        };
        if link.tx.send(ConnEvent::Deliver(d)).is_err() {
            // The connection is gone; its OwnerDown is on the way and will
            // return the message to the queue.
            debug!(queue = %self.spec.name, "delivery to a closed connection");
        }
    }
}
