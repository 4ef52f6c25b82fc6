//! The queue actor: one task per queue driving the pure `warren_core::queue`
//! machine, and executing the effects it returns. Two drivers (DESIGN.md):
//! an in-memory queue applies commands here, stamped with a local index and
//! the wall clock; a durable queue submits them to its replicated log
//! ([`QueueLog`]) and acts on each answer once it is committed, in order,
//! with many commands in flight (so one fsync carries many messages).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::debug;
use warren_core::message::Message;
use warren_core::queue::{
    self, Command, ConsumerKey, Effect, Meta, MsgId, OwnerId, QueueConfig, QueueState, Reply,
};

use super::Broker;
use super::backend::{Applied, QueueLog, StoreError};
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
    /// A proxy of a queue held by another node (see `remote`).
    remote: bool,
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
    /// The durable queue's replicated log; `None`: the queue lives in memory.
    pub log: Option<Arc<dyn QueueLog>>,
}

/// Commands a durable queue may have submitted and not yet seen applied;
/// beyond this the actor stops reading its mailbox, which pushes back on
/// publishers.
const MAX_IN_FLIGHT: usize = 8192;

/// How many times a settlement, cancel or owner-down the log could not
/// commit is submitted again, [`RESUBMIT_AFTER`] apart: long enough to
/// outlast the elections of a flapping link (found by chaos `lossy-link`:
/// five retries in a row, a millisecond apart, all failed while the queue
/// had no leader, and a gone consumer kept 25 messages checked out).
const SETTLE_RETRIES: u32 = 120;
const RESUBMIT_AFTER: Duration = Duration::from_millis(500);

fn again(cmd: Command<Arc<Message>>) -> Then {
    Then::Again {
        cmd,
        left: SETTLE_RETRIES,
    }
}

fn cancelled(cmd: Command<Arc<Message>>) -> Then {
    Then::Cancelled {
        cmd,
        left: SETTLE_RETRIES,
    }
}

/// How often the actor of a clustered queue whose leader is on another
/// node looks again whether it leads now (expiry ticks and `x-expires`
/// are the leader's node's work).
const FOLLOWER_WAKE: Duration = Duration::from_secs(1);

/// A consumer of this node missing from the replicated queue this long is
/// cancelled (see `Actor::cancel_lost_consumers`).
const LOST_AFTER: Duration = Duration::from_secs(5);
const LOST_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts a queue actor and returns its handle.
pub fn spawn(mut spec: QueueSpawn, broker: Weak<Broker>) -> QueueHandle {
    let (tx, rx) = mpsc::channel(spec.mailbox.max(1));
    let handle = QueueHandle(Arc::new(HandleInner {
        vhost: spec.vhost.clone(),
        name: spec.name.clone(),
        tx,
        remote: false,
    }));
    let driver = match spec.log.take() {
        Some(log) => Driver::Log {
            local: log.local_effects(),
            log,
            in_flight: FuturesOrdered::new(),
            tick_pending: false,
        },
        None => Driver::Memory {
            state: QueueState::new(spec.config.clone()).with_name(&spec.vhost, &spec.name),
            index: 0,
        },
    };
    let actor = Actor {
        driver,
        owners: BTreeMap::new(),
        no_ack: BTreeMap::new(),
        credit: BTreeMap::new(),
        credit_order: VecDeque::new(),
        had_consumer: false,
        missing: BTreeMap::new(),
        last_lost_check: Instant::now(),
        resubmit: Vec::new(),
        last_used: Instant::now(),
        me: handle.clone(),
        spec,
        broker,
    };
    tokio::spawn(actor.run(rx));
    handle
}

/// The answer of a submitted command, with what to do with it.
type Pending = BoxFuture<'static, (Then, Applied)>;

/// How the actor runs its queue machine (DESIGN.md: one machine, two drivers).
enum Driver {
    /// Transient: the machine applied directly, here.
    Memory {
        state: QueueState<Arc<Message>>,
        index: u64,
    },
    /// Durable: commands go through the queue's replicated log; answers
    /// (and effects) come back in order once committed and applied.
    Log {
        log: Arc<dyn QueueLog>,
        in_flight: FuturesOrdered<Pending>,
        /// A `Tick` is on its way: do not send another for the same expiry.
        tick_pending: bool,
        /// In a cluster: effects for this node's owners, as the log is
        /// applied here (see `QueueLog::clustered`).
        local: Option<mpsc::UnboundedReceiver<Vec<Effect<u64>>>>,
    },
}

/// What to do with a command's reply once the machine has applied it.
enum Then {
    Nothing,
    /// A settlement (ack, nack, reject, an owner going down): if the log
    /// could not commit it (no leader for a while), it is submitted again,
    /// up to `left` more times. Each is harmless to apply twice (a message
    /// settled already is not found), and losing one would leave its
    /// message out with a consumer that acked it.
    Again {
        cmd: Command<Arc<Message>>,
        left: u32,
    },
    Tick,
    Confirm(Option<ConfirmTo>),
    Subscribed {
        consumer: ConsumerKey,
        reply: oneshot::Sender<Result<(), AmqpError>>,
    },
    Got(oneshot::Sender<Result<GetResult, AmqpError>>),
    /// After a cancel or an owner going down: auto-delete may apply. If
    /// the log could not commit it, it is submitted again like a
    /// settlement (`Again`): a lost one would leave a consumer registered
    /// that nobody serves, holding its prefetch of messages for good.
    Cancelled {
        cmd: Command<Arc<Message>>,
        left: u32,
    },
    Purged(oneshot::Sender<u64>),
    /// Barriers: run once everything submitted before them is applied.
    Stats(oneshot::Sender<(u64, u32)>),
    Delete {
        cond: DeleteIf,
        reply: oneshot::Sender<Result<u64, AmqpError>>,
    },
}

struct Actor {
    driver: Driver,
    /// Where each owner (channel) lives.
    owners: BTreeMap<OwnerId, OwnerLink>,
    /// Consumers that subscribed with no-ack (their deliveries need no settle).
    no_ack: BTreeMap<ConsumerKey, bool>,
    /// Consumers under a channel-wide prefetch (credit mode), and the order
    /// in which they are offered credit (round-robin).
    credit: BTreeMap<ConsumerKey, CreditConsumer>,
    credit_order: VecDeque<ConsumerKey>,
    had_consumer: bool,
    /// This node's consumers the replicated queue no longer has, since
    /// when (see [`Actor::cancel_lost_consumers`]).
    missing: BTreeMap<ConsumerKey, Instant>,
    last_lost_check: Instant,
    /// Settlements to submit again, and when (see `Then::Again`).
    resubmit: Vec<(Instant, Command<Arc<Message>>, Then)>,
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

fn store_failed(e: &StoreError) -> AmqpError {
    AmqpError::new(code::INTERNAL_ERROR, format!("queue store failed: {e}"))
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<QueueRequest>) {
        self.recover().await;
        self.serve(&mut rx).await;
        // Whatever is still queued for us is answered as orphaned.
        rx.close();
        while let Ok(req) = rx.try_recv() {
            answer_orphan(req);
        }
    }

    /// A durable queue opened after a restart: every owner it remembers
    /// (consumers, holders of unsettled messages) belonged to a connection
    /// that is gone, so their messages go back to the queue, redelivered.
    async fn recover(&mut self) {
        let Driver::Log { log, .. } = &self.driver else {
            return;
        };
        let mut owners = Vec::new();
        log.with_state(&mut |s| owners = s.owners());
        if log.clustered() {
            // Owners of other nodes are alive as far as this node knows.
            let node = self.broker.upgrade().map(|b| b.config().node_id);
            owners.retain(|o| Some(o.node()) == node);
        }
        for owner in owners {
            self.apply(Command::OwnerDown { owner }, Then::Nothing)
                .await;
        }
    }

    async fn serve(&mut self, rx: &mut mpsc::Receiver<QueueRequest>) {
        loop {
            let wake = self.next_wake();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let room = self.in_flight() < MAX_IN_FLIGHT;
            let flow = tokio::select! {
                from_log = next_from_log(&mut self.driver) => match from_log {
                    FromLog::Applied(then, applied) => self.applied(then, applied).await,
                    FromLog::Local(effects) => self.run_local(effects).await,
                },
                req = rx.recv(), if room => {
                    let Some(req) = req else { return };
                    if !matches!(
                        req,
                        QueueRequest::Publish { .. }
                            | QueueRequest::CreditAvailable
                            | QueueRequest::Written { .. }
                    ) {
                        self.last_used = Instant::now();
                    }
                    self.handle(req).await
                }
                () = sleep => self.on_timer().await,
            };
            if flow == Flow::Stop {
                return;
            }
            let now = Instant::now();
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.resubmit)
                .into_iter()
                .partition(|(at, _, _)| *at <= now);
            self.resubmit = later;
            for (_, cmd, then) in due {
                if self.apply(cmd, then).await == Flow::Stop {
                    return;
                }
            }
            self.cancel_lost_consumers();
            self.grant_credit().await;
        }
    }

    fn in_flight(&self) -> usize {
        match &self.driver {
            Driver::Log { in_flight, .. } => in_flight.len(),
            Driver::Memory { .. } => 0,
        }
    }

    /// Reads the applied state, whichever driver holds it.
    fn read<R: Default>(&self, f: impl Fn(&dyn StateView) -> R) -> R {
        match &self.driver {
            Driver::Memory { state, .. } => f(state),
            Driver::Log { log, .. } => {
                let mut out = R::default();
                log.with_state(&mut |s| out = f(s));
                out
            }
        }
    }

    fn message_count(&self) -> u64 {
        self.read(|s| s.message_count())
    }

    fn consumer_count(&self) -> u32 {
        self.read(|s| s.consumer_count())
    }

    /// When the actor must wake up by itself: the next message expiry, or
    /// the queue's own expiry (`x-expires`) while it has no consumers.
    fn next_wake(&self) -> Option<Instant> {
        let resubmit = self.resubmit.iter().map(|(at, _, _)| *at).min();
        let timers = self.next_timer();
        match (resubmit, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The queue's own timers (see [`Self::next_wake`]).
    fn next_timer(&self) -> Option<Instant> {
        if let Driver::Log { log, .. } = &self.driver
            && !log.leads()
        {
            // Time-driven work is the leader's node's: it is re-checked
            // whenever something else wakes the actor.
            return Some(Instant::now() + FOLLOWER_WAKE);
        }
        let ticking = matches!(
            self.driver,
            Driver::Log {
                tick_pending: true,
                ..
            }
        );
        let msg = self
            .read(|s| s.next_expiry())
            .filter(|_| !ticking)
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
        let queue = self
            .spec
            .expires_ms
            .filter(|_| self.consumer_count() == 0)
            .map(|ms| self.last_used + Duration::from_millis(ms));
        match (msg, queue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn on_timer(&mut self) -> Flow {
        if let Driver::Log { log, .. } = &self.driver
            && !log.leads()
        {
            return Flow::Continue;
        }
        if let Some(ms) = self.spec.expires_ms
            && self.consumer_count() == 0
            && self.last_used.elapsed() >= Duration::from_millis(ms)
        {
            tracing::debug!(queue = %self.spec.name, "queue expired (x-expires)");
            self.forget().await;
            return Flow::Stop;
        }
        if let Driver::Log { tick_pending, .. } = &mut self.driver {
            *tick_pending = true;
        }
        self.apply(Command::Tick, Then::Tick).await
    }

    /// Runs `cmd` through the machine; `then` says what to do with its
    /// reply. In memory that happens now; through the log, once committed.
    async fn apply(&mut self, cmd: Command<Arc<Message>>, then: Then) -> Flow {
        match &mut self.driver {
            Driver::Memory { state, index } => {
                *index += 1;
                let meta = Meta {
                    index: *index,
                    now_ms: now_ms(),
                };
                let before = state.total_bytes();
                let (reply, effects) = queue::apply(&meta, cmd, state);
                self.account(before);
                self.run_effects(effects);
                self.complete(then, reply).await
            }
            Driver::Log { log, in_flight, .. } => {
                // The log's form: the message itself (the entry becomes its home).
                let answer = log.submit(cmd.map_msg(Arc::unwrap_or_clone));
                in_flight.push_back(Box::pin(async move { (then, answer.await) }));
                Flow::Continue
            }
        }
    }

    /// Runs `then` once everything submitted before it is applied.
    async fn barrier(&mut self, then: Then) -> Flow {
        match &mut self.driver {
            Driver::Memory { .. } => self.complete(then, Reply::Ok).await,
            Driver::Log { in_flight, .. } => {
                in_flight.push_back(Box::pin(async move { (then, Ok((Reply::Ok, Vec::new()))) }));
                Flow::Continue
            }
        }
    }

    /// A command of the log was applied: execute its effects, then `then`.
    async fn applied(&mut self, then: Then, applied: Applied) -> Flow {
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
    async fn run_local(&mut self, effects: Vec<Effect<u64>>) -> Flow {
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

    /// What follows a command's reply.
    async fn complete(&mut self, then: Then, reply: Reply<Arc<Message>>) -> Flow {
        match then {
            Then::Nothing | Then::Tick | Then::Again { .. } => {}
            Then::Confirm(confirm) => {
                if let Some(c) = confirm {
                    let ok = !matches!(reply, Reply::Rejected | Reply::Error(_));
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

    async fn handle(&mut self, req: QueueRequest) -> Flow {
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
        }
    }

    /// Offers credit to consumers under a channel-wide prefetch while ready
    /// messages are waiting for it, one permit at a time, round-robin.
    async fn grant_credit(&mut self) {
        while !self.credit.is_empty() {
            let outstanding: u64 = self.credit.values().map(|c| u64::from(c.outstanding)).sum();
            if self.message_count() <= outstanding {
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
            let cmd = Command::Credit {
                consumer,
                credit: 1,
            };
            if self.apply(cmd, Then::Nothing).await == Flow::Stop {
                return;
            }
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

    /// Auto-delete: the queue goes when its last consumer goes (if it ever had one).
    async fn after_cancel(&mut self, r: Reply<Arc<Message>>) -> Flow {
        if let Reply::Cancelled { consumer_count: 0 } = r
            && self.spec.auto_delete
            && self.had_consumer
        {
            self.forget().await;
            return Flow::Stop;
        }
        Flow::Continue
    }

    async fn delete(
        &mut self,
        cond: DeleteIf,
        reply: oneshot::Sender<Result<u64, AmqpError>>,
    ) -> Flow {
        let (vhost, name) = (&self.spec.vhost, &self.spec.name);
        if cond.unused && self.consumer_count() > 0 {
            let e = AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("queue '{name}' in vhost '{vhost}' in use"),
            );
            let _ = reply.send(Err(e));
            return Flow::Continue;
        }
        let count = self.message_count();
        if cond.empty && count > 0 {
            let e = AmqpError::new(
                code::PRECONDITION_FAILED,
                format!("queue '{name}' in vhost '{vhost}' not empty"),
            );
            let _ = reply.send(Err(e));
            return Flow::Continue;
        }
        self.cancel_all_consumers();
        self.forget().await;
        let _ = reply.send(Ok(count));
        Flow::Stop
    }

    /// In a cluster: cancels (basic.cancel to the client) this node's
    /// consumers that the replicated queue no longer has. Its peers judged
    /// this node down while it was alive (a partition, a stalled disk), and
    /// an owner-down removed its consumers and returned their messages;
    /// such a consumer would otherwise wait for deliveries that never come.
    /// A consumer is cancelled once missing from the applied state for
    /// [`LOST_AFTER`] (a subscription not yet applied here is missing for a
    /// moment). Checked at most once a second.
    fn cancel_lost_consumers(&mut self) {
        let Driver::Log { log, .. } = &self.driver else {
            return;
        };
        if !log.clustered() || self.last_lost_check.elapsed() < LOST_CHECK_EVERY {
            return;
        }
        self.last_lost_check = Instant::now();
        if self.no_ack.is_empty() {
            self.missing.clear();
            return;
        }
        let mut present = std::collections::BTreeSet::new();
        log.with_state(&mut |s| present = s.consumers().cloned().collect());
        let now = Instant::now();
        let mut lost = Vec::new();
        for key in self.no_ack.keys() {
            if present.contains(key) {
                continue;
            }
            let since = *self.missing.entry(key.clone()).or_insert(now);
            if now.duration_since(since) >= LOST_AFTER {
                lost.push(key.clone());
            }
        }
        self.missing.retain(|k, _| !present.contains(k));
        for key in lost {
            tracing::warn!(
                queue = %self.spec.name, consumer = %key.tag,
                "the queue no longer has this consumer (this node was judged down): cancelling it"
            );
            self.missing.remove(&key);
            self.no_ack.remove(&key);
            self.drop_credit(|k| *k == key);
            if let Some(link) = self.owners.get(&key.owner) {
                let _ = link.tx.send(ConnEvent::Cancelled {
                    channel: link.channel,
                    consumer_tag: key.tag.clone(),
                });
            }
        }
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

    /// Reports the change in bytes this queue holds to the memory alarm
    /// (in-memory queues only: a durable queue's bodies live in its log).
    fn account(&self, before: u64) {
        let Driver::Memory { state, .. } = &self.driver else {
            return;
        };
        let after = state.total_bytes();
        if after != before
            && let Some(b) = self.broker.upgrade()
        {
            let delta = i64::try_from(after).unwrap_or(i64::MAX)
                - i64::try_from(before).unwrap_or(i64::MAX);
            b.memory().add(delta);
        }
    }

    /// Removes this queue from the broker's metadata and registry (and a
    /// durable queue's log from the store).
    async fn forget(&mut self) {
        let Some(b) = self.broker.upgrade() else {
            return;
        };
        let log = match &mut self.driver {
            Driver::Memory { state, .. } => {
                // What this queue held is released with it.
                b.memory()
                    .add(-i64::try_from(state.total_bytes()).unwrap_or(i64::MAX));
                None
            }
            Driver::Log { log, in_flight, .. } => {
                // Answers still on their way are dropped with the queue.
                *in_flight = FuturesOrdered::new();
                Some(log.clone())
            }
        };
        b.forget_queue(&self.spec.vhost, &self.spec.name, &self.me, log)
            .await;
    }

    fn run_effects(&mut self, effects: Vec<Effect<Arc<Message>>>) {
        for e in effects {
            self.run_effect(e);
        }
    }

    fn run_effect(&mut self, e: Effect<Arc<Message>>) {
        match e {
            Effect::Deliver {
                consumer,
                msg_id,
                msg,
                redelivered,
                ..
            } => self.deliver(consumer, msg_id, msg, redelivered),
            Effect::DeadLetter { msg, reason } => {
                if let (Some(target), Some(b)) = (&self.spec.dead_letter, self.broker.upgrade()) {
                    b.dead_letter(&self.spec.vhost, &self.spec.name, target, &msg, reason);
                }
            }
            Effect::ConsumerActivated { .. } => {}
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

/// What a durable queue's log hands its actor.
enum FromLog {
    /// The answer of a submitted command.
    Applied(Then, Applied),
    /// In a cluster: effects for this node's owners, as applied here.
    Local(Vec<Effect<u64>>),
}

/// The next thing a durable queue's log hands the actor (never, for an
/// in-memory queue).
async fn next_from_log(driver: &mut Driver) -> FromLog {
    let Driver::Log {
        in_flight, local, ..
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
    tokio::select! {
        a = applied => a,
        e = effects => e,
    }
}

/// The reads the actor makes of either driver's state.
trait StateView {
    fn message_count(&self) -> u64;
    fn consumer_count(&self) -> u32;
    fn next_expiry(&self) -> Option<u64>;
}

impl<M: Clone> StateView for QueueState<M> {
    fn message_count(&self) -> u64 {
        QueueState::message_count(self)
    }
    fn consumer_count(&self) -> u32 {
        QueueState::consumer_count(self)
    }
    fn next_expiry(&self) -> Option<u64> {
        QueueState::next_expiry(self)
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
