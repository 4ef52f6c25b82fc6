//! Serving the mailbox: each [`QueueRequest`] becomes a command of the
//! queue machine (`handle`), and each command's reply becomes the answer
//! its caller waits for (`complete`).

use std::sync::Arc;

use warren_core::message::Message;
use warren_core::queue::{Command, Reply};

use super::durable::{again, cancelled};
use super::{Actor, CreditConsumer, Driver, Flow, GetResult, NO_ACK_WINDOW, QueueRequest, Then};
use crate::broker::events::ConnEvent;
use crate::error::AmqpError;

impl Actor {
    /// What follows a command's reply.
    pub(super) async fn complete(&mut self, then: Then, reply: Reply<Arc<Message>>) -> Flow {
        match then {
            Then::Nothing | Then::Tick | Then::Again { .. } => {}
            Then::Confirm(confirm) => {
                if let Some(c) = confirm {
                    let ok = !matches!(reply, Reply::Rejected | Reply::Error(_));
                    if !ok {
                        tracing::debug!(queue = %self.spec.name, ?reply, "publish refused by the queue: nack");
                    }
                    let _ = c.tx.send(ConnEvent::Confirm {
                        channel: c.channel,
                        seq: c.seq,
                        ok,
                    });
                }
            }
            Then::Subscribed {
                consumer,
                reply: tx,
            } => {
                let result = match reply {
                    Reply::Error(e) => {
                        self.no_ack.remove(&consumer);
                        self.drop_credit(|k| *k == consumer);
                        Err(AmqpError::from(e))
                    }
                    _ => {
                        self.had_consumer = true;
                        Ok(())
                    }
                };
                let _ = tx.send(result);
            }
            Then::Got(tx) => {
                let r = match reply {
                    Reply::GetOk {
                        msg_id,
                        msg,
                        redelivered,
                        message_count,
                    } => Ok(GetResult::Ok {
                        msg_id,
                        msg,
                        redelivered,
                        message_count,
                    }),
                    Reply::Error(e) => Err(AmqpError::from(e)),
                    _ => Ok(GetResult::Empty),
                };
                let _ = tx.send(r);
            }
            Then::Cancelled { .. } => return self.after_cancel(reply).await,
            Then::Purged(tx) => {
                let n = match reply {
                    Reply::Purged { count } => count,
                    _ => 0,
                };
                let _ = tx.send(n);
            }
            Then::Stats(tx) => {
                let _ = tx.send((self.message_count(), self.consumer_count()));
            }
            Then::Delete { cond, reply } => return self.delete(cond, reply).await,
        }
        Flow::Continue
    }

    pub(super) async fn handle(&mut self, req: QueueRequest) -> Flow {
        match req {
            QueueRequest::Publish { msg, confirm } => {
                let size = msg.size();
                let expiration_ms = msg.expiration_ms;
                let cmd = Command::Enqueue {
                    // Read before `msg` moves into the command.
                    priority: msg.priority,
                    msg,
                    size,
                    expiration_ms,
                };
                self.apply(cmd, Then::Confirm(confirm)).await
            }
            QueueRequest::Subscribe {
                consumer,
                prefetch,
                no_ack,
                exclusive,
                limiter,
                link,
                reply,
            } => {
                self.owners.insert(consumer.owner, link);
                // Known before the Subscribe runs: it may deliver at once.
                self.no_ack.insert(consumer.clone(), no_ack);
                let cmd = match limiter {
                    Some(limiter) if !no_ack => {
                        self.credit.insert(
                            consumer.clone(),
                            CreditConsumer {
                                limiter,
                                outstanding: 0,
                            },
                        );
                        self.credit_order.push_back(consumer.clone());
                        Command::SubscribeCredit {
                            consumer: consumer.clone(),
                            no_ack,
                            exclusive,
                        }
                    }
                    // No-ack deliveries are settled on sending; a window of
                    // credit, topped up as the connection writes them out,
                    // keeps a slow reader from holding the whole queue.
                    _ if no_ack => Command::SubscribeCredit {
                        consumer: consumer.clone(),
                        no_ack,
                        exclusive,
                    },
                    _ => Command::Subscribe {
                        consumer: consumer.clone(),
                        prefetch,
                        no_ack,
                        exclusive,
                    },
                };
                let then = Then::Subscribed {
                    consumer: consumer.clone(),
                    reply,
                };
                if self.apply(cmd, then).await == Flow::Stop {
                    return Flow::Stop;
                }
                if no_ack {
                    // If the subscription was refused this changes nothing.
                    let cmd = Command::Credit {
                        consumer,
                        credit: NO_ACK_WINDOW,
                    };
                    return self.apply(cmd, Then::Nothing).await;
                }
                Flow::Continue
            }
            QueueRequest::CreditAvailable => Flow::Continue,
            QueueRequest::Written { consumer, count } => {
                // Unknown consumers (cancelled meanwhile) are answered with an
                // error reply that changes nothing.
                let cmd = Command::Credit {
                    consumer,
                    credit: count,
                };
                self.apply(cmd, Then::Nothing).await
            }
            QueueRequest::Cancel { consumer } => {
                self.no_ack.remove(&consumer);
                self.drop_credit(|k| *k == consumer);
                let cmd = Command::Cancel { consumer };
                self.apply(cmd.clone(), cancelled(cmd)).await
            }
            QueueRequest::Get {
                owner,
                no_ack,
                link,
                reply,
            } => {
                self.owners.insert(owner, link);
                self.apply(Command::Get { owner, no_ack }, Then::Got(reply))
                    .await
            }
            QueueRequest::Settle { owner, ids } => {
                let cmd = Command::Settle {
                    owner,
                    msg_ids: ids,
                };
                self.apply(cmd.clone(), again(cmd)).await
            }
            QueueRequest::Return { owner, ids } => {
                let cmd = Command::Return {
                    owner,
                    msg_ids: ids,
                };
                self.apply(cmd.clone(), again(cmd)).await
            }
            QueueRequest::Discard { owner, ids } => {
                let cmd = Command::Discard {
                    owner,
                    msg_ids: ids,
                };
                self.apply(cmd.clone(), again(cmd)).await
            }
            QueueRequest::OwnerDown { owner } => {
                self.no_ack.retain(|k, _| k.owner != owner);
                self.drop_credit(|k| k.owner == owner);
                // Deliveries still on their way to it are dropped (see deliver).
                self.owners.remove(&owner);
                let cmd = Command::OwnerDown { owner };
                self.apply(cmd.clone(), cancelled(cmd)).await
            }
            QueueRequest::NodesDown { nodes } => {
                let mut owners = Vec::new();
                if let Driver::Log { log, .. } = &self.driver {
                    log.with_state(&mut |s| owners = s.owners());
                }
                for owner in owners.into_iter().filter(|o| nodes.contains(&o.node())) {
                    // Every replica's actor sends it: the first one applied
                    // returns the messages, the others find nothing.
                    let cmd = Command::OwnerDown { owner };
                    if self.apply(cmd.clone(), cancelled(cmd)).await == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            QueueRequest::Purge { reply } => self.apply(Command::Purge, Then::Purged(reply)).await,
            QueueRequest::Stats { reply } => self.barrier(Then::Stats(reply)).await,
            QueueRequest::Delete { cond, reply } => {
                self.barrier(Then::Delete { cond, reply }).await
            }
            QueueRequest::Handover { to } => {
                self.cancel_all_consumers();
                self.successor = Some(to);
                Flow::Stop
            }
        }
    }
}
