//! What the cluster tests share: three (or more) nodes in one process
//! over gRPC on 127.0.0.1 ephemeral ports, each on its own RocksDB in a
//! temporary directory, and the helpers that drive and inspect them.
#![allow(dead_code, unused_imports)]

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::net::SocketAddr;
pub use std::path::{Path, PathBuf};
pub use std::time::Duration;

pub use anyhow::{Context, bail};
pub use bytes::Bytes;
pub use tempfile::TempDir;
pub use tokio::net::TcpListener;
pub use warren_cluster::{Bootstrap, ClusterConfig, Node, NodeChange, QueueGroup};
pub use warren_core::message::Message;
pub use warren_core::meta::{MetaCommand, MetaReply, QueueDef};
pub use warren_core::queue::{Command, QueueConfig, Reply};
pub use warren_core::value::Table;

/// Deadline of every wait: far above what any step needs.
pub const WAIT: Duration = Duration::from_secs(60);

/// Deadline of a failover: the detector judges a node down after 1 s and
/// the groups it led elect at once; "a few seconds", with room for a
/// loaded test machine.
pub const FAILOVER: Duration = Duration::from_secs(15);

pub const GROUP: u64 = 10;

pub fn msg(body: &str) -> Message {
    Message {
        exchange: String::new(),
        routing_key: "rq".into(),
        properties: Bytes::from_static(&[0x10, 0x00, 2]),
        body: Bytes::copy_from_slice(body.as_bytes()),
        persistent: true,
        priority: 0,
        expiration_ms: None,
    }
}

pub fn enqueue(m: Message) -> Command<Message> {
    let size = m.size();
    Command::Enqueue {
        msg: m,
        size,
        expiration_ms: None,
        priority: 0,
    }
}

pub fn declare_queue(name: &str) -> MetaCommand {
    MetaCommand::DeclareQueue {
        vhost: "/".into(),
        def: QueueDef {
            name: name.into(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: Table::new(),
            home: None,
        },
    }
}

/// Polls `f` every 50 ms until it holds, failing after [`WAIT`].
pub async fn eventually(what: &str, f: impl FnMut() -> bool) -> anyhow::Result<()> {
    eventually_within(WAIT, what, f).await
}

/// Polls `f` every 50 ms until it holds, failing after `limit`.
pub async fn eventually_within(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A cluster of three nodes on fixed addresses; a node can be stopped and
/// started again (on its directory, or on a fresh one).
pub struct Cluster {
    pub peers: BTreeMap<u64, SocketAddr>,
    pub dirs: BTreeMap<u64, TempDir>,
    pub nodes: BTreeMap<u64, Node>,
    /// The nodes' `ClusterConfig::replace_after`.
    pub replace_after: Option<Duration>,
    /// The nodes' `ClusterConfig::rebalance_every` (none unless a test
    /// asks: the other tests check where leaders are).
    pub rebalance_every: Option<Duration>,
}

impl Cluster {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(3, Some(warren_cluster::DEFAULT_REPLACE_AFTER)).await
    }

    /// `n` nodes replacing the replicas of a node down for `replace_after`.
    pub async fn start_with(n: u64, replace_after: Option<Duration>) -> anyhow::Result<Self> {
        Self::start_configured(n, replace_after, None).await
    }

    pub async fn start_configured(
        n: u64,
        replace_after: Option<Duration>,
        rebalance_every: Option<Duration>,
    ) -> anyhow::Result<Self> {
        // Logs for a failing run: RUST_LOG=warren_cluster=debug.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            peers.insert(id, l.local_addr()?);
            listeners.insert(id, l);
        }
        let mut c = Cluster {
            peers,
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            replace_after,
            rebalance_every,
        };
        for (id, listener) in listeners {
            let dir = tempfile::tempdir()?;
            let node = c.open(id, dir.path(), listener).await?;
            c.dirs.insert(id, dir);
            c.nodes.insert(id, node);
        }
        for n in c.nodes.values() {
            n.wait_for_meta_leader(WAIT).await?;
        }
        Ok(c)
    }

    pub async fn open(&self, id: u64, dir: &Path, listener: TcpListener) -> anyhow::Result<Node> {
        let mut config = ClusterConfig::new(id, listener, self.peers.clone());
        config.replace_after = self.replace_after;
        config.rebalance_every = self.rebalance_every;
        Ok(Node::open_cluster(dir, config).await?)
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    /// Starts a new node `id` on a fresh directory, with a peer table of
    /// every node so far and itself (the running nodes keep theirs): it
    /// waits to be added.
    pub async fn start_new(&mut self, id: u64) -> anyhow::Result<SocketAddr> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        self.peers.insert(id, addr);
        let dir = tempfile::tempdir()?;
        let node = self.open(id, dir.path(), l).await?;
        self.dirs.insert(id, dir);
        self.nodes.insert(id, node);
        Ok(addr)
    }

    pub async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.remove(&id).context("node running")?;
        node.shutdown().await?;
        Ok(())
    }

    /// Starts node `id` again on `dir` (its own, or a fresh one), on its
    /// address (rebinding may wait for the old socket to go).
    pub async fn restart(&mut self, id: u64, dir: PathBuf) -> anyhow::Result<()> {
        let addr = self.peers[&id];
        let deadline = tokio::time::Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let node = self.open(id, &dir, listener).await?;
        self.nodes.insert(id, node);
        Ok(())
    }

    pub async fn shutdown(self) -> anyhow::Result<()> {
        for n in self.nodes.values() {
            n.shutdown().await?;
        }
        Ok(())
    }

    /// The queue group's leader as every running member sees it, once
    /// they agree on one that is running.
    pub async fn queue_leader(&self, group: u64) -> anyhow::Result<u64> {
        let among: Vec<u64> = self.nodes.keys().copied().collect();
        self.queue_leader_among(group, &among, WAIT).await
    }

    /// The leader the replicas of `group` on `among` agree on (one of
    /// them, and leading in its own eyes), waited for up to `limit`.
    pub async fn queue_leader_among(
        &self,
        group: u64,
        among: &[u64],
        limit: Duration,
    ) -> anyhow::Result<u64> {
        let mut leader = None;
        let what = format!("a leader of group {group} that nodes {among:?} agree on");
        eventually_within(limit, &what, || {
            leader = self.agreed_leader(group, among);
            leader.is_some()
        })
        .await?;
        leader.context("leader")
    }

    pub fn agreed_leader(&self, group: u64, among: &[u64]) -> Option<u64> {
        let seen: BTreeSet<Option<u64>> = among
            .iter()
            .filter_map(|id| self.nodes.get(id)?.queue(group))
            .map(|q| q.leader())
            .collect();
        match seen.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(l)] if among.contains(l) && self.nodes[l].queue(group)?.is_leader() => Some(*l),
            _ => None,
        }
    }
}

/// Submits `bodies` to `q` and waits for every answer; each must be Enqueued.
/// A node that leads neither the metadata nor the queue group led by
/// `leader`: stopping it moves no leadership.
pub fn leading_nothing(c: &Cluster, leader: u64) -> anyhow::Result<u64> {
    let meta_leader = c.node(leader).meta_leader().context("meta leader")?;
    [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != meta_leader)
        .context("a node leading nothing")
}

pub async fn enqueue_all(q: &QueueGroup, bodies: &[String]) -> anyhow::Result<()> {
    let answers: Vec<_> = bodies.iter().map(|b| q.submit(enqueue(msg(b)))).collect();
    for a in answers {
        let (reply, _) = a.await??;
        if !matches!(reply, Reply::Enqueued { .. }) {
            bail!("not enqueued: {reply:?}");
        }
    }
    Ok(())
}

/// The bodies of every message `q`'s replica holds (ready or not).
pub fn bodies_held(q: &QueueGroup) -> anyhow::Result<BTreeSet<String>> {
    let indexes: Vec<u64> = q
        .with_state(|s| s.payloads().copied().collect())
        .context("queue created")?;
    let mut bodies = BTreeSet::new();
    for i in indexes {
        let m = q.read_body(i)?;
        bodies.insert(String::from_utf8(m.body.to_vec())?);
    }
    Ok(bodies)
}

/// Waits until `q`'s replica holds exactly `expected` (count, then bodies).
/// A follower may apply an entry a moment before its own log write of it
/// is readable from the store (bodies are read from the store, the state
/// machine applies from the log adapter's unflushed tail), so a body read
/// right after the count matches can miss: poll both.
pub async fn holds_exactly(q: &QueueGroup, expected: &BTreeSet<String>) -> anyhow::Result<()> {
    eventually("every body applied and readable", || {
        count(q) == expected.len() as u64 && bodies_held(q).is_ok_and(|b| b == *expected)
    })
    .await
}

pub fn count(q: &QueueGroup) -> u64 {
    q.with_state(|s| s.message_count()).unwrap_or(0)
}

pub fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}
