//! Errors of the queue machine, with the AMQP reply code and RabbitMQ's text.
//!
//! The machine does not need to know its queue's name, but RabbitMQ's texts
//! name it ("queue 'q' in vhost '/'"); variants that name the queue carry a
//! `resource` string, filled in from [`QueueState::with_name`] or
//! [`QueueError::in_queue`], and "queue" when no name was given.
//!
//! [`QueueState::with_name`]: super::QueueState::with_name

use super::types::MsgId;

/// How RabbitMQ names a queue in reply texts (`rabbit_misc:rs/1`).
pub fn resource_name(vhost: &str, queue: &str) -> String {
    format!("queue '{queue}' in vhost '{vhost}'")
}

/// The resource text used when the queue's name is unknown.
pub(super) const UNNAMED: &str = "queue";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A declare argument has a bad type or value. `reason` is rendered as
    /// RabbitMQ renders the Erlang error term, e.g. `{value_negative,-1}`.
    #[error("PRECONDITION_FAILED - invalid arg '{arg}' for {resource}: {reason}")]
    InvalidArgument {
        arg: String,
        reason: String,
        resource: String,
    },
    /// Settle/Return/Discard of a message not checked out to that owner.
    /// The driver maps its delivery tags to msg ids and validates them
    /// first, so reaching this means the two disagree; it carries the msg
    /// id, which the driver translates back to the client's delivery tag.
    #[error("PRECONDITION_FAILED - unknown delivery tag {msg_id}")]
    UnknownDeliveryTag { msg_id: MsgId },
    /// An exclusive consume on a queue that has consumers, or any consume on
    /// a queue with an exclusive consumer.
    #[error("ACCESS_REFUSED - {resource} in exclusive use")]
    ExclusiveConsumer { resource: String },
    /// The owner already has a consumer with this tag on this queue.
    #[error("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'")]
    ConsumerTagInUse { tag: String },
    /// `Credit` for a consumer the queue does not know.
    #[error("PRECONDITION_FAILED - unknown consumer tag '{tag}'")]
    UnknownConsumer { tag: String },
    /// `Credit` for a consumer that subscribed with a prefetch rather than
    /// in credit mode: a frontend bug, not a client error.
    #[error("INTERNAL_ERROR - consumer '{tag}' is not in credit mode")]
    NotCreditMode { tag: String },
}

impl QueueError {
    /// The AMQP reply code to close the channel (or connection) with.
    pub fn reply_code(&self) -> u16 {
        match self {
            QueueError::InvalidArgument { .. }
            | QueueError::UnknownDeliveryTag { .. }
            | QueueError::UnknownConsumer { .. } => 406,
            QueueError::ExclusiveConsumer { .. } => 403,
            QueueError::ConsumerTagInUse { .. } => 530,
            QueueError::NotCreditMode { .. } => 541,
        }
    }

    /// Names the queue in the text, for errors raised before a state exists
    /// (argument parsing at queue.declare).
    pub fn in_queue(self, vhost: &str, queue: &str) -> Self {
        match self {
            QueueError::InvalidArgument { arg, reason, .. } => QueueError::InvalidArgument {
                arg,
                reason,
                resource: resource_name(vhost, queue),
            },
            QueueError::ExclusiveConsumer { .. } => QueueError::ExclusiveConsumer {
                resource: resource_name(vhost, queue),
            },
            other => other,
        }
    }
}
