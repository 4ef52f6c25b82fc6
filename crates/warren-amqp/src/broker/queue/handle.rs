//! The [`QueueHandle`] callers hold, and the requests they send through it
//! to a queue actor; a request that finds its queue gone is answered here.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use warren_core::message::Message;
use warren_core::queue::{ConsumerKey, MsgId, OwnerId};

use crate::broker::events::{ConfirmTo, ConnEvent, OwnerLink};
use crate::broker::limiter::Limiter;
use crate::error::{AmqpError, code};

/// A cheap, cloneable reference to a queue actor.
#[derive(Debug, Clone)]
pub struct QueueHandle(pub(super) Arc<HandleInner>);

#[derive(Debug)]
pub(super) struct HandleInner {
    pub(super) vhost: String,
    pub(super) name: String,
    pub(super) tx: mpsc::Sender<QueueRequest>,
    /// A proxy of a queue held by another node (see `remote`).
    pub(super) remote: bool,
}

/// The result of a basic.get.
pub enum GetResult {
    Ok {
        msg_id: MsgId,
        msg: Arc<Message>,
        redelivered: bool,
        message_count: u64,
    },
    Empty,
}

/// Conditions of a queue.delete.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteIf {
    pub unused: bool,
    pub empty: bool,
}

/// Requests a queue actor serves.
pub enum QueueRequest {
    Publish {
        msg: Arc<Message>,
        confirm: Option<ConfirmTo>,
    },
    Subscribe {
        consumer: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
        /// The channel's global prefetch: subscribe in credit mode under it.
        limiter: Option<Arc<Limiter>>,
        link: OwnerLink,
        reply: oneshot::Sender<Result<(), AmqpError>>,
    },
    /// A channel limiter this queue waited on has permits again.
    CreditAvailable,
    /// The consumer's connection wrote `count` no-ack deliveries to its
    /// socket: that much more credit for it.
    Written {
        consumer: ConsumerKey,
        count: u32,
    },
    Cancel {
        consumer: ConsumerKey,
    },
    Get {
        owner: OwnerId,
        no_ack: bool,
        link: OwnerLink,
        reply: oneshot::Sender<Result<GetResult, AmqpError>>,
    },
    Settle {
        owner: OwnerId,
        ids: Vec<MsgId>,
    },
    Return {
        owner: OwnerId,
        ids: Vec<MsgId>,
    },
    Discard {
        owner: OwnerId,
        ids: Vec<MsgId>,
    },
    OwnerDown {
        owner: OwnerId,
    },
    /// In a cluster: these nodes are down, and every owner living on one
    /// of them with it.
    NodesDown {
        nodes: Arc<std::collections::BTreeSet<u64>>,
    },
    Purge {
        reply: oneshot::Sender<u64>,
    },
    Stats {
        reply: oneshot::Sender<(u64, u32)>,
    },
    Delete {
        cond: DeleteIf,
        reply: oneshot::Sender<Result<u64, AmqpError>>,
    },
    /// In a cluster: the queue's log left this node (this node stopped
    /// reading it); the actor cancels its consumers here and stops, and
    /// what is still in its mailbox goes to `to`, the proxy in its place.
    Handover {
        to: QueueHandle,
    },
}

impl QueueHandle {
    /// A handle whose requests go to `tx`: the proxy of a queue held by
    /// another node (see `remote`).
    pub(crate) fn remote(vhost: &str, name: &str, tx: mpsc::Sender<QueueRequest>) -> Self {
        QueueHandle(Arc::new(HandleInner {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            tx,
            remote: true,
        }))
    }

    /// Whether this is the proxy of a queue held by another node.
    pub fn is_remote(&self) -> bool {
        self.0.remote
    }

    pub fn vhost(&self) -> &str {
        &self.0.vhost
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// True when both handles point at the same actor.
    pub fn same(&self, other: &QueueHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Sends a request, waiting for mailbox space (back-pressure). A queue
    /// that is gone drops the request: its deletion already settled it.
    /// Returns false when the queue is gone.
    pub async fn send(&self, req: QueueRequest) -> bool {
        if let Err(mpsc::error::SendError(req)) = self.0.tx.send(req).await {
            debug!(queue = %self.0.name, "request to a deleted queue dropped");
            answer_orphan(req);
            return false;
        }
        true
    }

    /// Sends without waiting; used by tasks that must never block (actors).
    pub fn send_now(&self, req: QueueRequest) {
        match self.0.tx.try_send(req) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(req)) => {
                let h = self.clone();
                tokio::spawn(async move { h.send(req).await });
            }
            Err(mpsc::error::TrySendError::Closed(req)) => answer_orphan(req),
        }
    }

    /// Sends a request and waits for the reply; a deleted queue answers 404.
    pub async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> QueueRequest,
    ) -> Result<T, AmqpError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await;
        rx.await.map_err(|_| {
            AmqpError::new(
                code::NOT_FOUND,
                format!("no queue '{}' in vhost '{}'", self.0.name, self.0.vhost),
            )
        })
    }
}

/// Deliveries a no-ack consumer may have on their way to its socket.
pub const NO_ACK_WINDOW: u32 = 1000;

/// A request that reached a queue after it was deleted: a confirmed publish
/// is still confirmed (the message was routed; its queue then went, as if
/// it had been deleted a moment later). Replies are dropped: their callers
/// see the queue as gone.
pub(crate) fn answer_orphan(req: QueueRequest) {
    if let QueueRequest::Publish {
        confirm: Some(c), ..
    } = req
    {
        let _ = c.tx.send(ConnEvent::Confirm {
            channel: c.channel,
            seq: c.seq,
            ok: true,
        });
    }
}
