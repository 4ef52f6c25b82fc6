//! Opening a deep queue. The store is put in the state a real group is in
//! after N enqueues and a snapshot: a group is created and snapshotted
//! through the node, then N enqueues are applied to its state machine as
//! the log would deliver them, their bodies moved to the store's bodies,
//! the snapshot saved at the last of them and the log purged past it.
//! (Proposing N messages through Raft would snapshot every 1024 entries
//! and make the test slow without testing more.) Then the node is opened
//! and the time printed: no timed assertion, machines are noisy.
//!
//! `WARREN_OPEN_MESSAGES=1000000 cargo test --release -p warren-cluster
//! open_time -- --nocapture` measures another size.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use openraft::alias::LogIdOf;
use prost::Message as _;
use warren_core::message::Message;
use warren_core::queue::{Command, OwnerId, QueueConfig, QueueState, Reply};
use warren_rpc::log as pb;
use warren_storage::{LogStore, MemStore, MetaKey, RocksOptions, RocksStore};

use super::super::TypeConfig;
use super::super::codec::encode_log_id;
use super::super::snapshot::{load, meta_for, save};
use super::{QueueMachine, apply_proposal, restore, save_moved, snapshot_data};
use crate::Node;
use crate::convert::{IntoProto, QueueOp};

const GROUP: u64 = 3;

fn message(n: u64) -> Message {
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
    let msg = message(n);
    Command::Enqueue {
        size: msg.size(),
        msg,
        expiration_ms: None,
        priority: 0,
    }
}

fn enqueue_proposal(n: u64) -> Bytes {
    let cmd = enqueue(n);
    let p = pb::Proposal {
        now_ms: 1_000 + n,
        command: Some(pb::proposal::Command::Queue(
            QueueOp::Command(cmd).into_proto(),
        )),
    };
    p.encode_to_vec().into()
}

/// Makes the group in `dir` hold `n` more messages, as described above.
async fn deepen(dir: &std::path::Path, n: u64) -> anyhow::Result<()> {
    let store = RocksStore::open(dir, RocksOptions::default())?;
    let (meta, data) = load(&store, GROUP)?.ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    let mut core = restore(data)?;
    let last = meta
        .last_log_id
        .ok_or_else(|| anyhow::anyhow!("empty snapshot"))?;
    let mut bodies = Vec::new();
    let mut moved = BTreeSet::new();
    for i in 1..=n {
        let index = last.index + i;
        apply_proposal(&mut core, index, enqueue_proposal(i), false, None)?;
        let body: pb::Message = message(i).into_proto();
        bodies.push((index, Bytes::from(body.encode_to_vec())));
        moved.insert(index);
        if bodies.len() == 10_000 {
            store.put_bodies(GROUP, std::mem::take(&mut bodies)).await?;
        }
    }
    store.put_bodies(GROUP, bodies).await?;
    save_moved(&store, GROUP, &moved).await?;
    let upto = LogIdOf::<TypeConfig>::new(last.leader_id, last.index + n);
    let image = core.state.as_ref().map(QueueState::image);
    let data = snapshot_data(image);
    println!(
        "snapshot of {n} messages: {} bytes ({:.1} per message)",
        data.len(),
        data.len() as f64 / n as f64
    );
    save(
        &store,
        GROUP,
        &meta_for(Some(upto), meta.last_membership),
        data,
    )
    .await?;
    for key in [MetaKey::LastPurged, MetaKey::Committed] {
        store.save_meta(GROUP, key, encode_log_id(&upto)).await?;
    }
    store.purge_upto(GROUP, upto.index).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_time_of_a_deep_queue() -> anyhow::Result<()> {
    let n: u64 = match std::env::var("WARREN_OPEN_MESSAGES") {
        Ok(v) => v.parse()?,
        Err(_) => 200_000,
    };
    let dir = tempfile::tempdir()?;
    {
        let node = Node::open(dir.path(), 1).await?;
        let q = node
            .create_queue(GROUP, "/", "q", QueueConfig::default())
            .await?;
        q.snapshot().await?;
        node.shutdown().await?;
    }
    // The same node with the queue still empty: what opening costs
    // whatever the queue holds (RocksDB, openraft electing each group).
    let t = Instant::now();
    Node::open(dir.path(), 1).await?.shutdown().await?;
    let baseline = t.elapsed();
    deepen(dir.path(), n).await?;

    // The first open after `deepen` also replays RocksDB's write-ahead log
    // of the bodies just written (a real store writes them over time and
    // flushes them as it goes): timed apart.
    let t = Instant::now();
    Node::open(dir.path(), 1).await?.shutdown().await?;
    let first = t.elapsed();
    let t = Instant::now();
    let node = Node::open(dir.path(), 1).await?;
    let opened = t.elapsed();
    let q = node
        .queue(GROUP)
        .ok_or_else(|| anyhow::anyhow!("queue missing"))?;
    assert_eq!(q.with_state(|s| s.message_count()), Some(n));
    let ids = q.with_state(|s| s.ready_ids()).unwrap_or_default();
    assert_eq!((ids.first(), ids.last()), (Some(&1), Some(&n)));
    // The bodies come from the store's bodies: the log holds none of them.
    let (lo, hi) = q
        .with_state(|s| (s.payloads().min().copied(), s.payloads().max().copied()))
        .ok_or_else(|| anyhow::anyhow!("no state"))?;
    let lo = lo.ok_or_else(|| anyhow::anyhow!("no message"))?;
    let hi = hi.ok_or_else(|| anyhow::anyhow!("no message"))?;
    assert_eq!(q.body(lo).await?, message(1));
    assert_eq!(q.body(hi).await?, message(n));
    println!(
        "node with a queue of {n} messages opened in {:.3}s (empty queue: {:.3}s; \
         first open, with RocksDB's recovery of the bodies written: {:.3}s)",
        opened.as_secs_f64(),
        baseline.as_secs_f64(),
        first.as_secs_f64()
    );
    node.shutdown().await?;
    drop((q, node));

    // The machine alone: read, decode, rebuild (the rest of a node's open
    // is RocksDB and openraft starting up).
    let store = RocksStore::open(dir.path(), RocksOptions::default())?;
    let t = Instant::now();
    let sm = QueueMachine::open(store.clone(), GROUP)?;
    let machine = t.elapsed();
    let count = sm
        .shared
        .core
        .lock()
        .state
        .as_ref()
        .map(|s| s.message_count());
    assert_eq!(count, Some(n));
    println!(
        "its state machine alone (snapshot read, decoded, rebuilt) in {:.3}s",
        machine.as_secs_f64()
    );
    Ok(())
}

/// A queue's compaction copies the bodies of its queued messages out of
/// the log before it asks for the purge, so the purge (which openraft runs
/// inside the group's Raft core, where seconds of copying would hold up
/// acknowledgements and let the leader's lease lapse) writes nothing; and
/// settled bodies are deleted by the compaction, not by the purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_after_a_compaction_writes_nothing() -> anyhow::Result<()> {
    let store = MemStore::new();
    let node = Node::with_store(store.clone(), 1).await?;
    let q = node
        .create_queue(GROUP, "/", "q", QueueConfig::default())
        .await?;
    for n in 1..=100 {
        assert!(matches!(
            q.apply(enqueue(n)).await?.0,
            Reply::Enqueued { .. }
        ));
    }
    let shared = q.shared().clone();
    let upto = q
        .applied_index()
        .ok_or_else(|| anyhow::anyhow!("nothing applied"))?;
    let indexes: Vec<u64> = q
        .with_state(|s| s.payloads().copied().collect())
        .unwrap_or_default();
    assert_eq!(indexes.len(), 100);

    // The compaction's copy (from where the log was last purged).
    shared
        .keep_live_bodies(&store, GROUP, None, upto, true)
        .await?;
    for i in &indexes {
        assert!(store.get_body(GROUP, *i)?.is_some(), "body {i} not copied");
    }
    // The purge's own call, as the log adapter makes it: nothing to copy.
    let before = store.stats();
    shared
        .keep_live_bodies(&store, GROUP, None, upto, false)
        .await?;
    assert_eq!(store.stats().requests, before.requests, "the purge wrote");
    // A compaction asking for less than a purge already moved (openraft's
    // purge after an installed snapshot, then the compaction's own) keeps
    // the bodies above its point: their messages are still queued.
    shared
        .keep_live_bodies(&store, GROUP, None, indexes[49], true)
        .await?;
    for i in &indexes {
        assert!(store.get_body(GROUP, *i)?.is_some(), "body {i} deleted");
    }

    // Ten settled: the purge leaves their bodies, the next compaction
    // deletes them.
    for _ in 0..10 {
        let get = Command::Get {
            owner: OwnerId(1),
            no_ack: true,
        };
        assert!(matches!(q.apply(get).await?.0, Reply::GetOk { .. }));
    }
    let before = store.stats();
    shared
        .keep_live_bodies(&store, GROUP, None, upto, false)
        .await?;
    assert_eq!(store.stats().requests, before.requests, "the purge wrote");
    assert!(store.get_body(GROUP, indexes[0])?.is_some());
    shared
        .keep_live_bodies(&store, GROUP, None, upto, true)
        .await?;
    for (k, i) in indexes.iter().enumerate() {
        assert_eq!(store.get_body(GROUP, *i)?.is_some(), k >= 10, "body {i}");
    }
    node.shutdown().await?;
    Ok(())
}
