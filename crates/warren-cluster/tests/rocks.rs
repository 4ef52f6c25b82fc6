//! The node on RocksDB: a restart (drop, reopen the same directory) brings
//! back metadata and queues from snapshot + log; and kill -9 in the middle
//! of a stream of enqueues loses no acknowledged message.
//!
//! The kill -9 test re-runs this test binary as a child process (selected by
//! `WARREN_KILL9_DIR`) that enqueues and prints each acknowledged index.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_cluster::Node;
use warren_core::message::Message;
use warren_core::meta::{MetaCommand, MetaReply, QueueDef};
use warren_core::queue::{Command, OwnerId, QueueConfig, Reply};
use warren_core::value::Table;
use warren_storage::RocksStore;

const GROUP: u64 = 1;
const CHILD_ENV: &str = "WARREN_KILL9_DIR";

fn msg(n: u64) -> Message {
    Message {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::new(),
        body: Bytes::from(format!("m{n}")),
        persistent: true,
        priority: 0,
        expiration_ms: None,
    }
}

fn enqueue(n: u64) -> Command<Message> {
    let m = msg(n);
    Command::Enqueue {
        size: m.size(),
        msg: m,
        expiration_ms: None,
        priority: 0,
    }
}

/// Every message body the queue holds, draining it.
async fn drain(node: &Node<RocksStore>) -> anyhow::Result<Vec<Bytes>> {
    let q = node
        .queue(GROUP)
        .ok_or_else(|| anyhow::anyhow!("queue missing"))?;
    let mut out = Vec::new();
    loop {
        let get = Command::Get {
            owner: OwnerId(1),
            no_ack: true,
        };
        match q.apply(get).await?.0 {
            Reply::GetOk { msg, .. } => out.push(q.body(msg).await?.body),
            Reply::GetEmpty => return Ok(out),
            other => anyhow::bail!("unexpected reply {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_rocksdb_keeps_metadata_and_messages() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let node = Node::open(dir.path(), 1).await?;
        let def = QueueDef {
            name: "q".into(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: Table::new(),
            home: None,
        };
        let declare = MetaCommand::DeclareQueue {
            vhost: "/".into(),
            def,
        };
        assert_eq!(node.meta_apply(declare).await?, Ok(MetaReply::Created));
        let q = node
            .create_queue(GROUP, "/", "q", QueueConfig::default())
            .await?;
        for n in 0..50 {
            q.apply(enqueue(n)).await?;
        }
        q.snapshot().await?;
        node.snapshot_meta().await?;
        for n in 50..60 {
            q.apply(enqueue(n)).await?;
        }
        node.shutdown().await?;
    }
    let node = Node::open(dir.path(), 1).await?;
    assert!(node.meta().queue("/", "q").is_some());
    let bodies = drain(&node).await?;
    let want: Vec<Bytes> = (0..60).map(|n| msg(n).body).collect();
    assert_eq!(bodies, want);
    node.shutdown().await?;
    Ok(())
}

/// Kills the child however the parent leaves the round (SIGKILL on Unix).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Child mode: enqueue forever, printing each acknowledged message number.
async fn child(dir: &str) -> anyhow::Result<()> {
    let node = Node::open(std::path::Path::new(dir), 1).await?;
    let q = match node.queue(GROUP) {
        Some(q) => q,
        None => {
            node.create_queue(GROUP, "/", "q", QueueConfig::default())
                .await?
        }
    };
    let mut stdout = std::io::stdout();
    for n in 0.. {
        q.apply(enqueue(n)).await?;
        writeln!(stdout, "ack {n}")?;
        stdout.flush()?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_message() -> anyhow::Result<()> {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(&dir).await;
    }
    for round in 0..3 {
        let dir = tempfile::tempdir()?;
        let mut proc = KillOnDrop(
            Process::new(std::env::current_exe()?)
                .args([
                    "--exact",
                    "kill9_loses_no_acknowledged_message",
                    "--nocapture",
                ])
                .env(CHILD_ENV, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let stdout = proc
            .0
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut acked = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill at a different point each round, mid-stream.
        let kill_at = 100 + round * 37;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(n) = line.strip_prefix("ack ") {
                acked.push(n.parse::<u64>()?);
            }
            if acked.len() >= kill_at || Instant::now() > deadline {
                break;
            }
        }
        drop(proc); // SIGKILL, mid-stream
        assert!(
            acked.len() >= kill_at,
            "child acknowledged only {}",
            acked.len()
        );

        let node = Node::open(dir.path(), 1).await?;
        let bodies = drain(&node).await?;
        for n in &acked {
            assert!(
                bodies.contains(&msg(*n).body),
                "round {round}: acked m{n} lost"
            );
        }
        node.shutdown().await?;
    }
    Ok(())
}
