//! The durable driver's side of the actor: what a queue's replicated log
//! hands back (answers of submitted commands, and in a cluster the effects
//! for this node's owners), message bodies read back from the log, and
//! settlements the log could not commit, submitted again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::time::Instant;
use warren_core::message::Message;
use warren_core::queue::{Command, Effect, MsgId, OwnerId, Reply};

use super::{Actor, Driver, Flow, Then};
use crate::broker::backend::{Applied, StoreError};
use crate::broker::events::ConnEvent;
use crate::error::{AmqpError, code};

/// How many times a settlement, cancel or owner-down the log could not
/// commit is submitted again, [`RESUBMIT_AFTER`] apart: long enough to
/// outlast the elections of a flapping link (found by chaos `lossy-link`:
/// five retries in a row, a millisecond apart, all failed while the queue
/// had no leader, and a gone consumer kept 25 messages checked out).
const SETTLE_RETRIES: u32 = 120;
const RESUBMIT_AFTER: Duration = Duration::from_millis(500);

pub(super) fn again(cmd: Command<Arc<Message>>) -> Then {
    Then::Again {
        cmd,
        left: SETTLE_RETRIES,
    }
}

pub(super) fn cancelled(cmd: Command<Arc<Message>>) -> Then {
    Then::Cancelled {
        cmd,
        left: SETTLE_RETRIES,
    }
}

fn store_failed(e: &StoreError) -> AmqpError {
    AmqpError::new(code::INTERNAL_ERROR, format!("queue store failed: {e}"))
}

impl Actor {
    /// A command of the log was applied: execute its effects, then `then`.
    pub(super) async fn applied(&mut self, then: Then, applied: Applied) -> Flow {
        if matches!(then, Then::Tick)
            && let Driver::Log { tick_pending, .. } = &mut self.driver
        {
            *tick_pending = false;
        }
        let (reply, effects) = match applied {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(queue = %self.spec.name, error = %e, "queue command not committed");
                self.failed(then, &e);
                return Flow::Continue;
            }
        };
        // One at a time: the first delivery leaves before the last body is read.
        for e in effects {
            if let Some(e) = self.load_effect(e) {
                self.run_effect(e);
            }
        }
        // A GetOk whose body cannot be read answers as an empty queue.
        let reply = reply
            .map_msg(|index| self.load(index))
            .unwrap_or(Reply::GetEmpty);
        self.complete(then, reply).await
    }

    /// Effects for this node's owners, as the log was applied here. A
    /// delivery whose body cannot be read yet goes back to the queue (it
    /// is redelivered) rather than staying out with a consumer that never
    /// got it.
    pub(super) async fn run_local(&mut self, effects: Vec<Effect<u64>>) -> Flow {
        let mut unread: BTreeMap<OwnerId, Vec<MsgId>> = BTreeMap::new();
        for e in effects {
            let missed = match &e {
                Effect::Deliver {
                    consumer, msg_id, ..
                } => Some((consumer.owner, *msg_id)),
                _ => None,
            };
            match self.load_effect(e) {
                Some(e) => self.run_effect(e),
                None => {
                    if let Some((owner, id)) = missed {
                        unread.entry(owner).or_default().push(id);
                    }
                }
            }
        }
        for (owner, ids) in unread {
            let cmd = Command::Return {
                owner,
                msg_ids: ids,
            };
            if self.apply(cmd.clone(), again(cmd)).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// A command the log could not commit: nothing was decided.
    fn failed(&mut self, then: Then, e: &StoreError) {
        match then {
            Then::Confirm(Some(c)) => {
                let _ = c.tx.send(ConnEvent::Confirm {
                    channel: c.channel,
                    seq: c.seq,
                    ok: false,
                });
            }
            Then::Subscribed { consumer, reply } => {
                self.no_ack.remove(&consumer);
                self.drop_credit(|k| *k == consumer);
                let _ = reply.send(Err(store_failed(e)));
            }
            Then::Got(reply) => {
                let _ = reply.send(Err(store_failed(e)));
            }
            Then::Delete { reply, .. } => {
                let _ = reply.send(Err(store_failed(e)));
            }
            Then::Purged(reply) => {
                let _ = reply.send(0);
            }
            Then::Stats(reply) => {
                let _ = reply.send((self.message_count(), self.consumer_count()));
            }
            Then::Again { cmd, left } if left > 0 => {
                tracing::info!(queue = %self.spec.name, "submitting a settlement again");
                let then = Then::Again {
                    cmd: cmd.clone(),
                    left: left - 1,
                };
                self.resubmit
                    .push((Instant::now() + RESUBMIT_AFTER, cmd, then));
            }
            Then::Cancelled { cmd, left } if left > 0 => {
                tracing::info!(queue = %self.spec.name, "submitting a cancel again");
                let then = Then::Cancelled {
                    cmd: cmd.clone(),
                    left: left - 1,
                };
                self.resubmit
                    .push((Instant::now() + RESUBMIT_AFTER, cmd, then));
            }
            Then::Nothing
            | Then::Again { .. }
            | Then::Tick
            | Then::Confirm(None)
            | Then::Cancelled { .. } => {}
        }
    }

    /// The message a log index holds; `None` (logged) if it cannot be read.
    fn load(&self, index: u64) -> Option<Arc<Message>> {
        let Driver::Log { log, .. } = &self.driver else {
            return None;
        };
        match log.body(index) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::error!(queue = %self.spec.name, index, error = %e, "message body unreadable");
                None
            }
        }
    }

    fn load_effect(&self, e: Effect<u64>) -> Option<Effect<Arc<Message>>> {
        // Without a dead-letter exchange there is nothing to publish.
        if matches!(e, Effect::DeadLetter { .. }) && self.spec.dead_letter.is_none() {
            return None;
        }
        e.map_msg(|index| self.load(index))
    }
}

/// What a durable queue's log hands its actor.
pub(super) enum FromLog {
    /// The answer of a submitted command.
    Applied(Then, Applied),
    /// In a cluster: effects for this node's owners, as applied here.
    Local(Vec<Effect<u64>>),
    /// In a cluster: this node may have begun or ceased to lead the log
    /// (its timers are recomputed).
    LeaderChanged,
}

/// The next thing a durable queue's log hands the actor (never, for an
/// in-memory queue).
pub(super) async fn next_from_log(driver: &mut Driver) -> FromLog {
    let Driver::Log {
        in_flight,
        local,
        leader_changes,
        ..
    } = driver
    else {
        return std::future::pending().await;
    };
    let applied = async {
        match in_flight.next().await {
            Some((then, applied)) => FromLog::Applied(then, applied),
            // Empty: wait for the mailbox to bring work.
            _ => std::future::pending().await,
        }
    };
    let effects = async {
        match local {
            Some(rx) => match rx.recv().await {
                Some(effects) => FromLog::Local(effects),
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    let leadership = async {
        match leader_changes {
            Some(changes) => match changes.next().await {
                Some(()) => FromLog::LeaderChanged,
                None => {
                    *leader_changes = None;
                    std::future::pending().await
                }
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        a = applied => a,
        e = effects => e,
        l = leadership => l,
    }
}
