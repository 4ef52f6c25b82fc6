//! The once-a-second ticker: moves the last second's latency samples out of the
//! shared recorders, prints that second's rates, and keeps the run's totals.

use super::report::progress_line;
use super::stats::{CounterSnapshot, Percentiles, Stats, new_histogram};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Where progress lines go: stdout, or stderr when stdout is reserved for JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Silent,
    Stdout,
    Stderr,
}

/// Whole-run latency histograms, filled by the ticker.
pub struct Totals {
    pub latency: Histogram<u64>,
    pub confirm_latency: Histogram<u64>,
}

/// State of the ticker between two ticks.
pub struct Ticker {
    stats: Arc<Stats>,
    start: Instant,
    last: CounterSnapshot,
    last_at: Instant,
    second: Histogram<u64>,
    totals: Totals,
}

impl Ticker {
    /// A ticker measuring from `start`.
    pub fn new(stats: Arc<Stats>, start: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            stats,
            start,
            last: CounterSnapshot::default(),
            last_at: start,
            second: new_histogram()?,
            totals: Totals {
                latency: new_histogram()?,
                confirm_latency: new_histogram()?,
            },
        })
    }

    /// Closes the current interval and returns its progress line.
    pub fn tick(&mut self) -> String {
        let now = Instant::now();
        let counters = self.stats.counters.snapshot();
        self.stats.latency.drain_into(&mut self.second);
        self.stats
            .confirm_latency
            .drain_into(&mut self.totals.confirm_latency);
        let line = progress_line(
            now.duration_since(self.start).as_secs_f64(),
            &counters.since(&self.last),
            now.duration_since(self.last_at).as_secs_f64(),
            Percentiles::of(&self.second).as_ref(),
        );
        // Same bounds on both sides, so the addition cannot fail; if it somehow
        // did, losing one second of samples beats stopping the run.
        let _ = self.totals.latency.add(&self.second);
        self.second.reset();
        self.last = counters;
        self.last_at = now;
        line
    }

    /// Runs until `done` fires, printing one line per second to `output`, and
    /// returns the run's totals including the samples of the last partial second.
    pub async fn run(mut self, mut done: watch::Receiver<bool>, output: Output) -> Totals {
        let period = Duration::from_secs(1);
        let mut interval = tokio::time::interval_at(self.start + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let line = self.tick();
                    match output {
                        Output::Silent => {}
                        Output::Stdout => println!("{line}"),
                        Output::Stderr => eprintln!("{line}"),
                    }
                }
                changed = done.changed() => if changed.is_err() || *done.borrow() { break },
            }
        }
        self.tick();
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::stats::Counters;

    #[tokio::test]
    async fn tick_reports_interval_and_keeps_totals() {
        let stats = Arc::new(Stats::new().unwrap());
        let mut t = Ticker::new(Arc::clone(&stats), Instant::now()).unwrap();
        stats.latency.record(100);
        stats.confirm_latency.record(50);
        Counters::bump(&stats.counters.received);
        let line = t.tick();
        assert!(line.contains("p50/p99 100/100"), "{line}");
        stats.latency.record(300);
        let line = t.tick();
        assert!(
            line.contains("p50/p99 300/300"),
            "only this second's samples: {line}"
        );
        let (tx, rx) = watch::channel(false);
        tx.send(true).unwrap();
        let totals = t.run(rx, Output::Silent).await;
        assert_eq!(totals.latency.len(), 2);
        assert_eq!(totals.confirm_latency.len(), 1);
    }
}
