//! `warren perf`: the load generator built into the binary, in the spirit of
//! RabbitMQ's PerfTest. By default it drives a broker through lapin, an independent
//! client, so it measures Warren (or RabbitMQ) exactly as applications see it;
//! `--client native` swaps in perf's own much cheaper client ([`native`]) for when
//! lapin, not the broker, is the limit.
//!
//! ```text
//!  topology: declare queue ──► consumers subscribe ──► producers publish
//!                                   │                        │ stamp unix µs in body[0..8]
//!                                   ▼                        ▼ confirms (window)
//!                          Stats (atomics + per-second hdr histograms)
//!                                   │
//!                          ticker: one progress line per second
//!  stop: -z / -C / Ctrl-C ─► producers stop ─► consumers drain ─► summary ─► delete queue
//! ```
//!
//! Every task owns its connection; the only shared state is [`stats::Stats`], which
//! costs an atomic add and an uncontended lock per message, so perf stays cheaper
//! than the broker it measures.

mod args;
mod consumer;
mod native;
mod producer;
mod progress;
mod report;
mod run;
mod stats;
mod topology;

pub use args::{Client, MessageFlag, PerfArgs, QueueType};
pub use report::{RunConfig, Summary};
pub use stats::Percentiles;

/// Runs the load generator until its duration or message count is reached (or
/// Ctrl-C), prints the summary, and fails if a producer or consumer failed.
pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    run::run(args).await
}

pub use run::measure;

#[cfg(test)]
mod tests;
