//! A queue held by another node of the cluster (an exclusive queue lives
//! on its owner's node, in memory): publishes routed to it here are handed
//! to that node ([`Backend::publish_to`]) and confirmed once its queue took
//! them. Nothing else can reach such a queue from here: only its owner's
//! connection may consume from, get from or delete an exclusive queue.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::backend::Backend;
use super::events::ConnEvent;
use super::queue::{QueueHandle, QueueRequest, answer_orphan};

/// Starts the proxy of `vhost`/`name` held by `node`.
pub(crate) fn spawn(
    backend: Arc<dyn Backend>,
    node: u64,
    vhost: &str,
    name: &str,
    mailbox: usize,
) -> QueueHandle {
    let (tx, mut rx) = mpsc::channel(mailbox.max(1));
    let handle = QueueHandle::with_mailbox(vhost, name, tx);
    let (vhost, name) = (vhost.to_owned(), name.to_owned());
    tokio::spawn(async move {
        // One at a time, so a publisher's messages keep their order.
        while let Some(req) = rx.recv().await {
            match req {
                QueueRequest::Publish { msg, confirm } => {
                    let taken = match backend.publish_to(node, &vhost, &name, msg).await {
                        Ok(taken) => taken,
                        Err(e) => {
                            tracing::warn!(%vhost, queue = %name, node, error = %e,
                                "handing a message to the queue's node failed");
                            false
                        }
                    };
                    if let Some(c) = confirm {
                        let _ = c.tx.send(ConnEvent::Confirm {
                            channel: c.channel,
                            seq: c.seq,
                            ok: taken,
                        });
                    }
                }
                QueueRequest::Delete { reply, .. } => {
                    // Gone from the metadata: the proxy goes too.
                    let _ = reply.send(Ok(0));
                    break;
                }
                other => answer_orphan(other),
            }
        }
        rx.close();
        while let Ok(req) = rx.try_recv() {
            answer_orphan(req);
        }
    });
    handle
}
