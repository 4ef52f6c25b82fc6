//! Three nodes in one process, over gRPC on 127.0.0.1 ephemeral ports,
//! each on its own RocksDB in a temporary directory: the metadata group
//! spans them, proposals made on followers are forwarded, a queue group
//! replicated on all three loses nothing when its leader's node stops, a
//! node restarted on its data catches up (by snapshot, bodies included),
//! and an emptied lowest-id node joins the cluster instead of founding one.
//!
//! Waits poll with generous deadlines; nothing asserts a duration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use tempfile::TempDir;
use tokio::net::TcpListener;
use warren_cluster::{Bootstrap, ClusterConfig, Node, QueueGroup};
use warren_core::message::Message;
use warren_core::meta::{MetaCommand, MetaReply, QueueDef};
use warren_core::queue::{Command, QueueConfig, Reply};
use warren_core::value::Table;

/// Deadline of every wait: far above what any step needs.
const WAIT: Duration = Duration::from_secs(60);

const GROUP: u64 = 10;

fn msg(body: &str) -> Message {
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

fn enqueue(m: Message) -> Command<Message> {
    let size = m.size();
    Command::Enqueue {
        msg: m,
        size,
        expiration_ms: None,
        priority: 0,
    }
}

fn declare_queue(name: &str) -> MetaCommand {
    MetaCommand::DeclareQueue {
        vhost: "/".into(),
        def: QueueDef {
            name: name.into(),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            arguments: Table::new(),
        },
    }
}

/// Polls `f` every 50 ms until it holds, failing after [`WAIT`].
async fn eventually(what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
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
struct Cluster {
    peers: BTreeMap<u64, SocketAddr>,
    dirs: BTreeMap<u64, TempDir>,
    nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        let mut listeners = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for id in 1..=3u64 {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            peers.insert(id, l.local_addr()?);
            listeners.insert(id, l);
        }
        let mut c = Cluster {
            peers,
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
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

    async fn open(&self, id: u64, dir: &Path, listener: TcpListener) -> anyhow::Result<Node> {
        let config = ClusterConfig {
            node_id: id,
            listener,
            peers: self.peers.clone(),
        };
        Ok(Node::open_cluster(dir, config).await?)
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    async fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.nodes.remove(&id).context("node running")?;
        node.shutdown().await?;
        Ok(())
    }

    /// Starts node `id` again on `dir` (its own, or a fresh one), on its
    /// address (rebinding may wait for the old socket to go).
    async fn restart(&mut self, id: u64, dir: PathBuf) -> anyhow::Result<()> {
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

    async fn shutdown(self) -> anyhow::Result<()> {
        for n in self.nodes.values() {
            n.shutdown().await?;
        }
        Ok(())
    }

    /// The queue group's leader as every running member sees it, once
    /// they agree on one that is running.
    async fn queue_leader(&self, group: u64) -> anyhow::Result<u64> {
        let mut leader = None;
        eventually("a queue leader all running members agree on", || {
            let seen: BTreeSet<Option<u64>> = self
                .nodes
                .values()
                .filter_map(|n| n.queue(group))
                .map(|q| q.leader())
                .collect();
            match seen.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(l)] if self.nodes.contains_key(l) => {
                    leader = Some(*l);
                    true
                }
                _ => false,
            }
        })
        .await?;
        leader.context("leader")
    }
}

/// Submits `bodies` to `q` and waits for every answer; each must be Enqueued.
async fn enqueue_all(q: &QueueGroup, bodies: &[String]) -> anyhow::Result<()> {
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
fn bodies_held(q: &QueueGroup) -> anyhow::Result<BTreeSet<String>> {
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

fn count(q: &QueueGroup) -> u64 {
    q.with_state(|s| s.message_count()).unwrap_or(0)
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_spans_the_nodes_and_followers_forward() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    // The lowest id founded the cluster; the others waited for it.
    assert_eq!(c.node(1).cluster_status().bootstrap, Bootstrap::Founded);
    for id in [2, 3] {
        assert_eq!(c.node(id).cluster_status().bootstrap, Bootstrap::Follower);
    }
    for n in c.nodes.values() {
        assert_eq!(n.cluster_status().meta_voters, vec![1, 2, 3]);
    }
    let leader = c.node(1).meta_leader().context("leader")?;
    let follower = if leader == 1 { 2 } else { 1 };

    assert_eq!(
        c.node(leader)
            .meta_apply(declare_queue("by-leader"))
            .await?,
        Ok(MetaReply::Created)
    );
    // Through a follower: forwarded, and the machine's answer comes back.
    assert_eq!(
        c.node(follower)
            .meta_apply(declare_queue("by-follower"))
            .await?,
        Ok(MetaReply::Created)
    );
    assert_eq!(
        c.node(follower)
            .meta_apply(declare_queue("by-leader"))
            .await?,
        Ok(MetaReply::Existed)
    );
    let err = c
        .node(follower)
        .meta_apply(MetaCommand::DeleteVhost {
            name: "nope".into(),
        })
        .await?
        .err()
        .context("refused")?;
    assert_eq!(err.code, 404);
    for n in c.nodes.values() {
        eventually("both queues in every node's metadata", || {
            n.with_meta(|m| {
                m.queue("/", "by-leader").is_some() && m.queue("/", "by-follower").is_some()
            })
        })
        .await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_queue_keeps_every_committed_enqueue_when_its_leader_stops() -> anyhow::Result<()>
{
    let mut c = Cluster::start().await?;
    let q = c
        .node(2)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    assert_eq!(q.members(), vec![1, 2, 3]);
    let leader = c.queue_leader(GROUP).await?;
    let first = names("a", 0..400);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &first).await?;

    // A follower's submissions are forwarded to the leader.
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("a follower")?;
    let forwarded = names("f", 0..50);
    let fq = c.node(follower).queue(GROUP).context("replica")?;
    assert!(!fq.is_leader());
    enqueue_all(&fq, &forwarded).await?;

    let stopping = std::time::Instant::now();
    c.stop(leader).await?;
    let stopped = stopping.elapsed();
    let next = c.queue_leader(GROUP).await?;
    assert_ne!(next, leader);
    // A measurement, not a check: how long the group went without a leader.
    eprintln!(
        "queue group: node {leader} stopped in {stopped:?}; node {next} leads {:?} after the stop began",
        stopping.elapsed()
    );
    let expected: BTreeSet<String> = first.iter().chain(&forwarded).cloned().collect();
    for (id, n) in &c.nodes {
        let q = n.queue(GROUP).context("replica")?;
        eventually(&format!("node {id} applying every enqueue"), || {
            count(&q) == expected.len() as u64
        })
        .await?;
        assert_eq!(bodies_held(&q)?, expected, "node {id}");
    }
    // The new leader takes new work, from either remaining member.
    let more = names("b", 0..20);
    let first_node = c.nodes.values().next().context("node")?;
    enqueue_all(&first_node.queue(GROUP).context("replica")?, &more[..10]).await?;
    let last_node = c.nodes.values().last().context("node")?;
    enqueue_all(&last_node.queue(GROUP).context("replica")?, &more[10..]).await?;
    let nq = c.node(next).queue(GROUP).context("replica")?;
    let mut all = expected.clone();
    all.extend(more);
    assert_eq!(count(&nq), all.len() as u64);
    assert_eq!(bodies_held(&nq)?, all);
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_by_snapshot_with_bodies() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    c.node(1)
        .create_queue_on(GROUP, "/", "rq", QueueConfig::default(), &[1, 2, 3])
        .await?;
    let leader = c.queue_leader(GROUP).await?;
    let before = names("before", 0..100);
    enqueue_all(&c.node(leader).queue(GROUP).context("replica")?, &before).await?;

    // Stop a member that leads neither group, so both keep their leaders.
    let meta_leader = c.node(leader).meta_leader().context("meta leader")?;
    let down = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != meta_leader)
        .context("a node leading nothing")?;
    let down_dir = c.dirs[&down].path().to_path_buf();
    c.stop(down).await?;

    // Enough while it is away that the leader's log, once compacted, no
    // longer holds what it lacks: it must get a snapshot, bodies included.
    let lq = c.node(leader).queue(GROUP).context("replica")?;
    let during = names("during", 0..2500);
    for chunk in during.chunks(500) {
        enqueue_all(&lq, chunk).await?;
    }
    lq.snapshot().await?;
    assert_eq!(
        c.node(leader)
            .meta_apply(declare_queue("while-away"))
            .await?,
        Ok(MetaReply::Created)
    );

    let restarting = std::time::Instant::now();
    c.restart(down, down_dir).await?;
    assert_eq!(c.node(down).cluster_status().bootstrap, Bootstrap::Member);
    let n = c.node(down);
    eventually("metadata caught up", || {
        n.with_meta(|m| m.queue("/", "while-away").is_some())
    })
    .await?;
    let q = n.queue(GROUP).context("replica reopened")?;
    let expected: BTreeSet<String> = before.iter().chain(&during).cloned().collect();
    eventually("queue caught up", || count(&q) == expected.len() as u64).await?;
    eprintln!(
        "node {down}: {} messages caught up {:?} after its restart began",
        expected.len(),
        restarting.elapsed()
    );
    assert_eq!(bodies_held(&q)?, expected);
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_lowest_node_joins_instead_of_founding() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    assert_eq!(
        c.node(2).meta_apply(declare_queue("before")).await?,
        Ok(MetaReply::Created)
    );
    c.stop(1).await?;
    // Nodes 2 and 3 carry on (and elect among themselves if 1 led).
    c.node(2).wait_for_meta_leader(WAIT).await?;
    eventually("a leader among 2 and 3", || {
        matches!(c.node(2).meta_leader(), Some(2 | 3))
    })
    .await?;

    let fresh = tempfile::tempdir()?;
    c.restart(1, fresh.path().to_path_buf()).await?;
    let n = c.node(1);
    eventually("node 1 decided", || {
        n.cluster_status().bootstrap != Bootstrap::Pending
    })
    .await?;
    // Either it found the cluster by asking, or the cluster's leader
    // reached it first; never does it found a second one.
    assert!(
        matches!(
            n.cluster_status().bootstrap,
            Bootstrap::Joined { seen_on: 2 | 3 } | Bootstrap::Replicated
        ),
        "{:?}",
        n.cluster_status().bootstrap
    );
    eventually("node 1 replicated to", || {
        n.with_meta(|m| m.queue("/", "before").is_some())
    })
    .await?;
    assert_eq!(n.cluster_status().meta_voters, vec![1, 2, 3]);
    assert_eq!(
        n.meta_apply(declare_queue("after")).await?,
        Ok(MetaReply::Created)
    );
    for id in [2, 3] {
        eventually("the others see it", || {
            c.node(id).with_meta(|m| m.queue("/", "after").is_some())
        })
        .await?;
    }
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_queue_on_a_cluster_node() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let q = c
        .node(3)
        .create_queue(GROUP, "/", "local", QueueConfig::default())
        .await?;
    assert_eq!(q.members(), vec![3]);
    assert_eq!(q.leader(), Some(3));
    enqueue_all(&q, &names("x", 0..10)).await?;
    assert_eq!(count(&q), 10);
    assert!(c.node(1).queue(GROUP).is_none());
    c.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_apply_on_a_follower_rides_out_a_leader_change() -> anyhow::Result<()> {
    let mut c = Cluster::start().await?;
    let leader = c.node(1).meta_leader().context("leader")?;
    c.stop(leader).await?;
    // At once, while the others still name the stopped node as leader:
    // the follower keeps forwarding until one of them is elected.
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("a node")?;
    assert_eq!(
        c.node(other).meta_apply(declare_queue("across")).await?,
        Ok(MetaReply::Created)
    );
    let now = c.node(other).meta_leader().context("new leader")?;
    assert_ne!(now, leader);
    for n in c.nodes.values() {
        eventually("the survivors applied it", || {
            n.with_meta(|m| m.queue("/", "across").is_some())
        })
        .await?;
    }
    c.shutdown().await
}

/// This process's CPU time (user + system), from /proc.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks
    // (100 a second on Linux).
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// A measurement, not a check (run with `--ignored --nocapture`): how long
/// replicated queues take to create, what idle groups cost in CPU, and the
/// enqueue rate through the leader and through a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_groups_and_forwarding() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let groups = 20u64;
    let t = std::time::Instant::now();
    for g in 0..groups {
        c.node(1)
            .create_queue_on(
                100 + g,
                "/",
                &format!("q{g}"),
                QueueConfig::default(),
                &[1, 2, 3],
            )
            .await?;
    }
    eprintln!(
        "{groups} three-member queue groups created in {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_time()?, std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let busy = cpu_time()? - cpu0;
    eprintln!(
        "idle: {} groups x 3 replicas (+ metadata) in one process: {:.0}% of a core",
        groups,
        100.0 * busy.as_secs_f64() / t0.elapsed().as_secs_f64()
    );
    let leader = c.queue_leader(100).await?;
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .context("follower")?;
    for (label, id) in [("leader", leader), ("follower", follower)] {
        let q = c.node(id).queue(100).context("replica")?;
        let bodies = names(label, 0..5000);
        let t = std::time::Instant::now();
        enqueue_all(&q, &bodies).await?;
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "5000 enqueues submitted on the {label}: {:.0}/s",
            5000.0 / s
        );
    }
    c.shutdown().await
}
