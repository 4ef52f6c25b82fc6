//! One producer: its own connection and channel, publishing stamped bodies at a
//! fixed or unlimited rate, with at most `window` unconfirmed messages in flight.
//!
//! lapin resolves a publish only once its I/O loop has written the frames, so
//! awaiting each publish in turn costs one thread hand-off and one `write` per
//! message. Instead up to [`SEND_PIPELINE`] publishes are queued (each polled once,
//! which hands its frames to lapin in order) and the I/O loop writes them in
//! batches.

use super::stats::{Counters, Stats, stamp, unix_micros};
use anyhow::Context as _;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What every producer of a run publishes.
#[derive(Debug, Clone)]
pub struct ProducerPlan {
    pub exchange: String,
    pub routing_key: String,
    pub size: usize,
    /// Max unconfirmed messages; 0 disables publisher confirms.
    pub window: usize,
    /// Messages per second; 0 is unlimited.
    pub rate: f64,
    /// Stop after this many messages.
    pub count: Option<u64>,
    pub persistent: bool,
    pub mandatory: bool,
    /// How long to wait for outstanding confirms once publishing stops.
    pub confirm_grace: Duration,
}

/// A confirm future that remembers when its message was sent.
struct Timed {
    sent: Instant,
    confirm: PublisherConfirm,
}

impl Future for Timed {
    type Output = (Instant, lapin::Result<Confirmation>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sent = self.sent;
        Pin::new(&mut self.confirm).poll(cx).map(|r| (sent, r))
    }
}

/// Publishes handed to lapin but not yet written to the socket.
const SEND_PIPELINE: usize = 64;

type SendFuture = Pin<Box<dyn Future<Output = (Instant, lapin::Result<PublisherConfirm>)> + Send>>;

/// A connected producer, ready to publish.
pub struct Producer {
    connection: Connection,
    channel: lapin::Channel,
    plan: Arc<ProducerPlan>,
    stats: Arc<Stats>,
    sending: FuturesOrdered<SendFuture>,
    in_flight: FuturesUnordered<Timed>,
}

/// The constant parts of every publish.
struct Template {
    exchange: ShortString,
    routing_key: ShortString,
    options: BasicPublishOptions,
    properties: BasicProperties,
}

impl Producer {
    /// Opens the producer's connection and channel (in confirm mode if asked).
    pub async fn connect(
        uri: &str,
        plan: Arc<ProducerPlan>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .with_context(|| format!("producer cannot connect to {uri}"))?;
        let channel = connection.create_channel().await?;
        if plan.window > 0 {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        Ok(Self {
            connection,
            channel,
            plan,
            stats,
            sending: FuturesOrdered::new(),
            in_flight: FuturesUnordered::new(),
        })
    }

    /// Publishes until `stop` turns true or the message count is reached, then waits
    /// (bounded) for outstanding confirms and closes the connection.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let result = self.publish_loop(&mut stop).await;
        let drained = self.await_outstanding().await;
        // Closing is best effort: the counts are already final.
        let _ = self.connection.close(200, "perf done".into()).await;
        result.and(drained)
    }

    async fn publish_loop(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let plan = Arc::clone(&self.plan);
        let template = Template {
            exchange: ShortString::from(plan.exchange.as_str()),
            routing_key: ShortString::from(plan.routing_key.as_str()),
            options: BasicPublishOptions {
                mandatory: plan.mandatory,
                immediate: false,
            },
            properties: if plan.persistent {
                BasicProperties::default().with_delivery_mode(2)
            } else {
                BasicProperties::default()
            },
        };
        let start = Instant::now();
        let mut sent: u64 = 0;
        while !*stop.borrow() && plan.count.is_none_or(|n| sent < n) {
            if plan.rate > 0.0 {
                let due = start + Duration::from_secs_f64(sent as f64 / plan.rate);
                if !self.wait_until(due, stop).await? {
                    break;
                }
            }
            // Messages still being written count against the window: they will
            // need a confirm too.
            while (plan.window > 0 && self.sending.len() + self.in_flight.len() >= plan.window)
                || self.sending.len() >= SEND_PIPELINE
            {
                if !self.step(stop).await? {
                    return Ok(());
                }
            }
            self.send(&template).await?;
            sent += 1;
            self.collect_ready()?;
        }
        Ok(())
    }

    /// Hands one publish to lapin: polled once here so its frames are queued now,
    /// in order, then left in `sending` until lapin wrote them.
    async fn send(&mut self, t: &Template) -> anyhow::Result<()> {
        let mut body = vec![0u8; self.plan.size];
        stamp(&mut body, unix_micros());
        let channel = self.channel.clone();
        let (exchange, routing_key) = (t.exchange.clone(), t.routing_key.clone());
        let (options, properties) = (t.options, t.properties.clone());
        let sent_at = Instant::now();
        let mut publish: SendFuture = Box::pin(async move {
            let r = channel
                .basic_publish(exchange, routing_key, options, &body, properties)
                .await;
            (sent_at, r)
        });
        match futures::poll!(publish.as_mut()) {
            Poll::Ready(done) => self.on_sent(done),
            Poll::Pending => {
                self.sending.push_back(publish);
                Ok(())
            }
        }
    }

    fn on_sent(
        &mut self,
        (sent, result): (Instant, lapin::Result<PublisherConfirm>),
    ) -> anyhow::Result<()> {
        let confirm = result.context("basic.publish failed")?;
        Counters::bump(&self.stats.counters.published);
        if self.plan.window > 0 {
            self.in_flight.push(Timed { sent, confirm });
        }
        Ok(())
    }

    /// Waits for the next written publish or arrived confirm; false if told to stop.
    async fn step(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<bool> {
        tokio::select! {
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(false) },
            Some(done) = self.sending.next(), if !self.sending.is_empty() => self.on_sent(done)?,
            Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.account(done)?,
        }
        Ok(true)
    }

    /// Sleeps until `due` while still accounting sends and confirms; false if told to stop.
    async fn wait_until(
        &mut self,
        due: Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let sleep = tokio::time::sleep_until(due);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return Ok(true),
                more = self.step(stop) => if !more? { return Ok(false) },
            }
        }
    }

    /// Accounts sends and confirms that already completed, without waiting.
    fn collect_ready(&mut self) -> anyhow::Result<()> {
        while let Some(Some(done)) = self.sending.next().now_or_never() {
            self.on_sent(done)?;
        }
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            self.account(done)?;
        }
        Ok(())
    }

    /// Lets queued publishes reach the socket, then waits (bounded) for their
    /// confirms; what is still unconfirmed then is reported as such by the summary.
    async fn await_outstanding(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.plan.confirm_grace;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, self.sending.next()).await {
            self.on_sent(done)?;
        }
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, self.in_flight.next()).await {
            self.account(done)?;
        }
        Ok(())
    }

    fn account(
        &self,
        (sent, result): (Instant, lapin::Result<Confirmation>),
    ) -> anyhow::Result<()> {
        let counters = &self.stats.counters;
        let returned = match result.context("publisher confirm failed")? {
            Confirmation::Ack(returned) => {
                Counters::bump(&counters.confirmed);
                returned.is_some()
            }
            Confirmation::Nack(returned) => {
                Counters::bump(&counters.nacked);
                returned.is_some()
            }
            Confirmation::NotRequested => return Ok(()),
        };
        if returned {
            Counters::bump(&counters.returned);
        }
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.confirm_latency.record(micros);
        Ok(())
    }
}
