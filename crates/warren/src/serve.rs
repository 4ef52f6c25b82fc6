//! `warren serve`: options and the running broker.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warren_amqp::{Broker, ServerConfig};

/// Options of `warren serve`. Flag names are a contract (DESIGN.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Directory for the node's data.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "./warren-data")]
    pub data_dir: PathBuf,
    /// AMQP 0-9-1 listen address (port 0 picks a free port).
    #[arg(long, env = "WARREN_AMQP_LISTEN", default_value = "0.0.0.0:5672")]
    pub amqp_listen: SocketAddr,
    /// Management HTTP listen address.
    #[arg(long, env = "WARREN_HTTP_LISTEN", default_value = "0.0.0.0:15672")]
    pub http_listen: SocketAddr,
    /// Cluster gRPC listen address.
    #[arg(long, env = "WARREN_CLUSTER_LISTEN", default_value = "0.0.0.0:25672")]
    pub cluster_listen: SocketAddr,
    /// This node's id in the cluster.
    #[arg(long, env = "WARREN_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// Cluster peers as `id@host:port,…` (none: a single node).
    #[arg(long, env = "WARREN_PEERS")]
    pub peers: Option<String>,
    /// Seconds a node may be down before each queue it held a replica of
    /// gets a new replica on a live node (0: never).
    #[arg(long, env = "WARREN_REPLACE_REPLICAS_AFTER", default_value_t = 120)]
    pub replace_replicas_after: u64,
    /// Seconds between two rounds in which a node hands some of its queue
    /// leaderships to voters that lead fewer (0: never).
    #[arg(long, env = "WARREN_REBALANCE_EVERY", default_value_t = 15)]
    pub rebalance_every: u64,
    /// Seconds after which a node that only reads a queue's log (it holds
    /// no replica, and joined to serve a consumer here) stops reading it
    /// once nothing here uses the queue (0: never).
    #[arg(long, env = "WARREN_RELEASE_READERS_AFTER", default_value_t = 300)]
    pub release_readers_after: u64,
    /// The cluster address peers should dial, when it differs from --cluster-listen.
    #[arg(long, env = "WARREN_ADVERTISE")]
    pub advertise: Option<String>,
    /// A RabbitMQ definitions export (JSON) loaded at boot: users, vhosts,
    /// permissions, exchanges, queues, bindings.
    #[arg(long, env = "WARREN_DEFINITIONS")]
    pub definitions: Option<PathBuf>,
    /// Message bytes held by queues above which publishers are blocked
    /// (connection.blocked) until consumers catch up; 0 disables. Default:
    /// 40% of the machine's memory.
    #[arg(long, env = "WARREN_MEMORY_HIGH_WATERMARK")]
    pub memory_high_watermark: Option<u64>,
    /// Free bytes on the data directory's disk below which publishers are
    /// blocked (RabbitMQ's `disk_free_limit`, same default); 0 disables.
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", default_value_t = DEFAULT_DISK_FREE_LIMIT)]
    pub disk_free_limit: u64,
    /// Users that may log in only from a loopback address (RabbitMQ's
    /// `loopback_users`), comma-separated; `none` lets every user in from
    /// anywhere. Default: guest, as in RabbitMQ.
    #[arg(
        long,
        env = "WARREN_LOOPBACK_USERS",
        value_delimiter = ',',
        default_value = "guest"
    )]
    pub loopback_users: Vec<String>,
}

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;

/// Free bytes (for unprivileged users) on the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Logs what the store did every `every` (at debug: fsyncs, entries and
/// bytes per second, entries per fsync), while it does anything. What
/// `warren perf` runs are measured with (crates/warren/BENCHMARKS.md).
fn log_store_stats(backend: std::sync::Weak<crate::durable::NodeBackend>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let Some(b) = backend.upgrade() else { return };
        let mut last = b.node().store_stats();
        drop(b);
        loop {
            tick.tick().await;
            let Some(b) = backend.upgrade() else { return };
            let now = b.node().store_stats();
            if now.batches != last.batches {
                let secs = every.as_secs_f64();
                let fsyncs = now.fsyncs - last.fsyncs;
                let entries = now.entries_written - last.entries_written;
                tracing::debug!(
                    fsyncs_per_s = (fsyncs as f64 / secs).round(),
                    entries_per_s = (entries as f64 / secs).round(),
                    bytes_per_s = ((now.bytes_written - last.bytes_written) as f64 / secs).round(),
                    entries_per_fsync = (entries as f64 / fsyncs.max(1) as f64).round(),
                    max_batch = now.max_batch_requests,
                    failed_batches = now.failed_batches,
                    "store"
                );
            }
            if now.failed_batches != last.failed_batches {
                tracing::error!(
                    failed = now.failed_batches - last.failed_batches,
                    "store writes failed: their publishes were nacked"
                );
            }
            last = now;
        }
    });
}

/// Checks the data directory's free space every second and raises the
/// disk alarm below `limit` (publishers are blocked until it clears).
fn watch_disk(broker: std::sync::Weak<Broker>, dir: PathBuf, limit: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(b) = broker.upgrade() else { return };
            match free_bytes(&dir) {
                Ok(free) => b.memory().set_disk_alarm(free < limit, free),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot read free disk space")
                }
            }
        }
    });
}

/// `id@host:port,…` → the peer table (host names resolved once, now).
pub async fn resolve_peers(list: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .with_context(|| format!("--peers: '{item}' is not id@host:port"))?;
        let id: u64 = id
            .parse()
            .with_context(|| format!("--peers: '{id}' is not a node id"))?;
        let addr = tokio::net::lookup_host(addr)
            .await
            .with_context(|| format!("--peers: resolving '{addr}'"))?
            .next()
            .with_context(|| format!("--peers: '{addr}' has no address"))?;
        if peers.insert(id, addr).is_some() {
            anyhow::bail!("--peers: node {id} listed twice");
        }
    }
    if peers.is_empty() {
        anyhow::bail!("--peers is empty");
    }
    Ok(peers)
}

/// A running broker. Dropping it leaves the broker running; call
/// [`Running::shutdown`] to stop accepting connections.
pub struct Running {
    pub amqp_addr: SocketAddr,
    pub broker: Arc<Broker>,
    backend: Arc<crate::durable::NodeBackend>,
    stop: Option<oneshot::Sender<()>>,
}

impl Running {
    /// Resolves once a write to the node's store has failed (a full disk,
    /// a failed fsync). The Raft groups that hit it have stopped for good
    /// (openraft treats storage errors as fatal), and a failed fsync must
    /// not be retried (the page cache may have dropped what it held), so
    /// the binary stops the whole node: its leaderships move to healthy
    /// nodes, and a restart, once the disk is sound, recovers from the log.
    pub async fn storage_failed(&self) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if self.backend.node().store_stats().failed_batches > 0 {
                return;
            }
        }
    }

    /// Stops accepting new connections.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds the listeners and starts serving; returns once it is accepting.
pub async fn start(args: ServeArgs) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let mut config = ServerConfig {
        loopback_users: args
            .loopback_users
            .iter()
            .filter(|u| !u.is_empty() && u.as_str() != "none")
            .cloned()
            .collect(),
        ..ServerConfig::default()
    };
    if let Some(w) = args.memory_high_watermark {
        config.memory_high_watermark = w;
    }
    if args.node_id == 0 || args.node_id > warren_core::queue::OwnerId::MAX_NODE {
        anyhow::bail!(
            "--node-id must be between 1 and {}",
            warren_core::queue::OwnerId::MAX_NODE
        );
    }
    config.node_id = args.node_id;
    config.release_readers_after =
        (args.release_readers_after > 0).then(|| Duration::from_secs(args.release_readers_after));
    let node = match &args.peers {
        None => warren_cluster::Node::open(&args.data_dir, args.node_id)
            .await
            .with_context(|| format!("opening the node's store in {}", args.data_dir.display()))?,
        Some(list) => {
            let peers = resolve_peers(list).await?;
            if !peers.contains_key(&args.node_id) {
                anyhow::bail!("--node-id {} is not in --peers {list}", args.node_id);
            }
            let listener = TcpListener::bind(args.cluster_listen)
                .await
                .with_context(|| format!("binding the cluster listener {}", args.cluster_listen))?;
            let own_addr = peers[&args.node_id];
            let mut cluster = warren_cluster::ClusterConfig::new(args.node_id, listener, peers);
            cluster.replace_after = (args.replace_replicas_after > 0)
                .then(|| Duration::from_secs(args.replace_replicas_after));
            cluster.rebalance_every =
                (args.rebalance_every > 0).then(|| Duration::from_secs(args.rebalance_every));
            let node = warren_cluster::Node::open_cluster(&args.data_dir, cluster)
                .await
                .with_context(|| {
                    format!("opening the node's store in {}", args.data_dir.display())
                })?;
            tracing::info!(node_id = args.node_id, peers = %list, "waiting for the cluster's metadata leader");
            // Serve once the cluster has a majority: before, nothing can
            // be committed (a node started alone waits for its peers).
            loop {
                match node.wait_for_meta_leader(Duration::from_secs(10)).await {
                    Ok(leader) => {
                        tracing::info!(leader, "cluster metadata has a leader");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(
                            "no metadata leader yet: waiting for a majority of --peers \
                             (a node new to a running cluster waits until it is added: \
                             warren ctl cluster add-node {} {})",
                            args.node_id,
                            own_addr
                        )
                    }
                }
            }
            node
        }
    };
    let backend = Arc::new(crate::durable::NodeBackend::new(node));
    let broker = Broker::open(backend.clone(), config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the broker on its store: {e}"))?;
    backend
        .node()
        .set_broker(Arc::new(crate::durable::BrokerOnNode(Arc::downgrade(
            &broker,
        ))));
    log_store_stats(Arc::downgrade(&backend), Duration::from_secs(5));
    if args.disk_free_limit > 0 {
        watch_disk(
            Arc::downgrade(&broker),
            args.data_dir.clone(),
            args.disk_free_limit,
        );
    }
    tracing::info!(
        data_dir = %args.data_dir.display(),
        queues = backend.node().queue_groups().len(),
        "durable state opened"
    );
    if let Some(path) = &args.definitions {
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("reading definitions {}", path.display()))?;
        broker
            .load_definitions(&json)
            .await
            .map_err(|e| anyhow::anyhow!("loading definitions {}: {e}", path.display()))?;
        tracing::info!(file = %path.display(), "definitions loaded");
    }
    let listener = TcpListener::bind(args.amqp_listen)
        .await
        .with_context(|| format!("binding AMQP listener {}", args.amqp_listen))?;
    let amqp_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(warren_amqp::serve(listener, broker.clone(), async move {
        let _ = stopped.await;
    }));
    tracing::info!(%amqp_addr, "AMQP listener ready");
    Ok(Running {
        amqp_addr,
        broker,
        backend,
        stop: Some(stop),
    })
}
