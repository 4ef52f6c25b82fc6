//! The `warren` binary as a child process, for tests that must kill the broker
//! with SIGKILL and start it again on the same data directory.
//!
//! The in-process broker of [`crate::start`] cannot be crashed: its state
//! lives in the test's own process. Here the broker is a separate process
//! that the test can `kill -9` at any moment and restart, so whatever it
//! promised (a publisher confirm, a declared durable queue) must already be
//! on disk.
//!
//! ```text
//!   WarrenProcess::start ──spawn──▶ warren serve --data-dir D --amqp-listen 127.0.0.1:0 …
//!        │  reads stdout until "warren listening: amqp=ADDR"
//!        │  (stdout and stderr keep being drained by tasks, so the child
//!        │   never blocks on a full pipe; stderr is echoed with a prefix)
//!   kill9() ── SIGKILL + wait        restart() ── same D, new port
//! ```
//!
//! The binary is `$WARREN_BIN`, else `warren` in the target directory the
//! test executable was built into (`target/<profile>/deps/x-…` →
//! `target/<profile>/warren`). Cargo does not rebuild it for `cargo test`:
//! build it first (`cargo build -p warren --bin warren`; `tests/run-all.sh`
//! builds every binary before testing), or the tests run an old broker.
//!
//! With `WARREN_TEST_BROKER` set the tests talk to an external broker that
//! this harness cannot kill, so [`WarrenProcess::start`] returns `None` and
//! the test skips.
//!
//! Tools for crash tests, at the end: [`publish_confirmed`] publishes with
//! confirms and records in a [`Ledger`] exactly which publishes were acked
//! before the broker died (a publish whose confirm never came is not
//! confirmed), and [`drain`] empties a queue after a restart and checks that
//! its acks were applied, so a later crash cannot bring those messages back.

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::{BROKER_ENV, consume, queue_counts, wait_ready};

/// Environment variable naming the `warren` binary to run.
pub const BIN_ENV: &str = "WARREN_BIN";

/// How long a start may take before the harness gives up. Generous: a
/// restart replays the log of a deep backlog on a shared, noisy machine.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// A `warren serve` child process and the data directory it keeps across
/// restarts. Dropping it kills the child.
pub struct WarrenProcess {
    // Declared first so that it is killed before the data dir is removed.
    child: Option<Child>,
    bin: PathBuf,
    data_dir: tempfile::TempDir,
    extra_args: Vec<OsString>,
    addr: SocketAddr,
    started_in: Duration,
    // Counts starts, so echoed stderr lines say which run they came from.
    run: u32,
}

impl WarrenProcess {
    /// Starts `warren serve` on a fresh data directory, or returns `None`
    /// (after printing why) when `WARREN_TEST_BROKER` names an external
    /// broker, which cannot be killed.
    pub async fn start(test: &str) -> anyhow::Result<Option<Self>> {
        Self::start_with(test, Vec::new()).await
    }

    /// [`start`](Self::start) with extra `serve` arguments (e.g.
    /// `--definitions FILE`), used for every restart until
    /// [`set_extra_args`](Self::set_extra_args) changes them.
    pub async fn start_with(test: &str, extra_args: Vec<OsString>) -> anyhow::Result<Option<Self>> {
        if let Ok(external) = std::env::var(BROKER_ENV) {
            eprintln!(
                "SKIPPED {test} against {external}: needs a broker it can kill -9 and restart"
            );
            return Ok(None);
        }
        let mut process = WarrenProcess {
            bin: warren_bin()?,
            data_dir: tempfile::tempdir().context("creating the data dir")?,
            extra_args,
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            started_in: Duration::ZERO,
            run: 0,
        };
        process.spawn().await?;
        Ok(Some(process))
    }

    /// The AMQP address of the current run.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data directory, the same for every run.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// From spawning the current run to its `warren listening` line.
    pub fn time_to_listening(&self) -> Duration {
        self.started_in
    }

    /// Replaces the extra `serve` arguments of later restarts.
    pub fn set_extra_args(&mut self, extra_args: Vec<OsString>) {
        self.extra_args = extra_args;
    }

    /// `amqp://guest:guest@addr/%2f` for the current run.
    pub fn uri(&self) -> String {
        self.uri_as("guest", "guest", "/")
    }

    /// A URI for another user and vhost (percent-encoded).
    pub fn uri_as(&self, user: &str, password: &str, vhost: &str) -> String {
        format!(
            "amqp://{}:{}@{}/{}",
            crate::encode(user),
            crate::encode(password),
            self.addr,
            crate::encode(vhost)
        )
    }

    /// Connects as guest to `/`.
    pub async fn connect(&self) -> anyhow::Result<lapin::Connection> {
        lapin::Connection::connect(&self.uri(), lapin::ConnectionProperties::default())
            .await
            .with_context(|| format!("connecting to warren at {}", self.addr))
    }

    /// SIGKILL (`kill -9`) and wait for the child to be gone. Returns its
    /// exit status; fails if the broker had already exited on its own,
    /// since then the test did not crash it, something else did.
    pub async fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("warren is not running")?;
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("warren (run {}) had already exited: {status}", self.run);
        }
        // tokio's kill() is SIGKILL followed by wait().
        child.kill().await.context("kill -9 warren")?;
        let status = child.wait().await.context("waiting for warren")?;
        Ok(status)
    }

    /// Pauses (`SIGSTOP`) or resumes (`SIGCONT`) the running broker: a
    /// gray failure, alive but silent.
    pub fn pause(&self, on: bool) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("warren is not running")?;
        let signal = if on { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// Starts the broker again on the same data directory (and a new
    /// ephemeral port); kills the current run first if there is one.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.kill9().await?;
        }
        self.spawn().await
    }

    /// Total bytes of the regular files under the data directory.
    pub fn data_dir_bytes(&self) -> anyhow::Result<u64> {
        dir_bytes(self.data_dir.path())
    }

    /// The `n` largest files of the data directory (relative paths and
    /// bytes), largest first: what to look at when it does not shrink.
    pub fn largest_files(&self, n: usize) -> anyhow::Result<Vec<(PathBuf, u64)>> {
        let root = self.data_dir.path();
        let mut files = Vec::new();
        list_files(root, &mut files)?;
        files.sort_by_key(|(_, len)| std::cmp::Reverse(*len));
        files.truncate(n);
        Ok(files
            .into_iter()
            .map(|(p, len)| {
                (
                    p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p),
                    len,
                )
            })
            .collect())
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.run += 1;
        let run = self.run;
        let any = "127.0.0.1:0";
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--amqp-listen", any, "--http-listen", any]);
        if !self.extra_args.iter().any(|a| a == "--cluster-listen") {
            command.args(["--cluster-listen", any]);
        }
        command
            .args(&self.extra_args)
            // openraft's info lines (every group's election) drown the
            // broker's own; WARREN_LOG set for the test still wins.
            .env(
                "WARREN_LOG",
                std::env::var("WARREN_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let began = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr = child.stderr.take().context("child stderr")?;
        let (found_tx, found_rx) = oneshot::channel();
        tokio::spawn(drain_stdout(stdout, run, found_tx));
        tokio::spawn(echo(stderr, format!("[warren#{run}]")));
        let found = tokio::time::timeout(STARTUP_TIMEOUT, found_rx).await;
        let addr = match found {
            Ok(Ok(addr)) => addr,
            // stdout closed without the line: the broker exited (or closed
            // its stdout); its stderr, echoed above, says why.
            Ok(Err(_)) => {
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                anyhow::bail!("warren (run {run}) exited before listening: {status:?}");
            }
            Err(_) => {
                let _ = child.kill().await;
                anyhow::bail!("warren (run {run}) not listening after {STARTUP_TIMEOUT:?}");
            }
        };
        self.started_in = began.elapsed();
        self.addr = addr;
        self.child = Some(child);
        eprintln!(
            "warren run {run} listening on {addr} after {:?} (data dir {})",
            self.started_in,
            self.data_dir.path().display()
        );
        Ok(())
    }
}

impl Drop for WarrenProcess {
    fn drop(&mut self) {
        // SIGKILL before the fields drop, so the broker is going away
        // before its data dir is removed under it.
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The `warren` binary: `$WARREN_BIN`, else next to the test executable's
/// `deps` directory.
pub fn warren_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not in target/<profile>/deps")?;
    let bin = profile_dir.join("warren");
    anyhow::ensure!(
        bin.is_file(),
        "{} does not exist: build it with `cargo build -p warren --bin warren` \
         (same CARGO_TARGET_DIR and profile) or set {BIN_ENV}",
        bin.display()
    );
    Ok(bin)
}

/// Reads stdout to the end: reports the address of the first
/// `warren listening: … amqp=ADDR …` line, echoes every other line.
async fn drain_stdout(
    stdout: impl AsyncRead + Unpin,
    run: u32,
    found: oneshot::Sender<SocketAddr>,
) {
    let mut found = Some(found);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = listening_addr(&line)
            && let Some(tx) = found.take()
        {
            let _ = tx.send(addr);
            continue;
        }
        eprintln!("[warren#{run} stdout] {line}");
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("warren listening:")?;
    rest.split_whitespace()
        .find_map(|field| field.strip_prefix("amqp="))
        .and_then(|addr| addr.parse().ok())
}

async fn echo(stream: impl AsyncRead + Unpin, prefix: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{prefix} {line}");
    }
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut files = Vec::new();
    list_files(dir, &mut files)?;
    Ok(files.iter().map(|(_, len)| len).sum())
}

/// Every regular file under `dir` with its length.
fn list_files(dir: &Path, files: &mut Vec<(PathBuf, u64)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), files)?;
        } else if kind.is_file() {
            // A file may vanish between listing and stat (compaction).
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            files.push((entry.path(), len));
        }
    }
    Ok(())
}

/// Like [`crate::with_timeout`] with a limit of the caller's choosing, for
/// tests that move a lot of data or restart the broker several times.
pub async fn with_limit<F>(limit: Duration, body: F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::time::timeout(limit, body)
        .await
        .map_err(|_| anyhow::anyhow!("test timed out after {limit:?}"))?
}

// ------------------------------------------------------ crash-test tools

/// Outstanding (unconfirmed) publishes per publisher.
pub const WINDOW: usize = 256;

/// A consumer that saw nothing for this long, on a queue with nothing
/// ready, has drained it.
pub const DRAIN_QUIET: Duration = Duration::from_secs(2);

/// What became of each publish, indexed by its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the client; no ack or nack arrived (yet).
    Unconfirmed,
    Acked,
    Nacked,
}

/// The fate of every publish of one [`publish_confirmed`] run.
#[derive(Default)]
pub struct Ledger {
    pub outcomes: Vec<Outcome>,
    pub acked: usize,
    pub nacked: usize,
}

/// A [`Ledger`] shared between a publisher task and the test watching it.
#[derive(Clone, Default)]
pub struct SharedLedger(Arc<Mutex<Ledger>>);

impl SharedLedger {
    pub fn lock(&self) -> MutexGuard<'_, Ledger> {
        // A poisoned ledger only means another assertion already failed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Properties of a persistent message (delivery_mode 2).
pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// `{tag}-{seq}|` padded to `len` bytes with noise, which no storage
/// engine can compress away (the size checks count real bytes).
pub fn body_of(tag: &str, seq: u64, len: usize) -> Vec<u8> {
    let mut body = format!("{tag}-{seq:09}|").into_bytes();
    // xorshift64*, seeded by the sequence number.
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while body.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = word.len().min(len - body.len());
        body.extend_from_slice(&word[..take]);
    }
    body
}

/// The sequence number of a body made by [`body_of`] with `tag`.
pub fn seq_of(tag: &str, body: &[u8]) -> Option<u64> {
    let end = body.iter().position(|b| *b == b'|')?;
    let text = std::str::from_utf8(&body[..end]).ok()?;
    text.strip_prefix(tag)?.strip_prefix('-')?.parse().ok()
}

/// Publishes persistent messages made by [`body_of`] to `queue` through the
/// default exchange, with confirms and at most [`WINDOW`] outstanding, until
/// `limit` are published or the connection fails. Every outcome goes to
/// `ledger` as it arrives; returns what stopped it early, if anything.
pub async fn publish_confirmed(
    ch: Channel,
    queue: String,
    tag: String,
    body_len: usize,
    limit: u64,
    ledger: SharedLedger,
) -> anyhow::Result<()> {
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut inflight = FuturesUnordered::new();
    let mut stopped = Ok(());
    'publish: for seq in 0..limit {
        ledger.lock().outcomes.push(Outcome::Unconfirmed);
        let body = body_of(&tag, seq, body_len);
        let options = BasicPublishOptions::default();
        let route: ShortString = queue.as_str().into();
        match ch
            .basic_publish("".into(), route, options, &body, persistent())
            .await
        {
            Ok(confirm) => inflight.push(async move { (seq, confirm.await) }),
            Err(e) => {
                stopped = Err(anyhow::Error::from(e).context(format!("publishing #{seq}")));
                break;
            }
        }
        while inflight.len() >= WINDOW {
            let Some((seq, confirmation)) = inflight.next().await else {
                break;
            };
            if let Err(e) = settle(&ledger, seq, confirmation) {
                stopped = Err(e);
                break 'publish;
            }
        }
    }
    // Confirms that arrived before a failure still count: collect them all.
    while let Some((seq, confirmation)) = inflight.next().await {
        if let Err(e) = settle(&ledger, seq, confirmation)
            && stopped.is_ok()
        {
            stopped = Err(e);
        }
    }
    stopped
}

fn settle(
    ledger: &SharedLedger,
    seq: u64,
    confirmation: lapin::Result<Confirmation>,
) -> anyhow::Result<()> {
    let outcome = match confirmation? {
        Confirmation::Ack(None) => Outcome::Acked,
        Confirmation::Nack(_) => Outcome::Nacked,
        other => anyhow::bail!("unexpected confirmation of #{seq}: {other:?}"),
    };
    let mut ledger = ledger.lock();
    let slot = usize::try_from(seq)?;
    anyhow::ensure!(
        ledger.outcomes[slot] == Outcome::Unconfirmed,
        "#{seq} confirmed twice"
    );
    ledger.outcomes[slot] = outcome;
    match outcome {
        Outcome::Acked => ledger.acked += 1,
        _ => ledger.nacked += 1,
    }
    Ok(())
}

pub async fn declare_durable(ch: &Channel, queue: &str, args: FieldTable) -> lapin::Result<u32> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let q = ch.queue_declare(queue.into(), options, args).await?;
    Ok(q.message_count())
}

pub fn text_arg(key: &str, value: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(key.into(), AMQPValue::LongString(value.into()));
    t
}

/// Consumes `queue` with manual acks until a quiet spell finds nothing
/// ready; returns how many were ready at the start and the deliveries in
/// order. It then closes the channel and checks that nothing came back to
/// the queue, i.e. every ack was applied before the next crash.
pub async fn drain(conn: &Connection, queue: &str) -> anyhow::Result<(u32, Vec<Delivery>)> {
    let ch = conn.create_channel().await?;
    let (initial, _) = queue_counts(&ch, queue).await?;
    ch.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = consume(&ch, queue, BasicConsumeOptions::default()).await?;
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(DRAIN_QUIET, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                d.ack(BasicAckOptions::default()).await?;
                got.push(d);
            }
            Ok(Some(Err(e))) => anyhow::bail!("draining {queue}: {e}"),
            Ok(None) => anyhow::bail!("draining {queue}: the consumer ended"),
            Err(_) => {
                if queue_counts(&ch, queue).await?.0 == 0 {
                    break;
                }
            }
        }
    }
    ch.close(200, "drained".into()).await?;
    // A channel dropped unclosed is closed by lapin in the background, which
    // races with a connection.close right after: close it here.
    let check = conn.create_channel().await?;
    wait_ready(&check, queue, 0).await?;
    check.close(200, "checked".into()).await?;
    anyhow::ensure!(
        got.len() == usize::try_from(initial)?,
        "{queue} reported {initial} ready but {} were delivered",
        got.len()
    );
    Ok((initial, got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_amqp_address_of_the_listening_line() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 41234));
        assert_eq!(
            listening_addr("warren listening: amqp=127.0.0.1:41234"),
            Some(addr)
        );
        assert_eq!(
            listening_addr("warren listening: http=127.0.0.1:1 amqp=127.0.0.1:41234"),
            Some(addr)
        );
        assert_eq!(listening_addr("INFO amqp=127.0.0.1:41234"), None);
        assert_eq!(listening_addr("warren listening: amqp=nonsense"), None);
    }
}
