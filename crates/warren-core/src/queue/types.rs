//! The vocabulary of the queue machine: ids, commands, replies and effects.
//!
//! Everything here is plain data so that a command can be written to a Raft
//! log and replayed, and so that tests can compare replies and effects with
//! `assert_eq!`.

use super::config::QueueConfig;
use super::error::QueueError;

/// Identifies a message inside one queue. Assigned by the machine at
/// `Enqueue`, strictly increasing, never reused (so a stale id from before a
/// purge or a requeue can never hit a different message).
pub type MsgId = u64;

/// Metadata stamped on every command by whoever orders the commands: the
/// Raft log index (or a local counter for the in-memory driver) and the
/// leader's clock, so that every replica sees the same time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub index: u64,
    pub now_ms: u64,
}

/// The party that holds deliveries: an AMQP channel. Messages checked out
/// to an owner go back to the queue when the owner goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(pub u64);

impl OwnerId {
    /// Bits below the node id in an owner id: an owner (a channel) lives
    /// on one node, and in a cluster the node applying a queue's log
    /// executes the deliveries of its own owners.
    pub const NODE_SHIFT: u32 = 52;
    /// Largest node id an owner id can carry.
    pub const MAX_NODE: u64 = (1 << (64 - Self::NODE_SHIFT)) - 1;

    /// An owner id of node `node` (at most [`Self::MAX_NODE`]), unique on
    /// that node by `local` (taken modulo 2^52).
    pub fn on_node(node: u64, local: u64) -> OwnerId {
        OwnerId((node << Self::NODE_SHIFT) | (local & ((1 << Self::NODE_SHIFT) - 1)))
    }

    /// The node the owner lives on.
    pub fn node(self) -> u64 {
        self.0 >> Self::NODE_SHIFT
    }
}

/// A consumer: its channel plus the consumer tag it registered under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsumerKey {
    pub owner: OwnerId,
    pub tag: String,
}

impl ConsumerKey {
    pub fn new(owner: OwnerId, tag: impl Into<String>) -> Self {
        ConsumerKey {
            owner,
            tag: tag.into(),
        }
    }
}

/// An input of the machine. Each is applied atomically: a command that
/// fails with `Reply::Error` leaves the state untouched.
#[derive(Clone, Debug, PartialEq)]
pub enum Command<M> {
    /// Publish one message. `expiration_ms` is the per-message TTL
    /// (relative); the queue TTL, if shorter, wins. `priority` is the
    /// message's `priority` property (0 when absent); only a queue with
    /// `x-max-priority` acts on it.
    Enqueue {
        msg: M,
        size: u64,
        expiration_ms: Option<u64>,
        priority: u8,
    },
    /// basic.consume. `prefetch` 0 means unlimited.
    Subscribe {
        consumer: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
    },
    /// Subscribe a consumer that starts with no credit and receives one
    /// message per credit granted by `Credit` (settling does not give
    /// credit back). The frontend uses it to enforce a channel-wide
    /// prefetch (global basic.qos) across several queues.
    SubscribeCredit {
        consumer: ConsumerKey,
        no_ack: bool,
        exclusive: bool,
    },
    /// basic.cancel. Messages already delivered stay with the owner.
    Cancel { consumer: ConsumerKey },
    /// Grant more deliveries to a consumer subscribed with `SubscribeCredit`.
    Credit { consumer: ConsumerKey, credit: u32 },
    /// basic.get.
    Get { owner: OwnerId, no_ack: bool },
    /// basic.ack.
    Settle { owner: OwnerId, msg_ids: Vec<MsgId> },
    /// Requeue (nack/reject requeue=true, basic.recover requeue=true).
    Return { owner: OwnerId, msg_ids: Vec<MsgId> },
    /// reject/nack requeue=false: dead-letter or drop.
    Discard { owner: OwnerId, msg_ids: Vec<MsgId> },
    /// The channel is gone: cancel its consumers, requeue its messages.
    OwnerDown { owner: OwnerId },
    /// queue.purge: removes ready messages only.
    Purge,
    /// Expire messages whose TTL passed at `Meta::now_ms`.
    Tick,
    /// A policy changed the queue's effective settings. Messages already
    /// queued keep the expiry computed when they arrived (as in RabbitMQ);
    /// new length limits apply at once.
    UpdateConfig { config: QueueConfig },
}

/// The answer to the command's issuer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<M> {
    Ok,
    Enqueued {
        msg_id: MsgId,
    },
    /// The queue is full and overflows with reject-publish: nack the publisher.
    Rejected,
    GetOk {
        msg_id: MsgId,
        msg: M,
        redelivered: bool,
        /// Ready messages left after this one.
        message_count: u64,
    },
    GetEmpty,
    Purged {
        count: u64,
    },
    /// After `Cancel` or `OwnerDown`: consumers left (for auto-delete).
    Cancelled {
        consumer_count: u32,
    },
    Error(QueueError),
}

/// Work for the driver. In the replicated driver only the leader executes
/// them; every replica computes them identically.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect<M> {
    /// Send a message to a consumer. `delivery_count` is the number of
    /// times the message went back to the queue before (0 on first delivery).
    Deliver {
        consumer: ConsumerKey,
        msg_id: MsgId,
        msg: M,
        redelivered: bool,
        delivery_count: u32,
    },
    /// Republish to the dead-letter exchange. Only emitted when the queue
    /// has one configured; otherwise the message is silently dropped.
    DeadLetter { msg: M, reason: DeadLetterReason },
    /// With single-active-consumer: this consumer now receives the messages.
    ConsumerActivated { consumer: ConsumerKey },
}

/// Why a message was dead-lettered (the `x-death` `reason` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadLetterReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl<M> Command<M> {
    /// The same command with its message (only `Enqueue` has one) turned
    /// into another form, e.g. a shared pointer into the message itself.
    pub fn map_msg<N>(self, f: impl FnOnce(M) -> N) -> Command<N> {
        match self {
            Command::Enqueue {
                msg,
                size,
                expiration_ms,
                priority,
            } => Command::Enqueue {
                msg: f(msg),
                size,
                expiration_ms,
                priority,
            },
            Command::Subscribe {
                consumer,
                prefetch,
                no_ack,
                exclusive,
            } => Command::Subscribe {
                consumer,
                prefetch,
                no_ack,
                exclusive,
            },
            Command::SubscribeCredit {
                consumer,
                no_ack,
                exclusive,
            } => Command::SubscribeCredit {
                consumer,
                no_ack,
                exclusive,
            },
            Command::Cancel { consumer } => Command::Cancel { consumer },
            Command::Credit { consumer, credit } => Command::Credit { consumer, credit },
            Command::Get { owner, no_ack } => Command::Get { owner, no_ack },
            Command::Settle { owner, msg_ids } => Command::Settle { owner, msg_ids },
            Command::Return { owner, msg_ids } => Command::Return { owner, msg_ids },
            Command::Discard { owner, msg_ids } => Command::Discard { owner, msg_ids },
            Command::OwnerDown { owner } => Command::OwnerDown { owner },
            Command::Purge => Command::Purge,
            Command::Tick => Command::Tick,
            Command::UpdateConfig { config } => Command::UpdateConfig { config },
        }
    }
}

impl<M> Reply<M> {
    /// The same reply with its message (only `GetOk` has one) turned into
    /// another form; `None` if `f` finds none.
    pub fn map_msg<N>(self, f: impl FnOnce(M) -> Option<N>) -> Option<Reply<N>> {
        Some(match self {
            Reply::Ok => Reply::Ok,
            Reply::Enqueued { msg_id } => Reply::Enqueued { msg_id },
            Reply::Rejected => Reply::Rejected,
            Reply::GetOk {
                msg_id,
                msg,
                redelivered,
                message_count,
            } => Reply::GetOk {
                msg_id,
                msg: f(msg)?,
                redelivered,
                message_count,
            },
            Reply::GetEmpty => Reply::GetEmpty,
            Reply::Purged { count } => Reply::Purged { count },
            Reply::Cancelled { consumer_count } => Reply::Cancelled { consumer_count },
            Reply::Error(e) => Reply::Error(e),
        })
    }
}

impl<M> Effect<M> {
    /// The same effect with its message (if it has one) turned into another
    /// form; `None` if `f` finds none.
    pub fn map_msg<N>(self, f: impl FnOnce(M) -> Option<N>) -> Option<Effect<N>> {
        Some(match self {
            Effect::Deliver {
                consumer,
                msg_id,
                msg,
                redelivered,
                delivery_count,
            } => Effect::Deliver {
                consumer,
                msg_id,
                msg: f(msg)?,
                redelivered,
                delivery_count,
            },
            Effect::DeadLetter { msg, reason } => Effect::DeadLetter {
                msg: f(msg)?,
                reason,
            },
            Effect::ConsumerActivated { consumer } => Effect::ConsumerActivated { consumer },
        })
    }
}

impl DeadLetterReason {
    /// The text RabbitMQ puts in the `x-death` header.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::MaxLen => "maxlen",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
        }
    }
}
