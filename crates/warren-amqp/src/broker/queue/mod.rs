//! The queue actor: one task per queue driving the pure `warren_core::queue`
//! machine, and executing the effects it returns. Two drivers (DESIGN.md):
//! an in-memory queue applies commands here, stamped with a local index and
//! the wall clock; a durable queue submits them to its replicated log
//! ([`QueueLog`]) and acts on each answer once it is committed, in order,
//! with many commands in flight (so one fsync carries many messages).
//!
//! Split by operation: `handle` (the [`QueueHandle`] and the requests it
//! carries), `requests` (serving them through the machine and answering
//! them), `durable` (what the replicated log hands back, and settlements
//! submitted again) and `consumers` (credit, deliveries, cancellations).

mod consumers;
mod durable;
mod handle;
mod requests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use warren_core::message::Message;
use warren_core::queue::{
    self, Command, ConsumerKey, Effect, Meta, OwnerId, QueueConfig, QueueState, Reply,
};

use super::Broker;
use super::backend::{Applied, QueueLog};
use super::deadletter::DeadLetterTarget;
use super::events::{ConfirmTo, OwnerLink};
use super::limiter::Limiter;
use crate::error::{AmqpError, code};
use durable::{FromLog, next_from_log};
use handle::HandleInner;

pub(crate) use handle::answer_orphan;
pub use handle::{DeleteIf, GetResult, NO_ACK_WINDOW, QueueHandle, QueueRequest};

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

/// How often the actor of a clustered queue whose leader is on another
/// node wakes while consumers are attached here (to cancel those the
/// queue lost: `Actor::cancel_lost_consumers`), or to see whether it leads
/// now when its log tells no leadership changes.
const FOLLOWER_WAKE: Duration = Duration::from_secs(1);

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
            leader_changes: log.leader_changes(),
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
        last_idle_check: Instant::now(),
        successor: None,
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
        /// In a cluster: when this node may have begun or ceased to lead
        /// (see `QueueLog::leader_changes`).
        leader_changes: Option<futures::stream::BoxStream<'static, ()>>,
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
    /// When [`Actor::release_if_idle`] last looked.
    last_idle_check: Instant,
    /// The proxy that took this actor's place when this node stopped
    /// reading the queue: what is still in the mailbox goes there.
    successor: Option<QueueHandle>,
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

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<QueueRequest>) {
        self.recover().await;
        self.serve(&mut rx).await;
        // Whatever is still queued for us goes to the proxy that took
        // over, or is answered as orphaned (the queue is gone).
        rx.close();
        while let Ok(req) = rx.try_recv() {
            match &self.successor {
                Some(next) => next.send_now(req),
                None => answer_orphan(req),
            }
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
                    FromLog::LeaderChanged => Flow::Continue,
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
            if self.release_if_idle().await == Flow::Stop {
                return;
            }
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
        if let Driver::Log {
            log,
            leader_changes,
            ..
        } = &self.driver
            && !log.leads()
        {
            // Time-driven work is the leader's node's: it is re-checked
            // whenever something else wakes the actor, a change of
            // leadership among them. Idle, a follower's actor sleeps.
            if leader_changes.is_none() || !self.no_ack.is_empty() {
                return Some(Instant::now() + FOLLOWER_WAKE);
            }
            return self.release_due(log.as_ref());
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
