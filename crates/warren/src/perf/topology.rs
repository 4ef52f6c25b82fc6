//! The queue (and binding) a run uses: declared before consumers start, deleted at
//! the end when perf made up its name.

use super::args::PerfArgs;
use anyhow::Context as _;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::{SystemTime, UNIX_EPOCH};

/// The declared queue and the connection that declared it.
pub struct Topology {
    connection: Connection,
    channel: Channel,
    /// Queue name.
    pub queue: String,
    /// Routing key producers use.
    pub routing_key: String,
    /// Perf chose the name, so the queue is perf's to delete.
    owned: bool,
}

impl Topology {
    /// Declares the queue per the flags and binds it to --exchange if one is given.
    pub async fn declare(args: &PerfArgs) -> anyhow::Result<Self> {
        let uri = args.admin_uri();
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .with_context(|| format!("cannot connect to {uri}"))?;
        let channel = connection.create_channel().await?;
        let (queue, owned) = match &args.queue {
            Some(q) => (q.clone(), false),
            None => (fresh_queue_name(), true),
        };
        let mut arguments = FieldTable::default();
        if let Some(t) = args.queue_type {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(t.as_str().into()),
            );
        }
        let options = QueueDeclareOptions {
            durable: args.is_durable(),
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.as_str().into(), options, arguments)
            .await
            .with_context(|| format!("queue.declare {queue}"))?;
        let routing_key = args.routing_key.clone().unwrap_or_else(|| queue.clone());
        if !args.exchange.is_empty() {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    args.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("queue.bind {queue} to {}", args.exchange))?;
        }
        Ok(Self {
            connection,
            channel,
            queue,
            routing_key,
            owned,
        })
    }

    /// Deletes the queue if perf created it, and closes the connection.
    pub async fn teardown(self) -> anyhow::Result<()> {
        let deleted = if self.owned {
            self.channel
                .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map(drop)
                .with_context(|| format!("queue.delete {}", self.queue))
        } else {
            Ok(())
        };
        let _ = self.connection.close(200, "perf done".into()).await;
        deleted
    }
}

/// A name no other run uses: pid and start time.
fn fresh_queue_name() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("warren-perf-{}-{millis}", std::process::id())
}
