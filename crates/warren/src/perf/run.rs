//! The coordinator: sets up the queue, starts consumers then producers, decides
//! when each phase ends, and prints the summary.

use super::args::{Client, PerfArgs};
use super::consumer::{Consumer, ConsumerPlan};
use super::native;
use super::producer::{Producer, ProducerPlan};
use super::progress::{Output, Ticker};
use super::report::{RunConfig, Summary, Timings};
use super::stats::{Percentiles, Stats, unix_micros};
use super::topology::Topology;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often the drain phase checks whether consumers caught up.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// How long to wait for a stopped task before giving up on it.
const STOP_GRACE: Duration = Duration::from_secs(10);

type Task = (String, JoinHandle<anyhow::Result<()>>);

/// See [`super::run`].
pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    let summary = measure(&args).await?;
    if args.json {
        println!("{}", summary.to_json()?);
    } else {
        print!("{}", summary.to_text());
    }
    if !summary.errors.is_empty() {
        anyhow::bail!("{} producer(s)/consumer(s) failed", summary.errors.len());
    }
    Ok(())
}

/// Runs the load and returns its summary without printing it (progress lines
/// aside, per --no-progress). Failures of individual producers or consumers are
/// listed in [`Summary::errors`]; setup failures are returned as errors.
pub async fn measure(args: &PerfArgs) -> anyhow::Result<Summary> {
    args.validate().map_err(anyhow::Error::msg)?;
    let topology = Setup::declare(args).await?;
    let config = RunConfig::new(args, topology.queue(), topology.routing_key());
    let result = drive(args, &topology).await;
    // The queue is deleted even when the run failed half-way.
    let teardown = topology.teardown().await;
    let (timings, totals, latency, confirm_latency, mut errors) = result?;
    if let Err(e) = teardown {
        errors.push(format!("teardown: {e:#}"));
    }
    Ok(Summary::new(
        config,
        totals,
        timings,
        latency,
        confirm_latency,
        errors,
    ))
}

type Outcome = (
    Timings,
    super::stats::CounterSnapshot,
    Option<Percentiles>,
    Option<Percentiles>,
    Vec<String>,
);

async fn drive(args: &PerfArgs, topology: &Setup) -> anyhow::Result<Outcome> {
    let stats = Arc::new(Stats::new()?);
    let interrupted = watch_ctrl_c();
    let (stop_consumers, consumers_stop) = watch::channel(false);
    let consumers = start_consumers(args, topology, &stats, &consumers_stop).await?;
    // Connected before the clock starts, so -z and the rates cover publishing only.
    let producers = connect_producers(args, topology, &stats).await?;

    let start = Instant::now();
    let start_us = unix_micros();
    let deadline = args.time.map(|s| start + Duration::from_secs(s));
    let (ticker_done_tx, ticker_done) = watch::channel(false);
    let output = match (args.no_progress, args.json) {
        (true, _) => Output::Silent,
        (false, true) => Output::Stderr,
        (false, false) => Output::Stdout,
    };
    let ticker = tokio::spawn(Ticker::new(Arc::clone(&stats), start)?.run(ticker_done, output));

    let (stop_producers, producers_stop) = watch::channel(false);
    let producers: Vec<Task> = producers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("producer {i}"),
                tokio::spawn(p.run(producers_stop.clone())),
            )
        })
        .collect();
    let mut errors = Vec::new();
    let publish_elapsed;
    if producers.is_empty() {
        wait_consumers_or_stop(&consumers, deadline, interrupted.clone()).await;
        publish_elapsed = 0.0;
    } else {
        let stopper = stop_at(deadline, interrupted.clone(), stop_producers);
        errors.extend(join_all(producers, None).await);
        stopper.abort();
        publish_elapsed = start.elapsed().as_secs_f64();
        if !*interrupted.borrow() {
            drain(
                &stats,
                &consumers,
                Duration::from_secs(args.drain_timeout),
                interrupted,
            )
            .await;
        }
    }
    let _ = stop_consumers.send(true);
    errors.extend(join_all(consumers, Some(STOP_GRACE)).await);
    let elapsed = start.elapsed().as_secs_f64();
    let _ = ticker_done_tx.send(true);
    let totals = ticker.await?;
    let last = stats.last_delivery_us();
    let consume = if last > start_us {
        (last - start_us) as f64 / 1e6
    } else {
        0.0
    };
    let timings = Timings {
        elapsed,
        publish: publish_elapsed,
        consume,
    };
    Ok((
        timings,
        stats.counters.snapshot(),
        Percentiles::of(&totals.latency),
        Percentiles::of(&totals.confirm_latency),
        errors,
    ))
}

/// Subscribes every consumer before any producer starts, so none misses the
/// first messages (which would inflate their latency).
async fn start_consumers(
    args: &PerfArgs,
    topology: &Setup,
    stats: &Arc<Stats>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<Task>> {
    let plan = Arc::new(ConsumerPlan {
        queue: topology.queue().to_string(),
        qos: args.qos,
        auto_ack: args.auto_ack,
        multi_ack_every: u64::from(args.multi_ack_every),
        count: args.cmessages,
    });
    let mut tasks = Vec::new();
    for i in 0..args.consumers as usize {
        let (uri, plan, stats) = (args.consumer_uri(i), Arc::clone(&plan), Arc::clone(stats));
        let task = match args.client {
            Client::Lapin => tokio::spawn(
                Consumer::subscribe(uri, plan, stats)
                    .await?
                    .run(stop.clone()),
            ),
            Client::Native => {
                let consumer = native::Consumer::subscribe(uri, plan, stats).await?;
                tokio::spawn(consumer.run(stop.clone()))
            }
        };
        tasks.push((format!("consumer {i}"), task));
    }
    Ok(tasks)
}

/// The queue of the run, set up by the chosen client engine (boxed: sizes differ).
enum Setup {
    Lapin(Box<Topology>),
    Native(native::Topology),
}

impl Setup {
    async fn declare(args: &PerfArgs) -> anyhow::Result<Self> {
        Ok(match args.client {
            Client::Lapin => Setup::Lapin(Box::new(Topology::declare(args).await?)),
            Client::Native => Setup::Native(native::Topology::declare(args).await?),
        })
    }

    fn queue(&self) -> &str {
        match self {
            Setup::Lapin(t) => &t.queue,
            Setup::Native(t) => &t.queue,
        }
    }

    fn routing_key(&self) -> &str {
        match self {
            Setup::Lapin(t) => &t.routing_key,
            Setup::Native(t) => &t.routing_key,
        }
    }

    async fn teardown(self) -> anyhow::Result<()> {
        match self {
            Setup::Lapin(t) => t.teardown().await,
            Setup::Native(t) => t.teardown().await,
        }
    }
}

/// A connected producer of either client engine (boxed: both are large).
enum Connected {
    Lapin(Box<Producer>),
    Native(Box<native::Producer>),
}

impl Connected {
    async fn run(self, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        match self {
            Connected::Lapin(p) => p.run(stop).await,
            Connected::Native(p) => p.run(stop).await,
        }
    }
}

async fn connect_producers(
    args: &PerfArgs,
    topology: &Setup,
    stats: &Arc<Stats>,
) -> anyhow::Result<Vec<Connected>> {
    let plan = Arc::new(ProducerPlan {
        exchange: args.exchange.clone(),
        routing_key: topology.routing_key().to_string(),
        size: args.size as usize,
        window: args.confirm as usize,
        rate: args.rate,
        count: args.pmessages,
        persistent: args.is_persistent(),
        mandatory: args.is_mandatory(),
        confirm_grace: Duration::from_secs(args.drain_timeout),
    });
    let mut producers = Vec::new();
    for i in 0..args.producers as usize {
        let (uri, plan, stats) = (args.producer_uri(i), Arc::clone(&plan), Arc::clone(stats));
        producers.push(match args.client {
            Client::Lapin => Connected::Lapin(Box::new(Producer::connect(uri, plan, stats).await?)),
            Client::Native => {
                Connected::Native(Box::new(native::Producer::connect(uri, plan, stats).await?))
            }
        });
    }
    Ok(producers)
}

/// Tells producers to stop at the deadline or on Ctrl-C.
fn stop_at(
    deadline: Option<Instant>,
    mut interrupted: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = until_deadline => {}
            _ = interrupted.wait_for(|i| *i) => {}
        }
        let _ = stop.send(true);
    })
}

/// Consumer-only runs end at the deadline, on Ctrl-C, or when every consumer got its -D.
async fn wait_consumers_or_stop(
    consumers: &[Task],
    deadline: Option<Instant>,
    mut interrupted: watch::Receiver<bool>,
) {
    let all_done = async {
        while !consumers.iter().all(|(_, t)| t.is_finished()) {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = all_done => {}
        () = until_deadline => {}
        _ = interrupted.wait_for(|i| *i) => {}
    }
}

/// Lets consumers catch up with what was published (minus what the broker
/// returned or refused), giving up after `idle` without any delivery.
async fn drain(
    stats: &Stats,
    consumers: &[Task],
    idle: Duration,
    interrupted: watch::Receiver<bool>,
) {
    let idle_us = u64::try_from(idle.as_micros()).unwrap_or(u64::MAX);
    let drain_start = unix_micros();
    loop {
        let c = stats.counters.snapshot();
        let expected = c.published.saturating_sub(c.returned + c.nacked);
        let quiet_since = stats.last_delivery_us().max(drain_start);
        if c.received >= expected
            || consumers.iter().all(|(_, t)| t.is_finished())
            || unix_micros().saturating_sub(quiet_since) > idle_us
            || *interrupted.borrow()
        {
            return;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Awaits tasks and returns one line per failure; `grace` bounds the wait for each.
async fn join_all(tasks: Vec<Task>, grace: Option<Duration>) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, mut handle) in tasks {
        let joined = match grace {
            Some(g) => match tokio::time::timeout(g, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    handle.abort();
                    errors.push(format!("{name}: did not stop within {g:?}"));
                    continue;
                }
            },
            None => handle.await,
        };
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{name}: {e:#}")),
            Err(e) => errors.push(format!("{name}: task failed: {e}")),
        }
    }
    errors
}

/// A flag that turns true on the first Ctrl-C, so every phase can end early and
/// still print what was measured; a second Ctrl-C exits at once (130, as shells
/// report SIGINT) for when the broker no longer answers at all.
fn watch_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    rx
}
