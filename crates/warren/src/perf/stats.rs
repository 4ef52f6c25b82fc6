//! Shared counters and latency histograms of a perf run.
//!
//! Producers and consumers write here on every message, so everything is cheap:
//! relaxed atomics for counts, and one uncontended mutex per histogram that the
//! reporter locks once a second to move the last second's samples out.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Highest latency tracked, in µs (one hour); larger samples saturate to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Three significant digits: values below 2048 µs are exact, above within 0.1 %.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram in microseconds.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(
        1,
        MAX_LATENCY_US,
        SIGNIFICANT_DIGITS,
    )?)
}

/// Wall-clock µs since the Unix epoch; the only clock two processes (or two hosts
/// with synchronised clocks) share, which end-to-end latency needs.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Writes the send timestamp into the first bytes of a body.
pub fn stamp(body: &mut [u8], micros: u64) {
    if let Some(head) = body.get_mut(..8) {
        head.copy_from_slice(&micros.to_be_bytes());
    }
}

/// Reads the send timestamp back; `None` for bodies not written by perf.
pub fn read_stamp(body: &[u8]) -> Option<u64> {
    let head: [u8; 8] = body.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// A histogram that writers fill and the reporter empties.
pub struct LatencyRecorder {
    pending: Mutex<Histogram<u64>>,
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            pending: Mutex::new(new_histogram()?),
        })
    }

    /// Records one latency in µs. Zero (same-microsecond delivery, or clocks a
    /// hair apart) counts as 1 µs, the histogram's floor.
    pub fn record(&self, micros: u64) {
        self.lock().saturating_record(micros.max(1));
    }

    /// Moves every sample recorded so far into `into` and empties the recorder.
    pub fn drain_into(&self, into: &mut Histogram<u64>) {
        let mut pending = self.lock();
        // Both histograms have the same bounds, so adding cannot overflow their range.
        if into.add(&*pending).is_ok() {
            pending.reset();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A writer that panicked left a histogram that is still a valid histogram.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Message counters shared by all producers and consumers.
#[derive(Default)]
pub struct Counters {
    /// basic.publish frames handed to the client library.
    pub published: AtomicU64,
    /// Publishes the broker acked.
    pub confirmed: AtomicU64,
    /// Publishes the broker nacked.
    pub nacked: AtomicU64,
    /// Mandatory publishes the broker returned as unroutable.
    pub returned: AtomicU64,
    /// Deliveries received by consumers.
    pub received: AtomicU64,
    /// Deliveries whose body carried no timestamp (not published by perf).
    pub foreign: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy for reporting (each counter is read once).
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            published: self.published.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            foreign: self.foreign.load(Ordering::Relaxed),
        }
    }
}

/// Values of [`Counters`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub received: u64,
    pub foreign: u64,
}

impl CounterSnapshot {
    /// Per-counter difference since `earlier`.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            published: self.published.saturating_sub(earlier.published),
            confirmed: self.confirmed.saturating_sub(earlier.confirmed),
            nacked: self.nacked.saturating_sub(earlier.nacked),
            returned: self.returned.saturating_sub(earlier.returned),
            received: self.received.saturating_sub(earlier.received),
            foreign: self.foreign.saturating_sub(earlier.foreign),
        }
    }
}

/// Everything producers and consumers report into.
pub struct Stats {
    pub counters: Counters,
    /// End-to-end latency: publisher's send stamp to consumer's receipt.
    pub latency: LatencyRecorder,
    /// Publisher-confirm latency: basic.publish to its ack/nack.
    pub confirm_latency: LatencyRecorder,
    /// Unix µs of the newest delivery, so draining can tell a stalled queue from a slow one.
    last_delivery_us: AtomicU64,
}

impl Stats {
    /// Fresh, empty statistics.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            counters: Counters::default(),
            latency: LatencyRecorder::new()?,
            confirm_latency: LatencyRecorder::new()?,
            last_delivery_us: AtomicU64::new(0),
        })
    }

    /// Accounts one delivery received at `now_us` with the given body.
    pub fn on_delivery(&self, body: &[u8], now_us: u64) {
        Counters::bump(&self.counters.received);
        self.last_delivery_us.store(now_us, Ordering::Relaxed);
        match read_stamp(body) {
            Some(sent) if sent <= now_us.saturating_add(MAX_LATENCY_US) => {
                self.latency.record(now_us.saturating_sub(sent));
            }
            _ => Counters::bump(&self.counters.foreign),
        }
    }

    /// Unix µs of the newest delivery (0: none yet).
    pub fn last_delivery_us(&self) -> u64 {
        self.last_delivery_us.load(Ordering::Relaxed)
    }
}

/// Latency distribution summary in µs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// Summary of a histogram; `None` when it holds no sample.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        Some(Self {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p75: h.value_at_quantile(0.75),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut h = new_histogram().unwrap();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(
            (p.count, p.min, p.p50, p.p75, p.p95, p.p99, p.max),
            (1000, 1, 500, 750, 950, 990, 1000)
        );
        assert!((p.mean - 500.5).abs() < 1e-9);
    }

    #[test]
    fn percentiles_of_skewed_distribution() {
        let mut h = new_histogram().unwrap();
        h.record_n(100, 98).unwrap();
        h.record_n(1500, 2).unwrap();
        let p = Percentiles::of(&h).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (100, 100, 1500, 1500));
        assert!(Percentiles::of(&new_histogram().unwrap()).is_none());
    }

    #[test]
    fn large_values_are_within_precision() {
        let mut h = new_histogram().unwrap();
        h.record(2_000_000).unwrap();
        let p = Percentiles::of(&h).unwrap();
        let err = p.p50.abs_diff(2_000_000) as f64 / 2_000_000.0;
        assert!(err <= 0.001, "p50 {} too far from 2s", p.p50);
    }

    #[test]
    fn recorder_drains_and_resets() {
        let r = LatencyRecorder::new().unwrap();
        r.record(0);
        r.record(10);
        r.record(MAX_LATENCY_US * 10);
        let mut into = new_histogram().unwrap();
        r.drain_into(&mut into);
        assert_eq!(into.len(), 3);
        assert_eq!(into.min(), 1, "zero is clamped to the floor");
        assert!(
            into.max() >= MAX_LATENCY_US,
            "huge values saturate instead of being lost"
        );
        let mut again = new_histogram().unwrap();
        r.drain_into(&mut again);
        assert!(again.is_empty(), "a drain empties the recorder");
    }

    #[test]
    fn stamp_round_trip_and_delivery_accounting() {
        let mut body = vec![0u8; 12];
        stamp(&mut body, 1_700_000_000_000_123);
        assert_eq!(read_stamp(&body), Some(1_700_000_000_000_123));
        assert_eq!(read_stamp(&body[..7]), None);

        let stats = Stats::new().unwrap();
        stats.on_delivery(&body, 1_700_000_000_000_623);
        stats.on_delivery(b"short", 1_700_000_000_000_700);
        let c = stats.counters.snapshot();
        assert_eq!((c.received, c.foreign), (2, 1));
        assert_eq!(stats.last_delivery_us(), 1_700_000_000_000_700);
        let mut h = new_histogram().unwrap();
        stats.latency.drain_into(&mut h);
        assert_eq!((h.len(), h.min()), (1, 500));
    }

    #[test]
    fn counter_deltas() {
        let c = Counters::default();
        Counters::bump(&c.published);
        Counters::bump(&c.published);
        let a = c.snapshot();
        Counters::bump(&c.published);
        Counters::bump(&c.received);
        let d = c.snapshot().since(&a);
        assert_eq!((d.published, d.received, d.confirmed), (1, 1, 0));
    }
}
