//! A consumer on the native client: same plan and counting as the lapin one (a
//! delivery counts once its whole body arrived), but deliveries are read in place
//! (tag and the first 8 body bytes, properties never parsed) and acks are patched
//! copies of one encoded frame, written together after each read.

use super::conn::Conn;
use super::frames::{AckTemplate, Incoming};
use crate::perf::consumer::ConsumerPlan;
use crate::perf::stats::{Stats, unix_micros};
use anyhow::{Context as _, bail};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warren_codec::spec::basic;
use warren_codec::{AMQPClass, FieldTable, ShortString};

/// How long the last acks may take to be written when the consumer stops.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// A consumer whose basic.consume the broker has accepted.
pub struct Consumer {
    conn: Conn,
    plan: Arc<ConsumerPlan>,
    stats: Arc<Stats>,
    acks: AckTemplate,
    received: u64,
    /// Highest delivery tag not yet covered by an ack.
    unacked: Option<u64>,
    /// The delivery whose content is still arriving.
    partial: Option<Partial>,
}

/// A delivery between its basic.deliver and its last body frame.
struct Partial {
    tag: u64,
    /// Body bytes still to come; `None` until the content header.
    remaining: Option<u64>,
    head: [u8; 8],
    head_len: usize,
}

/// Whether the consume loop goes on after a batch of frames.
enum Flow {
    More,
    /// Count reached, or the broker cancelled the consumer.
    Done,
}

impl Consumer {
    /// Connects and subscribes; returns once the broker confirmed basic.consume, so
    /// producers started afterwards cannot outrun it.
    pub async fn subscribe(
        uri: &str,
        plan: Arc<ConsumerPlan>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let mut conn = Conn::open(uri).await?;
        if plan.qos > 0 && !plan.auto_ack {
            let qos = basic::Qos {
                prefetch_count: plan.qos,
                global: false,
            };
            match conn
                .call(AMQPClass::Basic(basic::AMQPMethod::Qos(qos)))
                .await?
            {
                AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
                other => bail!("expected basic.qos-ok, got {other:?}"),
            }
        }
        let queue = ShortString::try_new(plan.queue.as_str())
            .map_err(|e| anyhow::anyhow!("queue name: {e}"))?;
        let consume = basic::Consume {
            queue,
            consumer_tag: "".into(),
            no_local: false,
            no_ack: plan.auto_ack,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        };
        match conn
            .call(AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
            .await
            .with_context(|| format!("basic.consume on {}", plan.queue))?
        {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
            other => bail!("expected basic.consume-ok, got {other:?}"),
        }
        Ok(Self {
            conn,
            plan,
            stats,
            acks: AckTemplate::new(),
            received: 0,
            unacked: None,
            partial: None,
        })
    }

    /// Consumes until `stop` turns true, the count is reached or the broker cancels
    /// the consumer; acks what is still pending, then closes the connection.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut result = self.consume_loop(&mut stop).await;
        if result.is_ok() {
            if let Some(tag) = self.unacked.take() {
                self.acks.append(&mut self.conn.wbuf, tag, true);
            }
            // Bounded: a broker that stopped reading must not keep perf from ending.
            result = match tokio::time::timeout(FLUSH_GRACE, self.conn.flush()).await {
                Ok(flushed) => flushed.context("basic.ack failed"),
                Err(_) => Err(anyhow::anyhow!(
                    "last acks not written within {FLUSH_GRACE:?}"
                )),
            };
        }
        self.conn.close().await;
        result
    }

    async fn consume_loop(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        while !*stop.borrow() && !self.count_reached() {
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                io = self.conn.io() => {
                    io?;
                    if let Flow::Done = self.handle_frames()? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn count_reached(&self) -> bool {
        self.plan.count.is_some_and(|n| self.received >= n)
    }

    /// Handles every complete frame read so far; the acks they cause are written
    /// by the next I/O step, together.
    fn handle_frames(&mut self) -> anyhow::Result<Flow> {
        while !self.count_reached() {
            let Some(frame) = super::frames::next_frame(&mut self.conn.rbuf, self.conn.frame_max)?
            else {
                return Ok(Flow::More);
            };
            match frame {
                Incoming::Deliver { tag } => {
                    self.partial = Some(Partial {
                        tag,
                        remaining: None,
                        head: [0; 8],
                        head_len: 0,
                    });
                }
                Incoming::Header { body_size } => {
                    if let Some(p) = &mut self.partial {
                        p.remaining = Some(body_size);
                        if body_size == 0 {
                            self.complete();
                        }
                    }
                }
                Incoming::Body { len, head } => self.on_body(len, &head),
                Incoming::Method { method, .. } => {
                    self.conn.check_close(&method)?;
                    // The queue was deleted (or the broker cancelled us otherwise):
                    // the lapin engine's stream ends here too.
                    if let AMQPClass::Basic(basic::AMQPMethod::Cancel(_)) = *method {
                        return Ok(Flow::Done);
                    }
                }
                _ => {}
            }
        }
        Ok(Flow::Done)
    }

    fn on_body(&mut self, len: usize, head: &[u8; 8]) {
        let Some(p) = &mut self.partial else {
            return;
        };
        let take = (8 - p.head_len).min(len);
        p.head[p.head_len..p.head_len + take].copy_from_slice(&head[..take]);
        p.head_len += take;
        let left = p.remaining.map(|r| r.saturating_sub(len as u64));
        p.remaining = left;
        if left == Some(0) {
            self.complete();
        }
    }

    /// The whole body of the current delivery arrived: count it, ack if due.
    fn complete(&mut self) {
        let Some(p) = self.partial.take() else {
            return;
        };
        self.stats.on_delivery(&p.head[..p.head_len], unix_micros());
        self.received += 1;
        if self.plan.auto_ack {
            return;
        }
        let every = self.plan.multi_ack_every.max(1);
        self.unacked = Some(p.tag);
        if self.received.is_multiple_of(every) {
            self.acks.append(&mut self.conn.wbuf, p.tag, every > 1);
            self.unacked = None;
        }
    }
}
