//! The queue (and binding) of a run, declared and deleted over the native client:
//! the same steps and names as the lapin [`Topology`](crate::perf::topology), so a
//! `--client native` run needs no lapin connection at all.

use super::conn::Conn;
use crate::perf::args::PerfArgs;
use anyhow::{Context as _, anyhow, bail};
use std::time::{SystemTime, UNIX_EPOCH};
use warren_codec::spec::queue;
use warren_codec::{AMQPClass, AMQPValue, FieldTable, ShortString};

/// The declared queue and the connection that declared it.
pub struct Topology {
    conn: Conn,
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
        let mut conn = Conn::open(args.admin_uri()).await?;
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
        let declare = queue::Declare {
            queue: short(&queue)?,
            passive: false,
            durable: args.is_durable(),
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments,
        };
        match conn
            .call(AMQPClass::Queue(queue::AMQPMethod::Declare(declare)))
            .await
            .with_context(|| format!("queue.declare {queue}"))?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => {}
            other => bail!("expected queue.declare-ok, got {other:?}"),
        }
        let routing_key = args.routing_key.clone().unwrap_or_else(|| queue.clone());
        if !args.exchange.is_empty() {
            let bind = queue::Bind {
                queue: short(&queue)?,
                exchange: short(&args.exchange)?,
                routing_key: short(&routing_key)?,
                nowait: false,
                arguments: FieldTable::default(),
            };
            match conn
                .call(AMQPClass::Queue(queue::AMQPMethod::Bind(bind)))
                .await
                .with_context(|| format!("queue.bind {queue} to {}", args.exchange))?
            {
                AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => {}
                other => bail!("expected queue.bind-ok, got {other:?}"),
            }
        }
        Ok(Self {
            conn,
            queue,
            routing_key,
            owned,
        })
    }

    /// Deletes the queue if perf created it, and closes the connection.
    pub async fn teardown(mut self) -> anyhow::Result<()> {
        let deleted = if self.owned {
            self.delete()
                .await
                .with_context(|| format!("queue.delete {}", self.queue))
        } else {
            Ok(())
        };
        self.conn.close().await;
        deleted
    }

    async fn delete(&mut self) -> anyhow::Result<()> {
        let delete = queue::Delete {
            queue: short(&self.queue)?,
            if_unused: false,
            if_empty: false,
            nowait: false,
        };
        match self
            .conn
            .call(AMQPClass::Queue(queue::AMQPMethod::Delete(delete)))
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)) => Ok(()),
            other => bail!("expected queue.delete-ok, got {other:?}"),
        }
    }
}

fn short(s: &str) -> anyhow::Result<ShortString> {
    ShortString::try_new(s).map_err(|e| anyhow!("{s:?}: {e}"))
}

/// A name no other run uses: pid and start time (as the lapin engine names it).
fn fresh_queue_name() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("warren-perf-{}-{millis}", std::process::id())
}
