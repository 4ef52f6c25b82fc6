//! `warren serve`: options and the running broker.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// The cluster address peers should dial, when it differs from --cluster-listen.
    #[arg(long, env = "WARREN_ADVERTISE")]
    pub advertise: Option<String>,
    /// A RabbitMQ definitions export (JSON) loaded at boot: users, vhosts,
    /// permissions, exchanges, queues, bindings.
    #[arg(long, env = "WARREN_DEFINITIONS")]
    pub definitions: Option<PathBuf>,
}

/// A running broker.
pub struct Running {
    pub amqp_addr: SocketAddr,
}

/// Binds the listeners and starts serving; returns once it is accepting.
pub async fn start(_args: ServeArgs) -> anyhow::Result<Running> {
    anyhow::bail!("not written yet")
}
