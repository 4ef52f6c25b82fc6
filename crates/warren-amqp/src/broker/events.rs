//! What queue actors send to connections, and how they address them.

use std::sync::Arc;

use tokio::sync::mpsc;
use warren_core::message::Message;
use warren_core::queue::MsgId;

use super::queue::QueueHandle;

/// Events a connection task receives from the rest of the broker.
#[derive(Debug)]
pub enum ConnEvent {
    /// A message for one of this connection's consumers.
    Deliver(Delivery),
    /// Every queue a confirmed publish was routed to has taken it (or refused it).
    Confirm { channel: u16, seq: u64, ok: bool },
    /// The server cancels a consumer (its queue was deleted).
    Cancelled { channel: u16, consumer_tag: String },
    /// A direct reply-to message for a channel's reply consumer.
    Reply {
        channel: u16,
        consumer_tag: String,
        msg: Arc<Message>,
    },
    /// Ask the connection to close with this error (e.g. forced by an operator).
    Close { code: u16, text: String },
}

/// One delivery to a consumer.
#[derive(Debug)]
pub struct Delivery {
    pub channel: u16,
    pub consumer_tag: String,
    pub queue: QueueHandle,
    pub msg_id: MsgId,
    pub msg: Arc<Message>,
    pub redelivered: bool,
    pub no_ack: bool,
    /// Sent on a permit of the channel's global-prefetch limiter.
    pub limited: bool,
}

/// The sending side of a connection's event channel.
pub type ConnSender = mpsc::UnboundedSender<ConnEvent>;

/// How a queue reaches the channel that owns a consumer or a basic.get.
#[derive(Debug, Clone)]
pub struct OwnerLink {
    pub tx: ConnSender,
    pub channel: u16,
}

/// Where to report a publisher confirm once the queue has taken the message.
#[derive(Debug, Clone)]
pub struct ConfirmTo {
    pub tx: ConnSender,
    pub channel: u16,
    pub seq: u64,
}
