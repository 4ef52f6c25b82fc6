//! The queue's state as plain data, for snapshots: `image` exports it and
//! `from_image` rebuilds the identical state, so that a replicated driver
//! can store the state itself rather than the history that produced it
//! (a snapshot then costs what the queue holds, not what it went through).
//!
//! The image holds what the state cannot recompute; counters that follow
//! from it (ready count and bytes, unacked bytes, the consumer-tag index)
//! are recomputed by `from_image`, so an image can never disagree with them.
//! A consumer's `unacked` is kept as is: it is the consumer's own record.

use std::collections::BTreeMap;

use super::config::QueueConfig;
use super::ready::Ready;
use super::state::{CheckedOut, Consumer, Limit, Msg, QueueState};
use super::types::{ConsumerKey, MsgId, OwnerId};

/// Everything a [`QueueState`] holds, as public plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueImage<M> {
    pub config: QueueConfig,
    /// How errors name the queue, e.g. "queue 'q' in vhost '/'".
    pub resource: String,
    /// The id the next enqueued message gets.
    pub next_msg_id: MsgId,
    /// Ready messages in delivery order (highest priority first; within a
    /// priority the requeued ones, by id, then the never-delivered ones).
    pub ready: Vec<ReadyMsg<M>>,
    /// Delivered (or got) and unsettled messages, by ascending id.
    pub checked_out: Vec<CheckedOutMsg<M>>,
    /// Subscribed consumers in subscription order.
    pub consumers: Vec<ConsumerImage>,
    /// The sequence number the next subscription gets.
    pub next_consumer_seq: u64,
    /// Round-robin position: the next delivery goes to the first consumer
    /// with capacity whose sequence number is at least this, wrapping.
    pub cursor: u64,
}

/// One message the queue holds.
#[derive(Clone, Debug, PartialEq)]
pub struct MsgImage<M> {
    pub id: MsgId,
    pub size: u64,
    /// Absolute ms at which it expires.
    pub expiry: Option<u64>,
    /// Times it went back to the queue.
    pub delivery_count: u32,
    /// Its priority level (already capped at the queue's x-max-priority).
    pub priority: u8,
    pub payload: M,
}

/// A ready message, and whether it is among the requeued ones of its
/// priority (they go out first, in id order) rather than the fresh ones.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyMsg<M> {
    pub msg: MsgImage<M>,
    pub requeued: bool,
}

/// A message checked out to `owner`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedOutMsg<M> {
    pub owner: OwnerId,
    /// Sequence number of the subscription it was delivered to; `None` for
    /// basic.get.
    pub consumer: Option<u64>,
    pub msg: MsgImage<M>,
}

/// A subscribed consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerImage {
    /// Its subscription sequence number (the order of subscriptions).
    pub seq: u64,
    pub key: ConsumerKey,
    pub no_ack: bool,
    pub exclusive: bool,
    pub limit: Limit,
    /// Messages delivered to it and not yet settled or returned.
    pub unacked: u32,
}

impl<M: Clone> From<&Msg<M>> for MsgImage<M> {
    fn from(m: &Msg<M>) -> Self {
        MsgImage {
            id: m.id,
            size: m.size,
            expiry: m.expiry,
            delivery_count: m.delivery_count,
            priority: m.priority,
            payload: m.payload.clone(),
        }
    }
}

impl<M> From<MsgImage<M>> for Msg<M> {
    fn from(m: MsgImage<M>) -> Self {
        Msg {
            id: m.id,
            size: m.size,
            expiry: m.expiry,
            delivery_count: m.delivery_count,
            priority: m.priority,
            payload: m.payload,
        }
    }
}

impl<M: Clone> QueueState<M> {
    /// The state as plain data (payloads cloned).
    pub fn image(&self) -> QueueImage<M> {
        let (mut image, ready, checked_out) = self.image_parts();
        image.ready = ready.collect();
        image.checked_out = checked_out.collect();
        image
    }

    /// [`Self::image`] with its two message lists (`ready`, `checked_out`)
    /// left empty and given as iterators instead, in the same order: a
    /// caller that encodes a deep queue's image row by row never holds
    /// a copy of every message.
    #[allow(clippy::type_complexity)]
    pub fn image_parts(
        &self,
    ) -> (
        QueueImage<M>,
        impl Iterator<Item = ReadyMsg<M>> + '_,
        impl Iterator<Item = CheckedOutMsg<M>> + '_,
    ) {
        let ready = self.ready.iter_requeued().map(|(m, requeued)| ReadyMsg {
            msg: m.into(),
            requeued,
        });
        let checked_out = self.checked_out.values().map(|c| CheckedOutMsg {
            owner: c.owner,
            consumer: c.consumer,
            msg: (&c.msg).into(),
        });
        let consumers = self.consumers.iter().map(|(seq, c)| ConsumerImage {
            seq: *seq,
            key: c.key.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            limit: c.limit,
            unacked: c.unacked,
        });
        let image = QueueImage {
            config: self.config.clone(),
            resource: self.resource.clone(),
            next_msg_id: self.next_msg_id,
            ready: Vec::new(),
            checked_out: Vec::new(),
            consumers: consumers.collect(),
            next_consumer_seq: self.next_consumer_seq,
            cursor: self.cursor,
        };
        (image, ready, checked_out)
    }

    /// The state `image` was taken of: `from_image(s.image()) == s`, and
    /// applying the same commands to both gives the same replies and effects.
    pub fn from_image(image: QueueImage<M>) -> Self {
        let mut ready = Ready::new();
        for r in image.ready {
            match r.requeued {
                true => ready.push_return(r.msg.into()),
                false => ready.push_fresh(r.msg.into()),
            }
        }
        let mut unacked_bytes = 0u64;
        let mut checked_out = BTreeMap::new();
        for c in image.checked_out {
            unacked_bytes = unacked_bytes.saturating_add(c.msg.size);
            let entry = CheckedOut {
                owner: c.owner,
                consumer: c.consumer,
                msg: c.msg.into(),
            };
            checked_out.insert(entry.msg.id, entry);
        }
        let mut consumers = BTreeMap::new();
        let mut consumer_seqs = BTreeMap::new();
        for c in image.consumers {
            consumer_seqs.insert(c.key.clone(), c.seq);
            let entry = Consumer {
                key: c.key,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                limit: c.limit,
                unacked: c.unacked,
            };
            consumers.insert(c.seq, entry);
        }
        QueueState {
            config: image.config,
            resource: image.resource,
            next_msg_id: image.next_msg_id,
            ready,
            checked_out,
            unacked_bytes,
            consumers,
            consumer_seqs,
            next_consumer_seq: image.next_consumer_seq,
            cursor: image.cursor,
        }
    }
}
