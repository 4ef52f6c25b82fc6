//! The load that runs through every scenario, and the history it records
//! for the checkers.
//!
//! - Publisher `p` publishes to queue `p % queues` with confirms (a window
//!   of [`WINDOW`]) at a steady rate, starting on node `p % nodes`. When
//!   its connection fails or stops confirming for [`STALL`], it connects
//!   to the next node and publishes again what was not confirmed, as a
//!   careful client does; a nacked message is published again too.
//! - One consumer per queue (manual acks, prefetch [`PREFETCH`]), starting
//!   on a node other than its queue's publisher, moves on the same way.
//!
//! Every publish attempt carries `publisher:message:attempt` in its body,
//! so a delivery says exactly which attempt it is. Attempts of one
//! publisher are numbered in the order they were sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const WINDOW: usize = 64;
pub const PREFETCH: u16 = 50;
/// A connection with confirms outstanding and none arriving for this long
/// is given up (a hung node accepts TCP and then says nothing).
pub const STALL: Duration = Duration::from_secs(8);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_LEN: usize = 256;

/// `(publisher, message)`: one logical message, however often published.
pub type MsgKey = (usize, u64);

#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    pub publisher: usize,
    pub msg: u64,
    pub attempt: u64,
    pub redelivered: bool,
}

#[derive(Default)]
pub struct History {
    /// Every attempt sent: (publisher, message, attempt).
    pub published: HashSet<(usize, u64, u64)>,
    /// The attempt that was confirmed, per message.
    pub confirmed: HashMap<MsgKey, u64>,
    pub nacked: u64,
    /// When each publisher's confirms arrived, in order.
    pub confirm_times: Vec<Vec<Instant>>,
    /// Per queue, deliveries in the order the consumer got them.
    pub deliveries: Vec<Vec<Delivered>>,
    /// Deliveries whose body was not one of ours.
    pub garbage: Vec<String>,
    pub publisher_reconnects: u64,
    pub consumer_reconnects: u64,
    /// Last connection errors, for the report.
    pub errors: VecDeque<String>,
}

impl History {
    fn note_error(&mut self, e: String) {
        if self.errors.len() >= 20 {
            self.errors.pop_front();
        }
        self.errors.push_back(e);
    }
}

pub type Shared = Arc<Mutex<History>>;

pub fn lock(h: &Shared) -> MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn queue_name(q: usize) -> String {
    format!("chaos-q{q}")
}

pub struct Workload {
    pub history: Shared,
    stop_publishing: watch::Sender<bool>,
    stop_consuming: watch::Sender<bool>,
    publishers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
}

/// Bounds one client call: a node cut off by a silent network never
/// answers, and the client must move on rather than wait forever.
async fn within<T, E: Into<anyhow::Error>>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STALL, call).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(anyhow::anyhow!("{what}: no answer for {STALL:?}")),
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Connection> {
    // A short heartbeat, so that a connection to a hung node is noticed.
    let uri = format!("amqp://guest:guest@{addr}/%2f?heartbeat=5");
    let conn = tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {addr}: timed out"))??;
    Ok(conn)
}

/// Declares the workload's durable queues (through any node that answers).
pub async fn declare_queues(addrs: &[SocketAddr], queues: usize) -> anyhow::Result<()> {
    let mut last = None;
    for attempt in 0..30 {
        let addr = addrs[attempt % addrs.len()];
        match declare_on(addr, queues).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no node"))
        .context("declaring the queues"))
}

async fn declare_on(addr: SocketAddr, queues: usize) -> anyhow::Result<()> {
    let conn = connect(addr).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    for q in 0..queues {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        within(
            "queue.declare",
            ch.queue_declare(
                queue_name(q).as_str().into(),
                options,
                FieldTable::default(),
            ),
        )
        .await?;
    }
    let _ = conn.close(200, "declared".into()).await;
    Ok(())
}

impl Workload {
    pub fn start(addrs: Vec<SocketAddr>, queues: usize, publishers: usize, rate: u32) -> Workload {
        let history = Arc::new(Mutex::new(History {
            confirm_times: vec![Vec::new(); publishers],
            deliveries: vec![Vec::new(); queues],
            ..History::default()
        }));
        let (stop_publishing, stop_pub_rx) = watch::channel(false);
        let (stop_consuming, stop_con_rx) = watch::channel(false);
        let consumers = (0..queues)
            .map(|q| {
                let c = Consumer {
                    queue: q,
                    queues,
                    addrs: addrs.clone(),
                    node: (q + 1) % addrs.len(),
                    history: history.clone(),
                    stop: stop_con_rx.clone(),
                };
                tokio::spawn(c.run())
            })
            .collect();
        let publishers = (0..publishers)
            .map(|p| {
                let pb = Publisher {
                    id: p,
                    queue: queue_name(p % queues),
                    addrs: addrs.clone(),
                    node: p % addrs.len(),
                    every: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
                    history: history.clone(),
                    stop: stop_pub_rx.clone(),
                    next_msg: 0,
                    next_attempt: 0,
                    retry: VecDeque::new(),
                };
                tokio::spawn(pb.run())
            })
            .collect();
        Workload {
            history,
            stop_publishing,
            stop_consuming,
            publishers,
            consumers,
        }
    }

    /// Stops publishing and waits for the publishers' last confirms.
    pub async fn stop_publishing(&mut self) {
        let _ = self.stop_publishing.send(true);
        for p in self.publishers.drain(..) {
            let _ = p.await;
        }
    }

    /// Waits until every confirmed message was delivered, or nothing new
    /// arrived for `quiet`; then stops the consumers.
    pub async fn drain(&mut self, quiet: Duration) {
        let mut seen = 0;
        let mut last_change = Instant::now();
        loop {
            let (delivered, all_in) = {
                let h = lock(&self.history);
                let got: HashSet<MsgKey> = h
                    .deliveries
                    .iter()
                    .flatten()
                    .map(|d| (d.publisher, d.msg))
                    .collect();
                let n: usize = h.deliveries.iter().map(Vec::len).sum();
                (n, h.confirmed.keys().all(|k| got.contains(k)))
            };
            if all_in {
                // Whatever unconfirmed publishes made it in: a moment more.
                tokio::time::sleep(Duration::from_secs(1)).await;
                break;
            }
            if delivered != seen {
                seen = delivered;
                last_change = Instant::now();
            } else if last_change.elapsed() > quiet {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = self.stop_consuming.send(true);
        for c in self.consumers.drain(..) {
            let _ = c.await;
        }
    }
}

/// After a client's session ended (and it was not told to stop): counts
/// the reconnect, keeps why the session ended, and returns the next node
/// to try, after a short pause.
async fn move_on(
    history: &Shared,
    reconnects: fn(&mut History) -> &mut u64,
    who: String,
    outcome: anyhow::Result<()>,
    node: usize,
    nodes: usize,
) -> usize {
    {
        let mut h = lock(history);
        *reconnects(&mut h) += 1;
        if let Err(e) = outcome {
            h.note_error(format!("{who}: {e:#}"));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    (node + 1) % nodes
}

struct Publisher {
    id: usize,
    queue: String,
    addrs: Vec<SocketAddr>,
    node: usize,
    every: Duration,
    history: Shared,
    stop: watch::Receiver<bool>,
    next_msg: u64,
    next_attempt: u64,
    /// Messages to publish again (unconfirmed on a lost connection, or nacked).
    retry: VecDeque<u64>,
}

impl Publisher {
    async fn run(mut self) {
        loop {
            let addr = self.addrs[self.node];
            let outcome = self.session(addr).await;
            if *self.stop.borrow() {
                return;
            }
            let who = format!("publisher {} on {addr}", self.id);
            self.node = move_on(
                &self.history,
                |h| &mut h.publisher_reconnects,
                who,
                outcome,
                self.node,
                self.addrs.len(),
            )
            .await;
        }
    }

    /// One connection's worth of publishing. Returns when the connection
    /// fails or stalls (unconfirmed messages go back to `retry`), or when
    /// told to stop and every confirm is in.
    async fn session(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let conn = connect(addr).await?;
        let ch = within("channel.open", conn.create_channel()).await?;
        within(
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let mut inflight = FuturesUnordered::new();
        let mut sent: HashMap<u64, u64> = HashMap::new(); // attempt -> msg
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_progress = Instant::now();
        let mut stop = self.stop.clone();
        let result = loop {
            let stopping = *stop.borrow();
            if stopping && inflight.is_empty() {
                break Ok(());
            }
            tokio::select! {
                Some((attempt, confirmation)) = inflight.next(), if !inflight.is_empty() => {
                    last_progress = Instant::now();
                    let Some(msg) = sent.remove(&attempt) else { continue };
                    match confirmation {
                        Ok(Confirmation::Ack(_)) => {
                            let mut h = lock(&self.history);
                            h.confirmed.insert((self.id, msg), attempt);
                            h.confirm_times[self.id].push(Instant::now());
                        }
                        Ok(_) => {
                            lock(&self.history).nacked += 1;
                            self.retry.push_back(msg);
                        }
                        Err(e) => {
                            self.retry.push_back(msg);
                            break Err(anyhow::Error::from(e).context("confirm"));
                        }
                    }
                }
                _ = tick.tick(), if !stopping && inflight.len() < WINDOW => {
                    let msg = self.retry.pop_front().unwrap_or_else(|| {
                        self.next_msg += 1;
                        self.next_msg - 1
                    });
                    let attempt = self.next_attempt;
                    self.next_attempt += 1;
                    lock(&self.history).published.insert((self.id, msg, attempt));
                    let body = body_of(self.id, msg, attempt);
                    let props = BasicProperties::default().with_delivery_mode(2);
                    let publish = ch.basic_publish(
                        "".into(),
                        self.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    );
                    match tokio::time::timeout(STALL, publish).await {
                        Ok(Ok(confirm)) => {
                            sent.insert(attempt, msg);
                            inflight.push(async move { (attempt, confirm.await) });
                        }
                        Ok(Err(e)) => {
                            self.retry.push_front(msg);
                            break Err(anyhow::Error::from(e).context("publish"));
                        }
                        Err(_) => {
                            self.retry.push_front(msg);
                            break Err(anyhow::anyhow!("publish blocked for {STALL:?}"));
                        }
                    }
                    if inflight.len() == 1 {
                        last_progress = Instant::now();
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    if !inflight.is_empty() && last_progress.elapsed() > STALL {
                        break Err(anyhow::anyhow!("no confirm for {STALL:?}"));
                    }
                }
                _ = stop.changed() => {}
            }
        };
        // Unconfirmed attempts are published again on the next connection,
        // in their original order.
        let mut lost: Vec<(u64, u64)> = sent.into_iter().collect();
        lost.sort_unstable();
        for (_, msg) in lost.into_iter().rev() {
            self.retry.push_front(msg);
        }
        drop(inflight);
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "bye".into())).await;
        result
    }
}

fn body_of(publisher: usize, msg: u64, attempt: u64) -> Vec<u8> {
    let mut body = format!("{publisher}:{msg}:{attempt}:").into_bytes();
    body.resize(BODY_LEN, b'.');
    body
}

fn parse_body(body: &[u8]) -> Option<(usize, u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut parts = text.split(':');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

struct Consumer {
    queue: usize,
    queues: usize,
    addrs: Vec<SocketAddr>,
    node: usize,
    history: Shared,
    stop: watch::Receiver<bool>,
}

impl Consumer {
    async fn run(mut self) {
        loop {
            let addr = self.addrs[self.node];
            let outcome = self.session(addr).await;
            if *self.stop.borrow() {
                return;
            }
            let who = format!("consumer of q{} on {addr}", self.queue);
            self.node = move_on(
                &self.history,
                |h| &mut h.consumer_reconnects,
                who,
                outcome,
                self.node,
                self.addrs.len(),
            )
            .await;
        }
    }

    async fn session(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let conn = connect(addr).await?;
        let ch = within("channel.open", conn.create_channel()).await?;
        within(
            "basic.qos",
            ch.basic_qos(PREFETCH, BasicQosOptions::default()),
        )
        .await?;
        let mut consumer = within(
            "basic.consume",
            ch.basic_consume(
                queue_name(self.queue).as_str().into(),
                "chaos".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        let mut stop = self.stop.clone();
        let mut last_delivery = Instant::now();
        let result = loop {
            if *stop.borrow() {
                break Ok(());
            }
            tokio::select! {
                next = consumer.next() => match next {
                    Some(Ok(d)) => {
                        last_delivery = Instant::now();
                        self.record(&d.data, d.redelivered);
                        if let Err(e) = within("ack", d.ack(BasicAckOptions::default())).await {
                            break Err(e);
                        }
                    }
                    Some(Err(e)) => break Err(anyhow::Error::from(e).context("consume")),
                    None => break Err(anyhow::anyhow!("the consumer was cancelled")),
                },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if last_delivery.elapsed() > STALL && self.owed() {
                        break Err(anyhow::anyhow!("nothing delivered for {STALL:?} while confirmed messages wait"));
                    }
                }
                _ = stop.changed() => {}
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "bye".into())).await;
        result
    }

    /// Whether a message confirmed into this queue was never delivered.
    fn owed(&self) -> bool {
        let h = lock(&self.history);
        let got: HashSet<MsgKey> = h.deliveries[self.queue]
            .iter()
            .map(|d| (d.publisher, d.msg))
            .collect();
        h.confirmed
            .keys()
            .any(|k| k.0 % self.queues == self.queue && !got.contains(k))
    }

    fn record(&self, body: &[u8], redelivered: bool) {
        let mut h = lock(&self.history);
        match parse_body(body) {
            Some((publisher, msg, attempt)) => h.deliveries[self.queue].push(Delivered {
                publisher,
                msg,
                attempt,
                redelivered,
            }),
            None => {
                let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
                h.garbage.push(shown);
            }
        }
    }
}
