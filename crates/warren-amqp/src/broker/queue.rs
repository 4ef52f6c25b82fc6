//! The in-memory queue driver: one task per queue owning a pure
//! `warren_core::queue` machine. It feeds the machine commands, stamps them
//! with a local index and the wall clock (the Raft driver will stamp them from
//! the log instead), and executes the effects the machine returns.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use warren_core::message::Message;
use warren_core::queue::{
    self, Command, ConsumerKey, Effect, Meta, MsgId, OwnerId, QueueConfig, QueueState, Reply,
};

use super::Broker;
use super::deadletter::DeadLetterTarget;
use super::events::{ConfirmTo, ConnEvent, Delivery, OwnerLink};
use super::limiter::Limiter;
use crate::error::{AmqpError, code};

/// A cheap, cloneable reference to a queue actor.
#[derive(Debug, Clone)]
pub struct QueueHandle(Arc<HandleInner>);

#[derive(Debug)]
struct HandleInner {
    vhost: String,
    name: String,
    tx: mpsc::Sender<QueueRequest>,
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
}

impl QueueHandle {
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
fn answer_orphan(req: QueueRequest) {
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

/// Everything a queue actor needs at start.
pub struct QueueSpawn {
    pub vhost: String,
    pub name: String,
    pub config: QueueConfig,
    pub auto_delete: bool,
    pub dead_letter: Option<DeadLetterTarget>,
    /// `x-expires`: delete the queue after this long unused.
    pub expires_ms: Option<u64>,
    pub mailbox: usize,
}

/// Starts a queue actor and returns its handle.
pub fn spawn(spec: QueueSpawn, broker: Weak<Broker>) -> QueueHandle {
    let (tx, rx) = mpsc::channel(spec.mailbox.max(1));
    let handle = QueueHandle(Arc::new(HandleInner {
        vhost: spec.vhost.clone(),
        name: spec.name.clone(),
        tx,
    }));
    let actor = Actor {
        state: QueueState::new(spec.config.clone()).with_name(&spec.vhost, &spec.name),
        index: 0,
        owners: BTreeMap::new(),
        no_ack: BTreeMap::new(),
        credit: BTreeMap::new(),
        credit_order: VecDeque::new(),
        had_consumer: false,
        last_used: Instant::now(),
        me: handle.clone(),
        spec,
        broker,
    };
    tokio::spawn(actor.run(rx));
    handle
}

struct Actor {
    state: QueueState<Arc<Message>>,
    index: u64,
    /// Where each owner (channel) lives.
    owners: BTreeMap<OwnerId, OwnerLink>,
    /// Consumers that subscribed with no-ack (their deliveries need no settle).
    no_ack: BTreeMap<ConsumerKey, bool>,
    /// Consumers under a channel-wide prefetch (credit mode), and the order
    /// in which they are offered credit (round-robin).
    credit: BTreeMap<ConsumerKey, CreditConsumer>,
    credit_order: VecDeque<ConsumerKey>,
    had_consumer: bool,
    /// Last consume/get/declare/cancel, for `x-expires`.
    last_used: Instant,
    me: QueueHandle,
    spec: QueueSpawn,
    broker: Weak<Broker>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<QueueRequest>) {
        self.serve(&mut rx).await;
        // Whatever is still queued for us is answered as orphaned.
        rx.close();
        while let Ok(req) = rx.try_recv() {
            answer_orphan(req);
        }
    }

    async fn serve(&mut self, rx: &mut mpsc::Receiver<QueueRequest>) {
        loop {
            let wake = self.next_wake();
            let req = match wake {
                Some(at) => tokio::select! {
                    req = rx.recv() => req,
                    _ = tokio::time::sleep_until(at) => {
                        if self.on_timer() == Flow::Stop { return; }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(req) = req else { return };
            if !matches!(
                req,
                QueueRequest::Publish { .. }
                    | QueueRequest::CreditAvailable
                    | QueueRequest::Written { .. }
            ) {
                self.last_used = Instant::now();
            }
            if self.handle(req) == Flow::Stop {
                return;
            }
            self.grant_credit();
        }
    }

    /// When the actor must wake up by itself: the next message expiry, or
    /// the queue's own expiry (`x-expires`) while it has no consumers.
    fn next_wake(&self) -> Option<Instant> {
        let msg = self
            .state
            .next_expiry()
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
        let queue = self
            .spec
            .expires_ms
            .filter(|_| self.state.consumer_count() == 0)
            .map(|ms| self.last_used + Duration::from_millis(ms));
        match (msg, queue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) -> Flow {
        if let Some(ms) = self.spec.expires_ms
            && self.state.consumer_count() == 0
            && self.last_used.elapsed() >= Duration::from_millis(ms)
        {
            tracing::debug!(queue = %self.spec.name, "queue expired (x-expires)");
            self.forget();
            return Flow::Stop;
        }
        self.apply(Command::Tick);
        self.grant_credit();
        Flow::Continue
    }

    fn apply(&mut self, cmd: Command<Arc<Message>>) -> Reply<Arc<Message>> {
        self.index += 1;
        let meta = Meta {
            index: self.index,
            now_ms: now_ms(),
        };
        let before = self.state.total_bytes();
        let (reply, effects) = queue::apply(&meta, cmd, &mut self.state);
        self.account(before);
        self.run_effects(effects);
        reply
    }

    fn handle(&mut self, req: QueueRequest) -> Flow {
        match req {
            QueueRequest::Publish { msg, confirm } => {
                let size = msg.size();
                let expiration_ms = msg.expiration_ms;
                let reply = self.apply(Command::Enqueue {
                    // Read before `msg` moves into the command.
                    priority: msg.priority,
                    msg,
                    size,
                    expiration_ms,
                });
                if let Some(c) = confirm {
                    let ok = !matches!(reply, Reply::Rejected | Reply::Error(_));
                    let _ = c.tx.send(ConnEvent::Confirm {
                        channel: c.channel,
                        seq: c.seq,
                        ok,
                    });
                }
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
                let r = self.apply(cmd);
                if no_ack && !matches!(r, Reply::Error(_)) {
                    self.apply(Command::Credit {
                        consumer: consumer.clone(),
                        credit: NO_ACK_WINDOW,
                    });
                }
                let result = match r {
                    Reply::Error(e) => {
                        self.no_ack.remove(&consumer);
                        self.drop_credit(|k| *k == consumer);
                        Err(self.queue_error(e))
                    }
                    _ => {
                        self.had_consumer = true;
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            QueueRequest::CreditAvailable => {}
            QueueRequest::Written { consumer, count } => {
                // Unknown consumers (cancelled meanwhile) are answered with an
                // error reply that changes nothing.
                self.apply(Command::Credit {
                    consumer,
                    credit: count,
                });
            }
            QueueRequest::Cancel { consumer } => {
                self.no_ack.remove(&consumer);
                self.drop_credit(|k| *k == consumer);
                let r = self.apply(Command::Cancel { consumer });
                return self.after_cancel(r);
            }
            QueueRequest::Get {
                owner,
                no_ack,
                link,
                reply,
            } => {
                self.owners.insert(owner, link);
                let r = match self.apply(Command::Get { owner, no_ack }) {
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
                    Reply::Error(e) => Err(self.queue_error(e)),
                    _ => Ok(GetResult::Empty),
                };
                let _ = reply.send(r);
            }
            QueueRequest::Settle { owner, ids } => {
                self.apply(Command::Settle {
                    owner,
                    msg_ids: ids,
                });
            }
            QueueRequest::Return { owner, ids } => {
                self.apply(Command::Return {
                    owner,
                    msg_ids: ids,
                });
            }
            QueueRequest::Discard { owner, ids } => {
                self.apply(Command::Discard {
                    owner,
                    msg_ids: ids,
                });
            }
            QueueRequest::OwnerDown { owner } => {
                self.no_ack.retain(|k, _| k.owner != owner);
                self.drop_credit(|k| k.owner == owner);
                let r = self.apply(Command::OwnerDown { owner });
                self.owners.remove(&owner);
                return self.after_cancel(r);
            }
            QueueRequest::Purge { reply } => {
                let n = match self.apply(Command::Purge) {
                    Reply::Purged { count } => count,
                    _ => 0,
                };
                let _ = reply.send(n);
            }
            QueueRequest::Stats { reply } => {
                let _ = reply.send((self.state.message_count(), self.state.consumer_count()));
            }
            QueueRequest::Delete { cond, reply } => return self.delete(cond, reply),
        }
        Flow::Continue
    }

    /// Offers credit to consumers under a channel-wide prefetch while ready
    /// messages are waiting for it, one permit at a time, round-robin.
    fn grant_credit(&mut self) {
        while !self.credit.is_empty() {
            let outstanding: u64 = self.credit.values().map(|c| u64::from(c.outstanding)).sum();
            if self.state.message_count() <= outstanding {
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
            self.apply(Command::Credit {
                consumer,
                credit: 1,
            });
        }
    }

    /// Forgets credit consumers (cancelled or gone), giving back the permits
    /// their unused credit held.
    fn drop_credit(&mut self, gone: impl Fn(&ConsumerKey) -> bool) {
        let keys: Vec<ConsumerKey> = self.credit.keys().filter(|k| gone(k)).cloned().collect();
        for k in keys {
            if let Some(c) = self.credit.remove(&k) {
                c.limiter.release(c.outstanding);
            }
        }
        self.credit_order.retain(|k| !gone(k));
    }

    fn queue_error(&self, e: queue::QueueError) -> AmqpError {
        AmqpError::from(e)
    }

    /// Auto-delete: the queue goes when its last consumer goes (if it ever had one).
    fn after_cancel(&mut self, r: Reply<Arc<Message>>) -> Flow {
        if let Reply::Cancelled { consumer_count: 0 } = r
            && self.spec.auto_delete
            && self.had_consumer
        {
            self.forget();
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn delete(&mut self, cond: DeleteIf, reply: oneshot::Sender<Result<u64, AmqpError>>) -> Flow {
        let (vhost, name) = (&self.spec.vhost, &self.spec.name);
        if cond.unused && self.state.consumer_count() > 0 {
            let e = AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("queue '{name}' in vhost '{vhost}' in use"),
            );
            let _ = reply.send(Err(e));
            return Flow::Continue;
        }
        if cond.empty && self.state.message_count() > 0 {
            let e = AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("queue '{name}' in vhost '{vhost}' not empty"),
            );
            let _ = reply.send(Err(e));
            return Flow::Continue;
        }
        let count = self.state.message_count();
        self.cancel_all_consumers();
        self.forget();
        let _ = reply.send(Ok(count));
        Flow::Stop
    }

    /// Tells every consumer's channel that the server cancelled it.
    fn cancel_all_consumers(&mut self) {
        for key in self.no_ack.keys() {
            if let Some(link) = self.owners.get(&key.owner) {
                let _ = link.tx.send(ConnEvent::Cancelled {
                    channel: link.channel,
                    consumer_tag: key.tag.clone(),
                });
            }
        }
    }

    /// Removes this queue from the broker's metadata and registry.
    /// Reports the change in bytes this queue holds to the memory alarm.
    fn account(&self, before: u64) {
        let after = self.state.total_bytes();
        if after != before
            && let Some(b) = self.broker.upgrade()
        {
            let delta = i64::try_from(after).unwrap_or(i64::MAX)
                - i64::try_from(before).unwrap_or(i64::MAX);
            b.memory().add(delta);
        }
    }

    fn forget(&self) {
        if let Some(b) = self.broker.upgrade() {
            // What this queue held is released with it.
            b.memory()
                .add(-i64::try_from(self.state.total_bytes()).unwrap_or(i64::MAX));
            b.forget_queue(&self.spec.vhost, &self.spec.name, &self.me);
        }
    }

    fn run_effects(&mut self, effects: Vec<Effect<Arc<Message>>>) {
        for e in effects {
            match e {
                Effect::Deliver {
                    consumer,
                    msg_id,
                    msg,
                    redelivered,
                    ..
                } => self.deliver(consumer, msg_id, msg, redelivered),
                Effect::DeadLetter { msg, reason } => {
                    if let (Some(target), Some(b)) = (&self.spec.dead_letter, self.broker.upgrade())
                    {
                        b.dead_letter(&self.spec.vhost, &self.spec.name, target, &msg, reason);
                    }
                }
                _ => {}
            }
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

/// A consumer whose deliveries need a permit from its channel's limiter.
struct CreditConsumer {
    limiter: Arc<Limiter>,
    /// Credits granted to the machine and not yet used by a delivery.
    outstanding: u32,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}
