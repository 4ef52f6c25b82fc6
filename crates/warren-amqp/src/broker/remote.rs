//! A queue held by other nodes of the cluster: an exclusive queue lives on
//! its owner's node (in memory), and a durable queue on the nodes of its
//! replicas. Publishes routed to it here are handed to such a node
//! ([`Backend::publish_to`]) and confirmed once its queue took them (for a
//! durable queue: once committed).
//!
//! Nothing else goes through the proxy: only its owner's connection may
//! consume from, get from or delete an exclusive queue, and a durable
//! queue used here for anything but publishing is read here instead (the
//! node joins its group as a reader, and the proxy gives way to a local
//! actor: see `Broker::attach`).

use std::sync::Arc;

use tokio::sync::mpsc;

use warren_core::message::Message;

use super::backend::Backend;
use super::events::{ConfirmTo, ConnEvent};
use super::queue::{QueueHandle, QueueRequest, answer_orphan};

/// Where a proxy hands its publishes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Holder {
    /// The one node holding the queue (an exclusive queue's owner).
    Node(u64),
    /// A node holding a replica, found when first needed and found again
    /// after a failed hand-over (a durable queue).
    Replica,
}

/// At most this many publishes go over in one call; those that arrive
/// while a call is under way go in the next.
const BATCH: usize = 256;
/// How long a batch waits for a node holding its (durable) queue to be
/// reachable, e.g. while the queue elects a new leader.
const REACH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const REACH_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts the proxy of `vhost`/`name`, held by `holder`.
pub(crate) fn spawn(
    backend: Arc<dyn Backend>,
    holder: Holder,
    vhost: &str,
    name: &str,
    mailbox: usize,
) -> QueueHandle {
    let (tx, rx) = mpsc::channel(mailbox.max(1));
    let handle = QueueHandle::remote(vhost, name, tx);
    let proxy = Proxy {
        backend,
        holder,
        node: match holder {
            Holder::Node(n) => Some(n),
            Holder::Replica => None,
        },
        vhost: vhost.to_owned(),
        name: name.to_owned(),
    };
    tokio::spawn(proxy.run(rx));
    handle
}

struct Proxy {
    backend: Arc<dyn Backend>,
    holder: Holder,
    /// Where publishes go now.
    node: Option<u64>,
    vhost: String,
    name: String,
}

impl Proxy {
    async fn run(mut self, mut rx: mpsc::Receiver<QueueRequest>) {
        let mut batch = Vec::new();
        let mut next = None;
        // One call at a time, so a publisher's messages keep their order.
        'serve: loop {
            let req = match next.take() {
                Some(r) => r,
                None => match rx.recv().await {
                    Some(r) => r,
                    None => break,
                },
            };
            match req {
                QueueRequest::Publish { msg, confirm } => {
                    batch.push((msg, confirm));
                    // Whatever else waits goes along, up to a batch; the
                    // first other request ends it.
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(QueueRequest::Publish { msg, confirm }) => {
                                batch.push((msg, confirm))
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.hand_over(std::mem::take(&mut batch)).await;
                }
                QueueRequest::Delete { reply, .. } => {
                    // Gone from the metadata, or read here from now on: the
                    // proxy goes.
                    let _ = reply.send(Ok(0));
                    break 'serve;
                }
                other => answer_orphan(other),
            }
        }
        rx.close();
        while let Ok(req) = rx.try_recv() {
            answer_orphan(req);
        }
    }

    /// Hands `batch` to the holder and confirms each message as it went.
    /// While no node holding the queue can be reached (its leader just
    /// died, say), nothing was handed over, so the batch is tried again
    /// for a while rather than nacked.
    async fn hand_over(&mut self, batch: Vec<(Arc<Message>, Option<ConfirmTo>)>) {
        let n = batch.len();
        let deadline = tokio::time::Instant::now() + REACH_WAIT;
        let taken = loop {
            let (vhost, name) = (&self.vhost, &self.name);
            if self.node.is_none() {
                self.node = match self.backend.locate_queue(vhost, name).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%vhost, queue = %name, error = %e,
                            "finding a node that holds the queue failed");
                        None
                    }
                };
            }
            let msgs = batch.iter().map(|(m, _)| m.clone()).collect();
            let reached = match self.node {
                None => None,
                Some(node) => match self.backend.publish_to(node, vhost, name, msgs).await {
                    Ok(reached) => reached,
                    Err(e) => {
                        // It may or may not have been taken: not tried again.
                        tracing::warn!(%vhost, queue = %name, node, error = %e,
                            "handing messages to the queue's node failed");
                        Some(vec![false; n])
                    }
                },
            };
            match reached {
                Some(taken) => break taken,
                None if matches!(self.holder, Holder::Replica)
                    && tokio::time::Instant::now() < deadline =>
                {
                    self.node = None;
                    tokio::time::sleep(REACH_RETRY).await;
                }
                None => {
                    tracing::warn!(vhost = %self.vhost, queue = %self.name, node = ?self.node,
                        "no node holding the queue could be reached");
                    break vec![false; n];
                }
            }
        };
        let refused = taken.iter().filter(|t| !**t).count();
        if refused > 0 {
            tracing::debug!(vhost = %self.vhost, queue = %self.name, node = ?self.node, refused,
                "publishes handed over and not taken: nacks");
            if matches!(self.holder, Holder::Replica) {
                // Its leader may have moved: look again next time.
                self.node = None;
            }
        }
        for ((_, confirm), ok) in batch.into_iter().zip(taken) {
            if let Some(c) = confirm {
                let _ = c.tx.send(ConnEvent::Confirm {
                    channel: c.channel,
                    seq: c.seq,
                    ok,
                });
            }
        }
    }
}
