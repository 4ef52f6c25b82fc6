//! End-to-end runs of perf with `--client native` against an in-process Warren:
//! the same scenarios as the lapin engine's tests, with the same exact counts.

use super::Producer;
use crate::perf::producer::ProducerPlan;
use crate::perf::stats::Stats;
use crate::perf::{PerfArgs, Summary, measure};
use crate::serve::{Running, ServeArgs, start};
use clap::Parser;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
struct PerfCli {
    #[command(flatten)]
    args: PerfArgs,
}

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    args: ServeArgs,
}

/// A broker on 127.0.0.1:0 with its own data dir, removed on drop.
struct Broker {
    running: Option<Running>,
    dir: String,
    uri: String,
}

impl Broker {
    async fn start(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("warren-perf-native-{name}-{}", std::process::id()));
        let dir = dir.to_string_lossy().into_owned();
        let serve = ServeCli::try_parse_from([
            "serve",
            "--data-dir",
            &dir,
            "--amqp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--cluster-listen",
            "127.0.0.1:0",
        ])
        .unwrap()
        .args;
        let running = start(serve).await.unwrap();
        let uri = format!("amqp://guest:guest@{}/%2f", running.amqp_addr);
        Self {
            running: Some(running),
            dir,
            uri,
        }
    }

    async fn perf(&self, extra: &[&str]) -> Summary {
        let argv = [
            "perf",
            "--uri",
            &self.uri,
            "--client",
            "native",
            "--no-progress",
            "--drain-timeout",
            "3",
        ];
        let args = PerfCli::try_parse_from(argv.iter().chain(extra))
            .unwrap()
            .args;
        measure(&args).await.unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every message published was confirmed (if asked), delivered once and timed.
fn assert_complete(s: &Summary, expected: u64, confirms: bool) {
    assert!(s.errors.is_empty(), "errors: {:?}", s.errors);
    assert_eq!(s.published, expected);
    assert_eq!(s.received, expected);
    assert_eq!(
        (s.nacked, s.returned, s.unconfirmed, s.foreign),
        (0, 0, 0, 0)
    );
    assert_eq!(s.confirmed, if confirms { expected } else { 0 });
    let latency = s.latency_us.as_ref().unwrap();
    assert_eq!(latency.count, expected);
    assert!(latency.min <= latency.p50 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    match &s.confirm_latency_us {
        Some(c) => assert!(confirms && c.count == expected),
        None => assert!(!confirms),
    }
    assert!(s.publish_rate > 0.0 && s.receive_rate > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_two_consumers_without_confirms() {
    let broker = Broker::start("plain").await;
    let s = broker.perf(&["-x2", "-y2", "-s100", "-q50", "-C500"]).await;
    assert_complete(&s, 1000, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_and_multi_ack() {
    let broker = Broker::start("confirms").await;
    let s = broker
        .perf(&["-s1024", "-q20", "-A5", "-c32", "-C1000"])
        .await;
    assert_complete(&s, 1000, true);
    // Through an exchange: the native topology binds the queue with the key.
    let s = broker
        .perf(&[
            "-x2",
            "-c16",
            "-C150",
            "-e",
            "amq.direct",
            "-k",
            "rk",
            "-f",
            "mandatory",
        ])
        .await;
    assert_complete(&s, 300, true);
    assert_eq!(s.config.exchange, "amq.direct");
    // A durable quorum queue with persistent messages, as row C of BENCHMARKS.md.
    let s = broker
        .perf(&[
            "-c16",
            "-C200",
            "--queue-type",
            "quorum",
            "-f",
            "persistent",
        ])
        .await;
    assert_complete(&s, 200, true);
    assert!(s.config.durable && s.config.persistent);
    // A window of 1 forces a confirm round trip per message.
    let s = broker.perf(&["-s20", "-q10", "-c1", "-C300"]).await;
    assert_complete(&s, 300, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ack_and_bodies_larger_than_frame_max() {
    let broker = Broker::start("autoack").await;
    let s = broker.perf(&["--auto-ack", "-s64", "-C2000"]).await;
    assert_complete(&s, 2000, false);
    assert!(s.config.auto_ack);
    // 300 KB bodies span several body frames at any frame_max a broker offers.
    let s = broker
        .perf(&["-s300000", "-q5", "-c8", "-C40", "-f", "persistent"])
        .await;
    assert_complete(&s, 40, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_and_time_limit() {
    let broker = Broker::start("rate").await;
    let s = broker.perf(&["-r", "200", "-z", "2", "-c", "10"]).await;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // 2 s at 200 msg/s: the first message goes at t=0, so 400 or 401.
    assert!(
        (395..=405).contains(&s.published),
        "published {}",
        s.published
    );
    assert_eq!(s.received, s.published);
    assert_eq!(s.confirmed, s.published);
    assert!(s.publish_elapsed_s >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_is_an_error_not_a_hang() {
    let broker = Broker::start("login").await;
    let bad = broker.uri.replace("guest:guest", "guest:wrong");
    let plan = Arc::new(ProducerPlan {
        exchange: String::new(),
        routing_key: "q".into(),
        size: 8,
        window: 0,
        rate: 0.0,
        count: Some(1),
        persistent: false,
        mandatory: false,
        confirm_grace: Duration::from_secs(1),
    });
    let stats = Arc::new(Stats::new().unwrap());
    let connect = Producer::connect(&bad, plan, stats);
    let result = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("login must fail fast");
    assert!(result.is_err());
    let missing = broker.uri.replace("%2f", "no-such-vhost");
    let plan = Arc::new(ProducerPlan {
        exchange: String::new(),
        routing_key: "q".into(),
        size: 8,
        window: 1,
        rate: 0.0,
        count: Some(1),
        persistent: false,
        mandatory: false,
        confirm_grace: Duration::from_secs(1),
    });
    let connect = Producer::connect(&missing, plan, Arc::new(Stats::new().unwrap()));
    let result = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("a missing vhost must fail fast");
    assert!(result.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_mandatory_publishes_are_returned_and_confirmed() {
    let broker = Broker::start("returns").await;
    let plan = Arc::new(ProducerPlan {
        exchange: "amq.direct".into(),
        routing_key: "bound-to-nothing".into(),
        size: 2000,
        window: 8,
        rate: 0.0,
        count: Some(50),
        persistent: false,
        mandatory: true,
        confirm_grace: Duration::from_secs(5),
    });
    let stats = Arc::new(Stats::new().unwrap());
    let producer = Producer::connect(&broker.uri, plan, Arc::clone(&stats))
        .await
        .unwrap();
    let (_keep, stop) = tokio::sync::watch::channel(false);
    producer.run(stop).await.unwrap();
    let c = stats.counters.snapshot();
    assert_eq!(
        (c.published, c.returned, c.confirmed, c.nacked),
        (50, 50, 50, 0)
    );
}
