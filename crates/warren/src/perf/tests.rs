//! End-to-end runs of perf: against an in-process Warren (always), and against
//! RabbitMQ when one is reachable (ignored by default; `cargo test -- --ignored`).

use super::{PerfArgs, Summary, measure};
use crate::serve::{ServeArgs, start};
use clap::Parser;

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

fn perf_args(uri: &str, extra: &[&str]) -> PerfArgs {
    let argv = [
        "perf",
        "--uri",
        uri,
        "--no-progress",
        "--drain-timeout",
        "3",
    ];
    PerfCli::try_parse_from(argv.iter().chain(extra))
        .unwrap()
        .args
}

/// Every message published was confirmed, delivered once and timed.
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
async fn counts_every_message_against_in_process_warren() {
    let dir = std::env::temp_dir().join(format!("warren-perf-test-{}", std::process::id()));
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

    let plain = measure(&perf_args(&uri, &["-x2", "-y2", "-s100", "-q50", "-C500"]))
        .await
        .unwrap();
    assert_complete(&plain, 1000, false);

    let confirmed = measure(&perf_args(
        &uri,
        &["-s1024", "-q20", "-A5", "-c32", "-C1000"],
    ))
    .await
    .unwrap();
    assert_complete(&confirmed, 1000, true);

    running.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn rabbitmq_uri() -> String {
    std::env::var("WARREN_PERF_RABBITMQ_URI")
        .unwrap_or_else(|_| super::args::DEFAULT_URI.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at WARREN_PERF_RABBITMQ_URI (default 127.0.0.1:5672)"]
async fn quorum_persistent_with_confirms_against_rabbitmq() {
    let args = perf_args(
        &rabbitmq_uri(),
        &[
            "-s1024",
            "-q100",
            "-c64",
            "-C2000",
            "--queue-type",
            "quorum",
            "-f",
            "persistent",
        ],
    );
    let s = measure(&args).await.unwrap();
    assert_complete(&s, 2000, true);
    assert!(s.config.durable && s.config.persistent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at WARREN_PERF_RABBITMQ_URI (default 127.0.0.1:5672)"]
async fn fixed_rate_and_time_limit_against_rabbitmq() {
    let s = measure(&perf_args(
        &rabbitmq_uri(),
        &["-r", "200", "-z", "2", "-c", "10"],
    ))
    .await
    .unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // 2 s at 200 msg/s: the first message goes at t=0, so 400 or 401.
    assert!(
        (395..=405).contains(&s.published),
        "published {}",
        s.published
    );
    assert_eq!(s.received, s.published);
    assert_eq!(s.confirmed, s.published);
}
