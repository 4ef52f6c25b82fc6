//! One consumer: its own connection and channel, consuming the perf queue and
//! measuring end-to-end latency from the timestamp in each body.
//!
//! As with publishes, lapin resolves an ack only once its I/O loop wrote it, so
//! acks are queued (polled once, then kept in `acking`) instead of awaited one by
//! one, which would cost a thread hand-off per message.

use super::stats::{Stats, unix_micros};
use anyhow::Context as _;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// What every consumer of a run does.
#[derive(Debug, Clone)]
pub struct ConsumerPlan {
    pub queue: String,
    /// basic.qos prefetch; 0 leaves it unlimited.
    pub qos: u16,
    pub auto_ack: bool,
    /// Ack with multiple=true every N deliveries; 0 or 1 acks each one.
    pub multi_ack_every: u64,
    /// Stop after this many deliveries.
    pub count: Option<u64>,
}

/// A consumer whose basic.consume the broker has accepted.
pub struct Consumer {
    connection: Connection,
    channel: lapin::Channel,
    stream: lapin::Consumer,
    plan: Arc<ConsumerPlan>,
    stats: Arc<Stats>,
    acking: FuturesUnordered<AckFuture>,
}

/// Acks handed to lapin but not yet written.
const ACK_PIPELINE: usize = 64;

type AckFuture = Pin<Box<dyn Future<Output = lapin::Result<()>> + Send>>;

impl Consumer {
    /// Connects and subscribes; returns once the broker confirmed basic.consume, so
    /// producers started afterwards cannot outrun it.
    pub async fn subscribe(
        uri: &str,
        plan: Arc<ConsumerPlan>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .with_context(|| format!("consumer cannot connect to {uri}"))?;
        let channel = connection.create_channel().await?;
        if plan.qos > 0 && !plan.auto_ack {
            channel
                .basic_qos(plan.qos, BasicQosOptions::default())
                .await?;
        }
        let options = BasicConsumeOptions {
            no_ack: plan.auto_ack,
            ..BasicConsumeOptions::default()
        };
        let stream = channel
            .basic_consume(
                plan.queue.as_str().into(),
                "".into(),
                options,
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("basic.consume on {}", plan.queue))?;
        Ok(Self {
            connection,
            channel,
            stream,
            plan,
            stats,
            acking: FuturesUnordered::new(),
        })
    }

    /// Consumes until `stop` turns true, the count is reached or the broker cancels
    /// the consumer; acks what is still pending, then closes the connection.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let result = self.consume_loop(&mut stop).await;
        let _ = self.connection.close(200, "perf done".into()).await;
        result
    }

    async fn consume_loop(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let every = self.plan.multi_ack_every.max(1);
        let mut received: u64 = 0;
        // Highest delivery tag not yet covered by an ack.
        let mut unacked: Option<u64> = None;
        while !*stop.borrow() && self.plan.count.is_none_or(|n| received < n) {
            if self.acking.len() >= ACK_PIPELINE
                && let Some(acked) = self.acking.next().await
            {
                acked.context("basic.ack failed")?;
            }
            let delivery = tokio::select! {
                changed = stop.changed() => if changed.is_err() { break } else { continue },
                Some(acked) = self.acking.next(), if !self.acking.is_empty() => {
                    acked.context("basic.ack failed")?;
                    continue;
                }
                next = self.stream.next() => match next {
                    Some(delivery) => delivery.context("consumer stream failed")?,
                    None => break, // cancelled by the broker (e.g. queue deleted)
                },
            };
            self.stats.on_delivery(&delivery.data, unix_micros());
            received += 1;
            if self.plan.auto_ack {
                continue;
            }
            unacked = Some(delivery.delivery_tag);
            if received.is_multiple_of(every) {
                self.ack(delivery.delivery_tag, every > 1)?;
                unacked = None;
            }
        }
        if let Some(tag) = unacked {
            self.ack(tag, true)?;
        }
        while let Some(acked) = self.acking.next().await {
            acked.context("basic.ack failed")?;
        }
        Ok(())
    }

    /// Queues an ack; polled once here so lapin sends acks in delivery order.
    fn ack(&mut self, tag: u64, multiple: bool) -> anyhow::Result<()> {
        let channel = self.channel.clone();
        let mut ack: AckFuture =
            Box::pin(async move { channel.basic_ack(tag, BasicAckOptions { multiple }).await });
        match (&mut ack).now_or_never() {
            Some(done) => done.context("basic.ack failed"),
            None => {
                self.acking.push(ack);
                Ok(())
            }
        }
    }
}
