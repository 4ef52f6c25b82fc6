//! What perf prints: one progress line per second and the final summary, as text
//! or as one JSON object.

use super::args::{PerfArgs, QueueType};
use super::stats::{CounterSnapshot, Percentiles};
use serde::Serialize;
use std::fmt::Write as _;

/// The options that shape the numbers, echoed in the summary so a JSON result
/// file is self-describing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunConfig {
    pub producers: u32,
    pub consumers: u32,
    pub size: u32,
    /// Confirm window; 0: confirms off.
    pub confirm: u32,
    pub qos: u16,
    pub multi_ack_every: u32,
    pub rate: f64,
    pub queue: String,
    pub queue_type: Option<QueueType>,
    pub durable: bool,
    pub persistent: bool,
    pub mandatory: bool,
    pub auto_ack: bool,
    pub exchange: String,
    pub routing_key: String,
}

impl RunConfig {
    /// Echo of `args` with the names perf resolved (queue, routing key).
    pub fn new(args: &PerfArgs, queue: &str, routing_key: &str) -> Self {
        Self {
            producers: args.producers,
            consumers: args.consumers,
            size: args.size,
            confirm: args.confirm,
            qos: args.qos,
            multi_ack_every: args.multi_ack_every,
            rate: args.rate,
            queue: queue.to_string(),
            queue_type: args.queue_type,
            durable: args.is_durable(),
            persistent: args.is_persistent(),
            mandatory: args.is_mandatory(),
            auto_ack: args.auto_ack,
            exchange: args.exchange.clone(),
            routing_key: routing_key.to_string(),
        }
    }
}

/// Final result of a run. Rates are msg/s, latencies µs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub config: RunConfig,
    /// Seconds from the first producer start to the end of draining.
    pub elapsed_s: f64,
    /// Seconds producers ran, including the wait for their last confirms.
    pub publish_elapsed_s: f64,
    /// Seconds from the start to the last delivery.
    pub consume_elapsed_s: f64,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    /// Published with confirms on but neither acked nor nacked by the end.
    pub unconfirmed: u64,
    pub received: u64,
    /// Deliveries without a perf timestamp (e.g. left in a reused queue).
    pub foreign: u64,
    pub publish_rate: f64,
    pub confirm_rate: f64,
    pub receive_rate: f64,
    /// End-to-end latency, publish to delivery.
    pub latency_us: Option<Percentiles>,
    /// Publish to confirm.
    pub confirm_latency_us: Option<Percentiles>,
    /// Producers or consumers that failed, with the reason.
    pub errors: Vec<String>,
}

/// Timings measured by the coordinator, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub elapsed: f64,
    pub publish: f64,
    pub consume: f64,
}

impl Summary {
    /// Derives rates and the unconfirmed count from the raw totals.
    pub fn new(
        config: RunConfig,
        totals: CounterSnapshot,
        timings: Timings,
        latency_us: Option<Percentiles>,
        confirm_latency_us: Option<Percentiles>,
        errors: Vec<String>,
    ) -> Self {
        let unconfirmed = if config.confirm > 0 {
            totals
                .published
                .saturating_sub(totals.confirmed + totals.nacked)
        } else {
            0
        };
        Self {
            elapsed_s: timings.elapsed,
            publish_elapsed_s: timings.publish,
            consume_elapsed_s: timings.consume,
            published: totals.published,
            confirmed: totals.confirmed,
            nacked: totals.nacked,
            returned: totals.returned,
            unconfirmed,
            received: totals.received,
            foreign: totals.foreign,
            publish_rate: rate(totals.published, timings.publish),
            confirm_rate: rate(totals.confirmed, timings.publish),
            receive_rate: rate(totals.received, timings.consume),
            latency_us,
            confirm_latency_us,
            errors,
            config,
        }
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// The summary for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let _ = writeln!(
            out,
            "warren perf: {}p/{}c, {} B, confirm {}, qos {}, queue {} ({}{})",
            c.producers,
            c.consumers,
            c.size,
            if c.confirm > 0 {
                c.confirm.to_string()
            } else {
                "off".into()
            },
            c.qos,
            c.queue,
            c.queue_type.map_or("default", QueueType::as_str),
            if c.durable { ", durable" } else { "" },
        );
        let _ = writeln!(
            out,
            "sent {} in {:.1}s ({:.0} msg/s); confirmed {} ({:.0} msg/s), nacked {}, returned {}, unconfirmed {}",
            self.published,
            self.publish_elapsed_s,
            self.publish_rate,
            self.confirmed,
            self.confirm_rate,
            self.nacked,
            self.returned,
            self.unconfirmed
        );
        let _ = writeln!(
            out,
            "received {} in {:.1}s ({:.0} msg/s){}",
            self.received,
            self.consume_elapsed_s,
            self.receive_rate,
            if self.foreign > 0 {
                format!(", {} without perf timestamp", self.foreign)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "latency (µs):         {}",
            percentiles_line(self.latency_us.as_ref())
        );
        let _ = writeln!(
            out,
            "confirm latency (µs): {}",
            percentiles_line(self.confirm_latency_us.as_ref())
        );
        for e in &self.errors {
            let _ = writeln!(out, "error: {e}");
        }
        out
    }
}

fn percentiles_line(p: Option<&Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "min {} p50 {} p75 {} p95 {} p99 {} max {} (mean {:.0}, n={})",
            p.min, p.p50, p.p75, p.p95, p.p99, p.max, p.mean, p.count
        ),
        None => "n/a".to_string(),
    }
}

/// msg/s, 0 when no time passed.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The line printed every second: that second's rates and consumer latency.
pub fn progress_line(
    elapsed_s: f64,
    delta: &CounterSnapshot,
    interval_s: f64,
    latency: Option<&Percentiles>,
) -> String {
    let lat = match latency {
        Some(p) => format!("latency p50/p99 {}/{} µs", p.p50, p.p99),
        None => "latency p50/p99 -/- µs".to_string(),
    };
    let mut line = format!(
        "time {:>6.1}s, sent {:>8.0} msg/s, confirmed {:>8.0} msg/s, received {:>8.0} msg/s, {}",
        elapsed_s,
        rate(delta.published, interval_s),
        rate(delta.confirmed, interval_s),
        rate(delta.received, interval_s),
        lat
    );
    // Rare events are shown as counts, and only when they happen, so they stand out.
    if delta.nacked > 0 || delta.returned > 0 {
        let _ = write!(
            line,
            ", nacked {}, returned {}",
            delta.nacked, delta.returned
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::stats::new_histogram;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PerfArgs,
    }

    fn summary(confirm: &str) -> Summary {
        let args = Cli::try_parse_from([
            "perf",
            "-c",
            confirm,
            "--queue-type",
            "quorum",
            "-s",
            "1024",
        ])
        .unwrap()
        .args;
        let mut h = new_histogram().unwrap();
        for v in [100, 200, 300, 400] {
            h.record(v).unwrap();
        }
        let totals = CounterSnapshot {
            published: 1000,
            confirmed: 990,
            nacked: 4,
            returned: 1,
            received: 995,
            foreign: 0,
        };
        let timings = Timings {
            elapsed: 11.0,
            publish: 10.0,
            consume: 10.5,
        };
        Summary::new(
            RunConfig::new(&args, "q", "q"),
            totals,
            timings,
            Percentiles::of(&h),
            None,
            vec![],
        )
    }

    #[test]
    fn derives_rates_and_unconfirmed() {
        let s = summary("256");
        assert_eq!(s.unconfirmed, 6);
        assert!((s.publish_rate - 100.0).abs() < 1e-9);
        assert!((s.confirm_rate - 99.0).abs() < 1e-9);
        assert!((s.receive_rate - 995.0 / 10.5).abs() < 1e-9);
        assert_eq!(
            summary("0").unconfirmed,
            0,
            "no confirms asked, none missing"
        );
        assert_eq!(rate(5, 0.0), 0.0);
    }

    #[test]
    fn json_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&summary("256").to_json().unwrap()).unwrap();
        for key in [
            "elapsed_s",
            "publish_elapsed_s",
            "consume_elapsed_s",
            "published",
            "confirmed",
            "nacked",
            "returned",
            "unconfirmed",
            "received",
            "foreign",
            "publish_rate",
            "confirm_rate",
            "receive_rate",
            "latency_us",
            "confirm_latency_us",
            "errors",
            "config",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["published"], 1000);
        assert_eq!(v["latency_us"]["p50"], 200);
        assert_eq!(v["latency_us"]["max"], 400);
        assert_eq!(v["latency_us"]["count"], 4);
        assert!(v["confirm_latency_us"].is_null());
        assert_eq!(v["config"]["queue_type"], "quorum");
        assert_eq!(v["config"]["durable"], true);
        assert_eq!(v["config"]["size"], 1024);
        assert_eq!(v["config"]["confirm"], 256);
    }

    #[test]
    fn text_and_progress() {
        let text = summary("256").to_text();
        assert!(text.contains("sent 1000 in 10.0s (100 msg/s)"), "{text}");
        assert!(
            text.contains("nacked 4, returned 1, unconfirmed 6"),
            "{text}"
        );
        assert!(text.contains("min 100 p50 200"), "{text}");
        assert!(text.contains("confirm latency (µs): n/a"), "{text}");
        let delta = CounterSnapshot {
            published: 500,
            confirmed: 250,
            received: 100,
            ..Default::default()
        };
        let p = Percentiles {
            count: 1,
            min: 7,
            mean: 7.0,
            p50: 7,
            p75: 7,
            p95: 7,
            p99: 9,
            max: 9,
        };
        let line = progress_line(3.0, &delta, 0.5, Some(&p));
        assert!(line.contains("sent     1000 msg/s"), "{line}");
        assert!(line.contains("confirmed      500 msg/s"), "{line}");
        assert!(line.contains("received      200 msg/s"), "{line}");
        assert!(line.ends_with("p50/p99 7/9 µs"), "{line}");
        let bad = CounterSnapshot {
            nacked: 2,
            returned: 1,
            ..Default::default()
        };
        let line = progress_line(1.0, &bad, 1.0, None);
        assert!(
            line.ends_with("latency p50/p99 -/- µs, nacked 2, returned 1"),
            "{line}"
        );
    }
}
