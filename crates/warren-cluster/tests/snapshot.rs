//! A queue group's snapshot is its state, not its history: after thousands
//! of messages came and went, the stored snapshot costs a few bytes per
//! message still held, and a restart from it (with the log purged) brings
//! back the identical state, every held message's body readable. Over the
//! in-memory store and over RocksDB.

use std::collections::BTreeMap;

use bytes::Bytes;
use warren_cluster::{Node, QueueGroup};
use warren_core::message::Message;
use warren_core::queue::{Command, ConsumerKey, Effect, MsgId, OwnerId, QueueConfig, Reply};
use warren_storage::{LogStore, MemStore, RocksOptions, RocksStore};

const GROUP: u64 = 4;
const ROUNDS: u64 = 6;
const PER_ROUND: u64 = 500;
/// Messages of each round left unacked with the consumer.
const KEPT: usize = 5;
/// Messages enqueued after the consumer left: they stay ready.
const READY: u64 = 50;
/// Of those, taken by basic.get and left unacked.
const GOT: u64 = 5;

fn msg(n: u64) -> Message {
    Message {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::new(),
        body: Bytes::from(format!("m{n:061}")),
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

/// Enqueues `ns` concurrently (so that the store commits them in batches);
/// the message number of each id, and the deliveries the enqueues caused.
async fn enqueue_many<S: LogStore>(
    q: &QueueGroup<S>,
    ns: std::ops::Range<u64>,
) -> anyhow::Result<(BTreeMap<MsgId, u64>, Vec<MsgId>)> {
    let tasks: Vec<_> = ns
        .map(|n| {
            let q = q.clone();
            tokio::spawn(async move { (n, q.apply(enqueue(n)).await) })
        })
        .collect();
    let (mut ids, mut delivered) = (BTreeMap::new(), Vec::new());
    for t in tasks {
        let (n, res) = t.await?;
        let (reply, fx) = res?;
        let Reply::Enqueued { msg_id } = reply else {
            anyhow::bail!("enqueue {n}: {reply:?}");
        };
        ids.insert(msg_id, n);
        for e in fx {
            if let Effect::Deliver { msg_id, .. } = e {
                delivered.push(msg_id);
            }
        }
    }
    Ok((ids, delivered))
}

/// Rounds of enqueue, deliver, ack all but a few; then the consumer leaves,
/// a few more are enqueued and some of those got. Returns the message
/// number of every id, and how many messages the queue still holds.
async fn churn<S: LogStore>(q: &QueueGroup<S>) -> anyhow::Result<(BTreeMap<MsgId, u64>, u64)> {
    let consumer = ConsumerKey::new(OwnerId(1), "c");
    let sub = Command::Subscribe {
        consumer: consumer.clone(),
        prefetch: 0,
        no_ack: false,
        exclusive: false,
    };
    assert_eq!(q.apply(sub).await?.0, Reply::Ok);
    let mut numbers = BTreeMap::new();
    for round in 0..ROUNDS {
        let first = round * PER_ROUND;
        let (ids, mut delivered) = enqueue_many(q, first..first + PER_ROUND).await?;
        numbers.extend(ids);
        assert_eq!(delivered.len() as u64, PER_ROUND);
        delivered.sort_unstable();
        let acked = delivered.split_off(KEPT);
        let settle = Command::Settle {
            owner: OwnerId(1),
            msg_ids: acked,
        };
        assert_eq!(q.apply(settle).await?, (Reply::Ok, vec![]));
    }
    q.apply(Command::Cancel { consumer }).await?;
    let first = ROUNDS * PER_ROUND;
    let (ids, delivered) = enqueue_many(q, first..first + READY).await?;
    assert!(delivered.is_empty());
    numbers.extend(ids);
    for _ in 0..GOT {
        let get = Command::Get {
            owner: OwnerId(2),
            no_ack: false,
        };
        assert!(matches!(q.apply(get).await?.0, Reply::GetOk { .. }));
    }
    let live = ROUNDS * KEPT as u64 + READY;
    assert_eq!(
        q.with_state(|s| s.message_count() + s.unacked_count()),
        Some(live)
    );
    Ok((numbers, live))
}

/// Snapshots (compacting the log) and checks the stored snapshot's size.
async fn snapshot_is_small<S: LogStore>(
    store: &S,
    q: &QueueGroup<S>,
    live: u64,
) -> anyhow::Result<()> {
    q.snapshot().await?;
    let (_, data) = store
        .read_snapshot(GROUP)?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    let enqueued = ROUNDS * PER_ROUND + READY;
    println!(
        "snapshot: {} bytes for {live} live messages ({:.1} bytes each) after {enqueued} enqueues",
        data.len(),
        data.len() as f64 / live as f64
    );
    // A few bytes per live message plus the fixed part (config, name,
    // consumers), whatever the history: the commands alone would take
    // tens of kilobytes.
    assert!(data.len() as u64 <= 128 + 16 * live, "{} bytes", data.len());
    Ok(())
}

/// The state and every held body are as before the restart, read from the
/// store's bodies (the log no longer holds the enqueues).
async fn check_restored<S: LogStore>(
    store: &S,
    q: &QueueGroup<S>,
    before: &warren_core::queue::QueueState<u64>,
    numbers: &BTreeMap<MsgId, u64>,
) -> anyhow::Result<()> {
    let image = q
        .with_state(|s| s.image())
        .ok_or_else(|| anyhow::anyhow!("no state"))?;
    assert_eq!(
        &warren_core::queue::QueueState::from_image(image.clone()),
        before
    );
    let first_in_log = store.log_state(GROUP)?.first_index;
    let held = image.ready.iter().map(|r| &r.msg);
    let held = held.chain(image.checked_out.iter().map(|c| &c.msg));
    let mut count = 0;
    for m in held {
        assert!(
            first_in_log.is_none_or(|f| m.payload < f),
            "still in the log"
        );
        assert_eq!(q.body(m.payload).await?, msg(numbers[&m.id]));
        count += 1;
    }
    assert_eq!(count, ROUNDS * KEPT as u64 + READY);
    Ok(())
}

/// After the restart: ack and drain everything, snapshot again: the
/// snapshot shrinks to the fixed part and the moved bodies are deleted.
async fn drain_and_compact<S: LogStore>(store: &S, q: &QueueGroup<S>) -> anyhow::Result<()> {
    let indexes: Vec<u64> = q
        .with_state(|s| s.payloads().copied().collect())
        .unwrap_or_default();
    for owner in [1, 2] {
        let ids = q
            .with_state(|s| s.checked_out_ids(OwnerId(owner)))
            .unwrap_or_default();
        let settle = Command::Settle {
            owner: OwnerId(owner),
            msg_ids: ids,
        };
        assert_eq!(q.apply(settle).await?.0, Reply::Ok);
    }
    q.apply(Command::Purge).await?;
    q.snapshot().await?;
    let (_, data) = store
        .read_snapshot(GROUP)?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert!(data.len() <= 128, "empty queue: {} bytes", data.len());
    for i in indexes {
        assert!(store.get_body(GROUP, i)?.is_none(), "body {i} kept");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_follows_live_messages_in_memory() -> anyhow::Result<()> {
    let store = MemStore::new();
    let node = Node::with_store(store.clone(), 1).await?;
    let q = node
        .create_queue(GROUP, "/", "q", QueueConfig::default())
        .await?;
    let (numbers, live) = churn(&q).await?;
    snapshot_is_small(&store, &q, live).await?;
    let before = q
        .with_state(|s| s.clone())
        .ok_or_else(|| anyhow::anyhow!("no state"))?;
    node.shutdown().await?;
    drop((q, node));

    let node = Node::with_store(store.clone(), 1).await?;
    let q = node
        .queue(GROUP)
        .ok_or_else(|| anyhow::anyhow!("queue missing"))?;
    check_restored(&store, &q, &before, &numbers).await?;
    drain_and_compact(&store, &q).await?;
    node.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_follows_live_messages_on_rocksdb() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let before = {
        let store = RocksStore::open(dir.path(), RocksOptions::default())?;
        let node = Node::with_store(store.clone(), 1).await?;
        let q = node
            .create_queue(GROUP, "/", "q", QueueConfig::default())
            .await?;
        let (numbers, live) = churn(&q).await?;
        snapshot_is_small(&store, &q, live).await?;
        let before = q
            .with_state(|s| s.clone())
            .ok_or_else(|| anyhow::anyhow!("no state"))?;
        node.shutdown().await?;
        (before, numbers)
    };
    let store = RocksStore::open(dir.path(), RocksOptions::default())?;
    let node = Node::with_store(store.clone(), 1).await?;
    let q = node
        .queue(GROUP)
        .ok_or_else(|| anyhow::anyhow!("queue missing"))?;
    check_restored(&store, &q, &before.0, &before.1).await?;
    drain_and_compact(&store, &q).await?;
    node.shutdown().await?;
    Ok(())
}
