//! A producer on the native client: same plan and counting as the lapin one
//! (`published` when the frames reached the socket, confirms and nacks with their
//! latency, returns), but publishes are copies of one pre-encoded message written
//! many per syscall.

use super::conn::Conn;
use super::frames::{Incoming, PublishShape, PublishTemplate};
use crate::perf::producer::ProducerPlan;
use crate::perf::stats::{Stats, unix_micros};
use anyhow::bail;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use warren_codec::AMQPClass;
use warren_codec::spec::confirm;

/// Encoded publishes are written once the write buffer holds this many bytes
/// (or nothing more may be sent): large enough for tens of messages per write.
const WRITE_BATCH: usize = 128 * 1024;

/// A connected producer, ready to publish.
pub struct Producer {
    conn: Conn,
    plan: Arc<ProducerPlan>,
    stats: Arc<Stats>,
    template: PublishTemplate,
    confirms: Confirms,
    /// Messages encoded so far (the last delivery tag, with confirms on).
    encoded: u64,
    /// Messages already added to the `published` counter.
    counted: u64,
}

impl Producer {
    /// Opens the producer's connection and channel (in confirm mode if asked).
    pub async fn connect(
        uri: &str,
        plan: Arc<ProducerPlan>,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Self> {
        let mut conn = Conn::open(uri).await?;
        if plan.window > 0 {
            let select = confirm::Select { nowait: false };
            match conn
                .call(AMQPClass::Confirm(confirm::AMQPMethod::Select(select)))
                .await?
            {
                AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
                other => bail!("expected confirm.select-ok, got {other:?}"),
            }
        }
        let shape = PublishShape {
            exchange: &plan.exchange,
            routing_key: &plan.routing_key,
            mandatory: plan.mandatory,
            persistent: plan.persistent,
            size: plan.size,
        };
        let template = PublishTemplate::new(&shape, conn.frame_max)?;
        Ok(Self {
            conn,
            confirms: Confirms::new(plan.window),
            plan,
            stats,
            template,
            encoded: 0,
            counted: 0,
        })
    }

    /// Publishes until `stop` turns true or the message count is reached, then waits
    /// (bounded) for outstanding confirms and closes the connection.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut result = self.publish_loop(&mut stop).await;
        if result.is_ok() {
            result = self.await_outstanding().await;
        }
        self.conn.close().await;
        result
    }

    async fn publish_loop(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let start = Instant::now();
        while !*stop.borrow() {
            let due = self.fill(start);
            if self.count_reached() {
                return Ok(());
            }
            let rate_wait = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                io = self.conn.io() => {
                    io?;
                    self.after_io()?;
                }
                () = rate_wait => {}
            }
        }
        Ok(())
    }

    fn count_reached(&self) -> bool {
        self.plan.count.is_some_and(|n| self.encoded >= n)
    }

    /// Encodes every message that may go now: within the count, the confirm
    /// window, the write batch and the rate. Returns when the next one is due if
    /// the rate is what holds it back.
    fn fill(&mut self, start: Instant) -> Option<Instant> {
        let now = Instant::now();
        let micros = unix_micros();
        let rate = self.plan.rate;
        let window = self.plan.window;
        loop {
            if self.count_reached() || (window > 0 && self.confirms.outstanding >= window) {
                return None;
            }
            let len = self.conn.wbuf.len();
            if len > 0 && len + self.template.len() > WRITE_BATCH {
                return None;
            }
            if rate > 0.0 {
                // Message k is due k/rate after the start, so the first goes at once.
                let due = start + Duration::from_secs_f64(self.encoded as f64 / rate);
                if due > now {
                    return Some(due);
                }
            }
            self.template.append(&mut self.conn.wbuf, micros);
            self.encoded += 1;
            if window > 0 {
                self.confirms.push(now);
            }
        }
    }

    /// Accounts what the last I/O step wrote and read.
    fn after_io(&mut self) -> anyhow::Result<()> {
        // The write buffer holds only whole publishes, so every message not (fully)
        // in it has reached the socket.
        let unwritten = self.conn.wbuf.len().div_ceil(self.template.len()) as u64;
        let written = self.encoded - unwritten;
        if written > self.counted {
            self.stats
                .counters
                .published
                .fetch_add(written - self.counted, Ordering::Relaxed);
            self.counted = written;
        }
        while let Some(frame) = super::frames::next_frame(&mut self.conn.rbuf, self.conn.frame_max)?
        {
            match frame {
                Incoming::Ack { tag, multiple } => {
                    self.confirms.settle(tag, multiple, true, &self.stats);
                }
                Incoming::Nack { tag, multiple } => {
                    self.confirms.settle(tag, multiple, false, &self.stats);
                }
                // RabbitMQ sends the return before the confirm of the same message;
                // both are counted, as lapin's Confirmation::Ack(Some(returned)) is.
                Incoming::Return => {
                    self.stats.counters.returned.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Method { method, .. } => self.conn.check_close(&method)?,
                // The content of returned messages, and anything else perf ignores.
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes what is still buffered, then waits (bounded) for the confirms of
    /// everything written; what is still unconfirmed then is reported as such.
    async fn await_outstanding(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.plan.confirm_grace;
        while !self.conn.wbuf.is_empty() || self.confirms.outstanding > 0 {
            match tokio::time::timeout_at(deadline, self.conn.io()).await {
                Ok(io) => {
                    io?;
                    self.after_io()?;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Send times of unconfirmed publishes, by delivery tag.
struct Confirms {
    /// Delivery tag of the front entry.
    base: u64,
    /// `None` once confirmed (an out-of-order single ack leaves a hole).
    sent: VecDeque<Option<Instant>>,
    outstanding: usize,
}

impl Confirms {
    fn new(window: usize) -> Self {
        Self {
            base: 1,
            sent: VecDeque::with_capacity(window),
            outstanding: 0,
        }
    }

    fn push(&mut self, at: Instant) {
        self.sent.push_back(Some(at));
        self.outstanding += 1;
    }

    /// Accounts basic.ack (`ack`) or basic.nack for `tag`, or up to it if `multiple`.
    fn settle(&mut self, tag: u64, multiple: bool, ack: bool, stats: &Stats) {
        let now = Instant::now();
        let mut settled = 0u64;
        let mut take = |slot: &mut Option<Instant>| {
            if let Some(sent) = slot.take() {
                let micros =
                    u64::try_from(now.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                stats.confirm_latency.record(micros);
                settled += 1;
            }
        };
        if multiple {
            while self.base <= tag {
                let Some(mut slot) = self.sent.pop_front() else {
                    break;
                };
                take(&mut slot);
                self.base += 1;
            }
        } else if let Some(slot) = tag
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.sent.get_mut(i))
        {
            take(slot);
        }
        while matches!(self.sent.front(), Some(None)) {
            self.sent.pop_front();
            self.base += 1;
        }
        self.outstanding -= settled as usize;
        let counter = if ack {
            &stats.counters.confirmed
        } else {
            &stats.counters.nacked
        };
        counter.fetch_add(settled, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_settle_single_multiple_and_out_of_order() {
        let stats = Stats::new().unwrap();
        let mut c = Confirms::new(8);
        let t0 = Instant::now();
        for _ in 0..6 {
            c.push(t0);
        }
        c.settle(2, false, true, &stats); // hole at tag 2
        assert_eq!((c.base, c.outstanding), (1, 5));
        c.settle(2, false, true, &stats); // duplicate: ignored
        c.settle(3, true, false, &stats); // nacks 1 and 3, skips the settled 2
        assert_eq!((c.base, c.outstanding), (4, 3));
        c.settle(5, false, true, &stats);
        c.settle(4, false, true, &stats); // closes the gap: 4 and 5 leave
        assert_eq!((c.base, c.outstanding, c.sent.len()), (6, 1, 1));
        c.settle(99, true, true, &stats); // past the end: settles what exists
        assert_eq!((c.base, c.outstanding, c.sent.len()), (7, 0, 0));
        c.settle(3, false, true, &stats); // already gone
        let s = stats.counters.snapshot();
        assert_eq!((s.confirmed, s.nacked), (4, 2));
        let mut h = crate::perf::stats::new_histogram().unwrap();
        stats.confirm_latency.drain_into(&mut h);
        assert_eq!(h.len(), 6);
    }
}
