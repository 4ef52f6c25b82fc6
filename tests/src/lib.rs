//! warren-e2e: the harness for end-to-end tests with real clients.
//!
//! Every test calls [`start`] and gets a [`TestBroker`]: by default a Warren
//! broker started in-process on ephemeral ports with its own temporary data
//! directory; when `WARREN_TEST_BROKER=host:port` is set, an already running
//! broker at that address (this is how the tests are validated against a real
//! RabbitMQ, so they encode RabbitMQ's behaviour rather than Warren's).
//!
//! Because an external broker is shared by all tests, every test names its
//! exchanges and queues with [`unique`]. Nothing here sleeps for a guessed
//! time: waits poll a condition until a deadline ([`wait_until`]) and every
//! test body runs under [`with_timeout`].
//!
//! Run: `cargo test -p warren-e2e` (in-process Warren), or
//! `WARREN_TEST_BROKER=127.0.0.1:5672 cargo test -p warren-e2e` (a real
//! RabbitMQ with guest/guest). Fixtures are read from `WARREN_SHARED_DIR`,
//! else `../../shared` relative to this package.
//!
//! - [`raw`]: a hand-written AMQP frame client for the bad-input tests; it does
//!   not use warren-codec so that it checks the server independently.

pub mod cluster;
pub mod process;
pub mod raw;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures::StreamExt as _;
use lapin::message::Delivery;
use lapin::{Connection, ConnectionProperties, Consumer};

/// Environment variable naming an external broker (`host:port`) to test instead
/// of an in-process Warren.
pub const BROKER_ENV: &str = "WARREN_TEST_BROKER";

/// Upper bound for one whole test; generous because the machine is shared.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a single expected event (a delivery, a close) may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker under test and how to reach it.
pub struct TestBroker {
    addr: SocketAddr,
    external: bool,
    // Held so the in-process broker and its data outlive the test body;
    // shut down on drop so its listener stops with the test.
    running: Option<warren::serve::Running>,
    _data_dir: Option<tempfile::TempDir>,
}

/// Starts (or connects to) the broker for one test; panics with the reason
/// when that is impossible, since no test can run without it.
pub async fn start() -> TestBroker {
    match try_start(None).await {
        Ok(broker) => broker,
        Err(e) => panic!("cannot start the broker under test: {e:#}"),
    }
}

/// Like [`start`], but an in-process Warren first loads a RabbitMQ
/// definitions export. With an external broker the file is ignored (the
/// caller should have skipped, see [`TestBroker::skip_if_external`]).
pub async fn start_with_definitions(path: &Path) -> TestBroker {
    match try_start(Some(path.to_path_buf())).await {
        Ok(broker) => broker,
        Err(e) => panic!("cannot start the broker under test: {e:#}"),
    }
}

/// The fallible form of [`start`] / [`start_with_definitions`].
pub async fn try_start(definitions: Option<PathBuf>) -> anyhow::Result<TestBroker> {
    try_start_with(definitions, None).await
}

/// An in-process Warren whose memory alarm blocks publishers once queues
/// hold more than `watermark` bytes (panics on failure, like [`start`]).
pub async fn start_with_memory_watermark(watermark: u64) -> TestBroker {
    match try_start_with(None, Some(watermark)).await {
        Ok(broker) => broker,
        Err(e) => panic!("cannot start the broker under test: {e:#}"),
    }
}

/// An in-process Warren that blocks publishers while its data directory's
/// disk has less than `limit` bytes free (panics on failure, like [`start`]).
pub async fn start_with_disk_free_limit(limit: u64) -> TestBroker {
    match try_start_limits(None, None, limit).await {
        Ok(broker) => broker,
        Err(e) => panic!("cannot start the broker under test: {e:#}"),
    }
}

/// [`try_start`] with a memory high watermark for the in-process broker.
pub async fn try_start_with(
    definitions: Option<PathBuf>,
    memory_high_watermark: Option<u64>,
) -> anyhow::Result<TestBroker> {
    try_start_limits(
        definitions,
        memory_high_watermark,
        warren::serve::DEFAULT_DISK_FREE_LIMIT,
    )
    .await
}

async fn try_start_limits(
    definitions: Option<PathBuf>,
    memory_high_watermark: Option<u64>,
    disk_free_limit: u64,
) -> anyhow::Result<TestBroker> {
    if let Ok(external) = std::env::var(BROKER_ENV) {
        let addr = tokio::net::lookup_host(external.as_str())
            .await
            .with_context(|| format!("{BROKER_ENV}={external}"))?
            .next()
            .with_context(|| format!("{BROKER_ENV}={external} resolves to nothing"))?;
        return Ok(TestBroker {
            addr,
            external: true,
            running: None,
            _data_dir: None,
        });
    }
    let data_dir = tempfile::tempdir().context("creating the data dir")?;
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let args = warren::serve::ServeArgs {
        data_dir: data_dir.path().to_path_buf(),
        amqp_listen: any,
        http_listen: any,
        cluster_listen: any,
        node_id: 1,
        peers: None,
        replace_replicas_after: 120,
        rebalance_every: 15,
        release_readers_after: 300,
        advertise: None,
        definitions,
        memory_high_watermark,
        disk_free_limit,
        loopback_users: vec!["guest".into()],
    };
    let running = warren::serve::start(args)
        .await
        .context("warren::serve::start")?;
    Ok(TestBroker {
        addr: running.amqp_addr,
        external: false,
        running: Some(running),
        _data_dir: Some(data_dir),
    })
}

impl TestBroker {
    /// The AMQP listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True when testing a broker named by `WARREN_TEST_BROKER`.
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// For Warren-only tests: prints why and returns true when the broker is
    /// external, so the test can return early.
    pub fn skip_if_external(&self, reason: &str) -> bool {
        if self.external {
            eprintln!("SKIPPED against {}: {reason}", self.addr);
        }
        self.external
    }

    /// `amqp://guest:guest@addr/%2f`.
    pub fn uri(&self) -> String {
        self.uri_as("guest", "guest", "/")
    }

    /// A URI for another user and vhost (the vhost is percent-encoded).
    pub fn uri_as(&self, user: &str, password: &str, vhost: &str) -> String {
        format!(
            "amqp://{}:{}@{}/{}",
            encode(user),
            encode(password),
            self.addr,
            encode(vhost)
        )
    }

    /// Connects as guest to `/`; panics if the broker refuses.
    pub async fn connect(&self) -> Connection {
        match self.try_connect(&self.uri()).await {
            Ok(conn) => conn,
            Err(e) => panic!("connecting to {}: {e}", self.addr),
        }
    }

    /// Connects with any URI and returns lapin's error unchanged, for tests
    /// of refused connections.
    pub async fn try_connect(&self, uri: &str) -> lapin::Result<Connection> {
        Connection::connect(uri, ConnectionProperties::default()).await
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
    }
}

/// Percent-encodes a URI component (user, password, vhost).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name no other test (or earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn with_timeout<F>(body: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .map_err(|_| anyhow::anyhow!("test timed out after {TEST_TIMEOUT:?}"))?
}

/// Polls `check` until it yields `Some`, or fails after `limit`.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("gave up after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The AMQP reply code and text carried by a lapin error, if it is one.
pub fn amqp_error(err: &lapin::Error) -> Option<(u16, String)> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some((e.get_id(), e.get_message().to_string())),
        _ => None,
    }
}

/// Asserts that `result` failed with AMQP reply `code` and a reply text that
/// starts with `text_prefix`; returns the full reply text.
pub fn expect_code<T: std::fmt::Debug>(
    result: lapin::Result<T>,
    code: u16,
    text_prefix: &str,
) -> anyhow::Result<String> {
    match result {
        Ok(v) => anyhow::bail!("expected AMQP error {code} {text_prefix:?}, got Ok({v:?})"),
        Err(e) => match amqp_error(&e) {
            Some((got, text)) => {
                anyhow::ensure!(
                    got == code && text.starts_with(text_prefix),
                    "expected {code} {text_prefix:?}…, got {got} {text:?}"
                );
                Ok(text)
            }
            None => anyhow::bail!("expected AMQP error {code}, got non-AMQP error {e:?}"),
        },
    }
}

/// The next delivery of `consumer`, failing on timeout, error or cancel.
pub async fn next_delivery(consumer: &mut Consumer) -> anyhow::Result<Delivery> {
    match tokio::time::timeout(EVENT_TIMEOUT, consumer.next()).await {
        Err(_) => anyhow::bail!("no delivery within {EVENT_TIMEOUT:?}"),
        Ok(None) => anyhow::bail!("consumer stream ended"),
        Ok(Some(Err(e))) => anyhow::bail!("consumer error: {e}"),
        Ok(Some(Ok(d))) => Ok(d),
    }
}

/// Asserts the consumer has nothing more within `window`. Only for checking
/// an absence after the broker's state was observed to have settled (e.g. a
/// queue's message count), never as a substitute for waiting on an event.
pub async fn expect_no_delivery(consumer: &mut Consumer, window: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(window, consumer.next()).await {
        Err(_) => Ok(()),
        Ok(None) => anyhow::bail!("consumer stream ended unexpectedly"),
        Ok(Some(Err(e))) => anyhow::bail!("consumer error: {e}"),
        Ok(Some(Ok(d))) => anyhow::bail!(
            "unexpected delivery tag {} body {:?}",
            d.delivery_tag,
            String::from_utf8_lossy(&d.data)
        ),
    }
}

/// The shared fixtures directory: `$WARREN_SHARED_DIR`, else
/// `<tests>/../../shared`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("WARREN_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Path of a fixture file; fails clearly when it is missing.
pub fn fixture(name: &str) -> anyhow::Result<PathBuf> {
    let path = shared_dir().join("fixtures").join(name);
    anyhow::ensure!(
        path.is_file(),
        "fixture {} is missing (set WARREN_SHARED_DIR to the shared directory)",
        path.display()
    );
    Ok(path)
}

/// Puts a consumer on a fresh exclusive queue of `channel`. lapin hands the
/// error of a server-sent `channel.close` to every consumer of the channel,
/// so this is how a test learns the reply code of an asynchronous failure
/// (a bad publish or ack has no reply of its own), without racing the close.
pub async fn watch_channel(channel: &lapin::Channel) -> anyhow::Result<Consumer> {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let q = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    Ok(channel
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await?)
}

/// Waits until the channel watched by `watcher` is closed by the server and
/// checks the reply code and reply-text prefix; returns the reply text.
pub async fn expect_channel_closed(
    watcher: &mut Consumer,
    code: u16,
    text_prefix: &str,
) -> anyhow::Result<String> {
    match tokio::time::timeout(EVENT_TIMEOUT, watcher.next()).await {
        Err(_) => anyhow::bail!("channel not closed within {EVENT_TIMEOUT:?} (wanted {code})"),
        Ok(None) => anyhow::bail!("channel ended without an error (wanted {code})"),
        Ok(Some(Ok(d))) => anyhow::bail!("watcher got an unexpected delivery {d:?}"),
        Ok(Some(Err(e))) => expect_code::<()>(Err(e), code, text_prefix),
    }
}

/// Publishes `body` with default properties and no flags.
pub async fn publish(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
) -> lapin::Result<lapin::PublisherConfirm> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
        .await
}

/// Declares a plain (non-durable, non-exclusive, non-auto-delete) queue.
pub async fn declare_queue(channel: &lapin::Channel, name: &str) -> lapin::Result<lapin::Queue> {
    channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
}

/// `(ready messages, consumers)` of a queue, by passive declare.
pub async fn queue_counts(channel: &lapin::Channel, name: &str) -> lapin::Result<(u32, u32)> {
    let q = channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions::default().passive(),
            lapin::types::FieldTable::default(),
        )
        .await?;
    Ok((q.message_count(), q.consumer_count()))
}

/// Polls until the queue holds exactly `ready` messages ready for delivery.
pub async fn wait_ready(channel: &lapin::Channel, name: &str, ready: u32) -> anyhow::Result<()> {
    wait_until(
        EVENT_TIMEOUT,
        &format!("{ready} ready in {name}"),
        || async {
            let (n, _) = queue_counts(channel, name).await?;
            Ok((n == ready).then_some(()))
        },
    )
    .await
}

/// Everything `queue` received before a marker published to it through the
/// default exchange now, in order, consuming it all with `basic.get`.
/// Messages routed earlier on the same channel are ahead of the marker, so
/// this observes "nothing else was routed here" without waiting for a
/// guessed time.
pub async fn drain_until_marker(
    channel: &lapin::Channel,
    queue: &str,
) -> anyhow::Result<Vec<String>> {
    let marker = unique("marker");
    publish(channel, "", queue, marker.as_bytes()).await?;
    let mut bodies = Vec::new();
    loop {
        let got = wait_until(EVENT_TIMEOUT, &format!("marker in {queue}"), || async {
            Ok(channel
                .basic_get(
                    queue.into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await?)
        })
        .await?;
        let body = String::from_utf8_lossy(&got.delivery.data).into_owned();
        if body == marker {
            return Ok(bodies);
        }
        bodies.push(body);
    }
}

/// Long enough for a delivery that was going to happen to have happened;
/// used with [`expect_no_delivery`] only after the queue's counts show the
/// broker has settled.
pub const QUIET: Duration = Duration::from_millis(300);

/// `basic.consume` with a server-chosen tag and no arguments.
pub async fn consume(
    channel: &lapin::Channel,
    queue: &str,
    options: lapin::options::BasicConsumeOptions,
) -> lapin::Result<Consumer> {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            options,
            lapin::types::FieldTable::default(),
        )
        .await
}

/// Publishes `m0`..`m{n-1}` to `queue` and waits until all are ready.
pub async fn fill_queue(channel: &lapin::Channel, queue: &str, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        publish(channel, "", queue, format!("m{i}").as_bytes()).await?;
    }
    wait_ready(channel, queue, u32::try_from(n)?).await
}

/// A delivery's body as text.
pub fn body_text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.data).into_owned()
}
